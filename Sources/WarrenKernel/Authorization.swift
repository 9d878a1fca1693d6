import WarrenContract
import WarrenStore

extension Kernel {
    /// Refuses, when `--group-users` is set, a report from a broker user not allowed for the
    /// task's group, and a promise or child workflow created inside a workflow by such a user:
    /// a worker of one group cannot settle, read or extend another group's workflows. Schedules
    /// are created and changed only by users allowed for their group.
    func authorize(_ command: Command, from caller: Caller, tx: any StoreTransaction, now: Int64) throws {
        guard configuration.groupUsers != nil else { return }
        let who = caller.user.map { "'\($0)'" } ?? "(no user_id property)"
        switch command {
        case let .claimTask(id, _, _, _), let .suspendTask(id, _, _, _, _), let .completeTask(id, _, _, _, _),
             let .recordProgress(id, _, _, _, _), let .retryTask(id, _, _, _, _, _), let .blockTask(id, _, _, _),
             let .cancelWorkflow(id, _), let .retryWorkflow(id), let .failWorkflow(id, _):
            guard let task = try tx.task(id: id) else { return }  // the command fails on its own (notFound)
            guard configuration.mayAct(user: caller.user, forGroup: task.group) else {
                throw StoreError(.forbidden, "the broker user \(who) may not report on or decide for task '\(id)' of group '\(task.group)' (--group-users)")
            }
        case .createPromise(let r), .startWorkflow(let r, _, _):
            // The nearest enclosing workflow owns the id: a child workflow (`<root>.<n>`, perhaps
            // of another group) owns what its own code creates (`<root>.<n>.<m>`).
            var owner = r.id
            while let dot = owner.lastIndex(of: ".") {
                owner = String(owner[..<dot])
                guard let found = try tx.task(id: owner) else { continue }
                guard configuration.mayAct(user: caller.user, forGroup: found.group) else {
                    throw StoreError(.forbidden, "the broker user \(who) may not create '\(r.id)' inside workflow '\(owner)' "
                        + "of group '\(found.group)' (--group-users)")
                }
                return
            }
        case let .createSchedule(_, definition):
            guard configuration.mayAct(user: caller.user, forGroup: definition.group) else {
                throw StoreError(.forbidden, "the broker user \(who) may not schedule workflows of group '\(definition.group)' (--group-users)")
            }
        case .pauseSchedule(let id), .resumeSchedule(let id), .deleteSchedule(let id):
            guard let s = try tx.schedule(id: id) else { return }
            guard configuration.mayAct(user: caller.user, forGroup: s.definition.group) else {
                throw StoreError(.forbidden, "the broker user \(who) may not change schedule '\(id)' of group '\(s.definition.group)' (--group-users)")
            }
        default:
            return
        }
    }

    /// Refuses to settle, through a public API, a promise of a workflow's machinery (its result, a
    /// step, a timer): only task completions and timers settle those.
    public static func refuseInternal(_ id: String, tx: any StoreTransaction, now: Int64) throws {
        guard let p = try tx.promise(id: id, now: now), PromiseRules.isInternal(p) else { return }
        let what = p.tags["warren:function"] != nil ? "the result of workflow '\(id)'" : "a step, timer or choice of workflow '\(PromiseRecord.rootID(of: id))'"
        throw StoreError(.internalPromise, "'\(id)' is \(what): only the workflow's own run settles it; "
            + "settle the promise the workflow waits on (made with ctx.promise) instead", promise: p)
    }
}
