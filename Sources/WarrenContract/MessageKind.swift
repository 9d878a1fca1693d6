/// The kinds of message in Warren's contract (docs/messages.md). A command's kind is its routing
/// key on the `<prefix>` exchange and its AMQP `type`; what the orchestrator sends carries its
/// kind as `type`.
public enum MessageKind: String, Sendable, CaseIterable, CustomStringConvertible {
    public var description: String { rawValue }

    // Commands the orchestrator consumes (routing key = kind).
    case createPromise = "promise.create"
    case resolvePromise = "promise.resolve"
    case rejectPromise = "promise.reject"
    case cancelPromise = "promise.cancel"
    case getPromise = "promise.get"
    case subscribe = "promise.subscribe"
    case searchPromises = "promise.search"
    case startWorkflow = "workflow.start"
    case claimTask = "task.claim"
    case suspendTask = "task.suspend"
    case completeTask = "task.complete"
    case retryTask = "task.retry"
    case progress = "task.progress"
    case blockTask = "task.block"
    case cancelWorkflow = "workflow.cancel"
    case retryWorkflow = "workflow.retry"
    case failWorkflow = "workflow.fail"
    case createSchedule = "schedule.create"
    case getSchedule = "schedule.get"
    case listSchedules = "schedule.list"
    case pauseSchedule = "schedule.pause"
    case resumeSchedule = "schedule.resume"
    case deleteSchedule = "schedule.delete"

    // What the orchestrator sends.
    /// Run (or replay) a task version: on `execute.<group>`.
    case execute = "task.execute"
    /// A promise settled: on `settled.<id>`, and to each subscriber.
    case settled = "promise.settled"
    /// The answer to a command that named `reply_to`.
    case reply
    /// A refused command's answer.
    case error

    /// The commands the orchestrator consumes.
    public static let commands: [MessageKind] = [
        .createPromise, .resolvePromise, .rejectPromise, .cancelPromise, .getPromise, .subscribe, .searchPromises,
        .startWorkflow, .claimTask, .suspendTask, .completeTask, .retryTask, .progress, .blockTask,
        .cancelWorkflow, .retryWorkflow, .failWorkflow,
        .createSchedule, .getSchedule, .listSchedules, .pauseSchedule, .resumeSchedule, .deleteSchedule,
    ]

    /// The command with this routing key, if it is one.
    public init?(command routingKey: String) {
        guard let kind = MessageKind(rawValue: routingKey), Self.commands.contains(kind) else { return nil }
        self = kind
    }
}

/// Headers of the contract.
public enum ContractHeader {
    /// Names the promise an event settles (a team's own event routed in through
    /// `<prefix>.events`, or a `promise.resolve|reject` whose body is the value).
    public static let promiseID = "x-warren-promise-id"
    /// `resolve` (the default) or `reject`, for such an event.
    public static let settle = "x-warren-settle"
    /// Why a message was dead-lettered.
    public static let error = "x-warren-error"
    /// The broker user that sent a dead-lettered message.
    public static let sender = "x-warren-sender"
    /// The exchange a dead-lettered message was published to (`warren dead replay` sends it there again).
    public static let exchange = "x-warren-exchange"
    /// When it was dead-lettered (epoch milliseconds).
    public static let deadOn = "x-warren-dead-on"
}
