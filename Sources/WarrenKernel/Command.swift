import WarrenContract
import WarrenStore

/// Why a message cannot be applied; travels in the `x-warren-error` header of its dead letter.
public struct ContractError: Error, Equatable, Sendable {
    public var reason: String
    public init(reason: String) { self.reason = reason }
}

/// What a command asks of the orchestrator, decoded and validated against the message contract
/// (docs/messages.md) from an AMQP message, or made by the HTTP API. The kernel applies it
/// (``Kernel/apply(_:from:tx:now:)``).
public enum Command: Equatable, Sendable {
    case createPromise(CreatePromise)
    case settlePromise(SettlePromise)
    /// `workflow.start`: a root promise with a task for `group`, whose param holds the function
    /// and its arguments.
    /// With `subscribe`, the caller is answered with the workflow's settled root (now, or when
    /// it settles) instead of an immediate reply.
    case startWorkflow(CreatePromise, function: String, subscribe: Bool)
    /// `promise.get`: the promise, in a reply.
    case getPromise(id: String)
    /// `promise.subscribe`: the settled promise, sent to `reply_to` now or when it settles.
    case subscribe(id: String)
    /// `promise.search`: a page of promises, in a reply.
    case searchPromises(PromiseSearch)
    /// `task.claim`: a worker takes the version of a task its execute message named (after a
    /// redelivered execute, a new version first).
    case claimTask(id: String, version: Int64, worker: String, redelivered: Bool)
    /// `task.suspend`: the worker records its steps, waits for these promises and lets the task go.
    case suspendTask(id: String, version: Int64, worker: String, awaiting: [String], steps: [StepOutcome])
    /// `task.complete`: the worker records its steps and settles the task's promise with the
    /// function's outcome.
    case completeTask(id: String, version: Int64, worker: String, settle: SettlePromise, steps: [StepOutcome])
    /// `task.progress`: the worker records the steps it finished and goes on running; with a
    /// `lease` (milliseconds), it has acked its execute message and holds the task until the lease
    /// lapses unless it renews it.
    case recordProgress(id: String, version: Int64, worker: String, steps: [StepOutcome], lease: Int64?)
    /// `task.retry`: the worker records its steps and lets the task go until `delay` has passed
    /// (milliseconds), because `failedStep` failed.
    case retryTask(id: String, version: Int64, worker: String, delay: Int64, failedStep: String?, steps: [StepOutcome])
    /// `task.block`: the worker's run departed from the recorded history, or it has no such
    /// function: the task is parked with the reason, not failed.
    case blockTask(id: String, version: Int64, worker: String, reason: String)
    /// `workflow.cancel`: the workflow and what it waits for are canceled; its code compensates.
    case cancelWorkflow(id: String, reason: String?)
    /// `workflow.retry`: a blocked (or waiting) workflow is handed out again now.
    case retryWorkflow(id: String)
    /// `workflow.fail`: an operator rejects the workflow with a reason.
    case failWorkflow(id: String, reason: String)
    /// `schedule.create`: a schedule that starts a workflow at each tick (the same definition
    /// again finds it; another under its id is refused).
    case createSchedule(id: String, ScheduleDefinition)
    /// `schedule.get`: the schedule, in a reply.
    case getSchedule(id: String)
    /// `schedule.list`: a page of schedules, in a reply.
    case listSchedules(limit: Int, cursor: String?)
    /// `schedule.pause`: the schedule stops ticking; ticks while it is paused start nothing.
    case pauseSchedule(id: String)
    /// `schedule.resume`: the schedule ticks again, from the next tick after now.
    case resumeSchedule(id: String)
    /// `schedule.delete`: the schedule is gone; the workflows it started go on.
    case deleteSchedule(id: String)
}
