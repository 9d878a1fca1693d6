import Foundation
import WarrenContract
import WarrenStore

/// Schedules (docs/workflows.md#schedules): a schedule's next tick is a timer; when it fires, the
/// kernel starts the tick's workflow in the same transaction that sets the next tick, under an
/// id derived from the schedule and the tick (``ScheduleRecord/workflowID(schedule:tick:)``), so
/// that a tick fired twice (an orchestrator stopped before its commit, two orchestrators) finds
/// the workflow it started instead of starting another.
extension Kernel {
    /// `schedule.create` (and `POST /schedules`): checks the definition and stores the schedule,
    /// armed for its first tick after `now`.
    public func createSchedule(id: String, _ definition: ScheduleDefinition, tx: any StoreTransaction, now: Int64) throws
        -> (schedule: ScheduleRecord, created: Bool)
    {
        let (cron, zone) = try Self.check(id: id, definition)
        guard let first = cron.next(after: now, in: zone) else {
            throw StoreError(.invalidArgument, "the cron expression '\(definition.cron)' never ticks (no such date within nine years)")
        }
        return try tx.createSchedule(ScheduleRecord(id: id, definition: definition, nextTick: first, createdOn: now, updatedOn: now), now: now)
    }

    /// Everything a schedule can be refused for, before anything is written.
    static func check(id: String, _ d: ScheduleDefinition) throws(StoreError) -> (cron: CronExpression, timeZone: TimeZone) {
        let limits = StoreLimits.default
        try limits.validateID(id, "schedule id")
        if id.contains(".") { throw StoreError(.invalidID, "the schedule id '\(id.prefix(64))' has a dot: its workflows' ids must be roots") }
        if id.utf8.count > ScheduleRecord.maximumIDLength {
            throw StoreError(.invalidID, "the schedule id is \(id.utf8.count) bytes long; the limit is \(ScheduleRecord.maximumIDLength)")
        }
        try limits.validateGroup(d.group)
        if d.function.isEmpty { throw StoreError(.invalidArgument, "the schedule names no function") }
        if d.function.utf8.count > limits.maximumTagLength {
            throw StoreError(.invalidArgument, "the function name is \(d.function.utf8.count) bytes long; the limit is \(limits.maximumTagLength)")
        }
        guard case .array? = try? JSONValue.parse(d.args) else { throw StoreError(.invalidArgument, "a schedule's 'args' must be a JSON array") }
        if d.args.utf8.count > limits.maximumPayloadBytes / 2 {
            throw StoreError(.payloadTooLarge, "the schedule's args are \(d.args.utf8.count) bytes; the limit is \(limits.maximumPayloadBytes / 2)")
        }
        guard d.timeout > 0 else { throw StoreError(.invalidArgument, "a schedule's workflow timeout must be positive") }
        try limits.validateTags(d.tags)
        if d.tags.keys.contains(where: { $0.hasPrefix("warren:") }) {
            throw StoreError(.invalidArgument, "tags starting with 'warren:' are Warren's own")
        }
        do {
            return try d.parsed()
        } catch {
            throw StoreError(.invalidArgument, error.message)
        }
    }

    /// `schedule.pause`: no timer, no ticks, until it is resumed.
    public func pauseSchedule(_ id: String, tx: any StoreTransaction, now: Int64) throws -> ScheduleRecord {
        guard var s = try tx.schedule(id: id) else { throw ScheduleRules.notFound(id) }
        guard !s.paused else { return s }
        s.paused = true
        s.nextTick = nil
        s.updatedOn = now
        try tx.saveSchedule(s)
        return s
    }

    /// `schedule.resume`: armed again for the first tick after `now`; the ticks while it was
    /// paused start nothing.
    public func resumeSchedule(_ id: String, tx: any StoreTransaction, now: Int64) throws -> ScheduleRecord {
        guard var s = try tx.schedule(id: id) else { throw ScheduleRules.notFound(id) }
        guard s.paused else { return s }
        let (cron, zone) = try Self.check(id: id, s.definition)
        s.paused = false
        s.nextTick = cron.next(after: now, in: zone)
        s.updatedOn = now
        try tx.saveSchedule(s)
        return s
    }

    /// `schedule.delete`: the schedule as it was.
    public func deleteSchedule(_ id: String, tx: any StoreTransaction, now: Int64) throws -> ScheduleRecord {
        guard let s = try tx.deleteSchedule(id: id) else { throw ScheduleRules.notFound(id) }
        return s
    }

    /// A schedule's tick fired at `now`: starts the workflow of the latest tick due (or, for a
    /// tick missed by more than ``Configuration/scheduleTolerance`` under ``ScheduleDefinition/MissedTicks/skip``,
    /// nothing) and arms the first tick after `now`. A workflow that cannot start (its id taken by
    /// another function's) fails alone: the schedule records why and goes on ticking.
    func tick(_ schedule: ScheduleRecord, tx: any StoreTransaction, now: Int64) throws -> Effects {
        var s = schedule
        guard let due = s.nextTick else { return Effects() }
        s.updatedOn = now
        guard let (cron, zone) = try? s.definition.parsed() else {
            // Stored by a Warren that read it differently: keep it, stopped, with the reason.
            s.nextTick = nil
            s.lastError = "the cron expression '\(s.definition.cron)' or time zone no longer reads; delete and create the schedule again"
            try tx.saveSchedule(s)
            return Effects()
        }
        let tick = Self.latestTick(cron, zone, due: due, now: now)
        var effects = Effects()
        if s.definition.missed == .once || now - tick <= configuration.scheduleTolerance {
            let id = ScheduleRecord.workflowID(schedule: s.id, tick: tick)
            let d = s.definition
            let param = "{\"args\":\(d.args),\"function\":\(JSONValue.quote(d.function))}"
            var tags = d.tags
            tags["warren:function"] = d.function
            tags["warren:schedule"] = s.id
            let create = CreatePromise(id: id, idempotencyKey: id, param: PromiseValue(data: param), timeout: now + d.timeout, tags: tags,
                                       taskGroup: d.group)
            do {
                effects = try startWorkflow(create, function: d.function, tx: tx, now: now).effects
                (s.lastTick, s.lastWorkflow, s.lastError) = (tick, id, nil)
            } catch let e as StoreError where e.code != .storageUnavailable {
                s.lastError = "the tick at \(id) started nothing: \(e.message)"
            }
        }
        s.nextTick = cron.next(after: now, in: zone)
        try tx.saveSchedule(s)
        return effects
    }

    /// The latest tick at or before `now`, from `due` on (the first one missed): searched from
    /// a little before `now`, then further back, so that a schedule of every second stopped for a
    /// month does not walk every second it missed.
    static func latestTick(_ cron: CronExpression, _ zone: TimeZone, due: Int64, now: Int64) -> Int64 {
        for span: Int64 in [60_000, 3_600_000, 86_400_000, 32 * 86_400_000, 367 * 86_400_000] where now - span > due {
            guard var t = cron.next(after: now - span - 1, in: zone), t <= now else { continue }
            while let n = cron.next(after: t, in: zone), n <= now { t = n }
            return t
        }
        var t = due
        while let n = cron.next(after: t, in: zone), n <= now { t = n }
        return t
    }

    /// `schedule.get|list|pause|resume|delete` and `schedule.create` from AMQP: the answer, in a reply.
    func schedule(_ command: Command, from caller: Caller, tx: any StoreTransaction, now: Int64) throws -> Effects {
        var body: [String: JSONValue]
        if case .getSchedule = command { _ = try caller.requireReplyTo() }
        if case .listSchedules = command { _ = try caller.requireReplyTo() }
        switch command {
        case let .createSchedule(id, definition):
            let (s, created) = try createSchedule(id: id, definition, tx: tx, now: now)
            body = ["schedule": s.json, "created": .bool(created)]
        case .getSchedule(let id):
            guard let s = try tx.schedule(id: id) else { throw ScheduleRules.notFound(id) }
            body = ["schedule": s.json]
        case let .listSchedules(limit, cursor):
            let page = try tx.schedules(limit: limit, cursor: cursor)
            body = ["schedules": .array(page.schedules.map(\.json))]
            if let c = page.cursor { body["cursor"] = .string(c) }
        case .pauseSchedule(let id): body = ["schedule": try pauseSchedule(id, tx: tx, now: now).json]
        case .resumeSchedule(let id): body = ["schedule": try resumeSchedule(id, tx: tx, now: now).json]
        case .deleteSchedule(let id): body = ["schedule": try deleteSchedule(id, tx: tx, now: now).json]
        default: throw StoreError(.invalidArgument, "not a command on schedules")
        }
        guard let replyTo = caller.replyTo else { return Effects() }
        return Effects(messages: [messages.reply(to: replyTo, correlationID: caller.correlationID, body: JSONValue.object(body).jsonText)])
    }
}
