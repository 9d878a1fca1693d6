/// A request to create a promise.
public struct CreatePromise: Sendable, Equatable {
    public var id: String
    public var idempotencyKey: String?
    /// With `strict`, a repeated create deduplicates only while the promise is pending.
    public var strict: Bool
    public var param: PromiseValue
    /// When the promise times out, in epoch milliseconds.
    public var timeout: Int64
    public var tags: [String: String]
    /// The worker group that runs the promise's function, for a promise with a task
    /// (a workflow or a remote step); `nil` for a plain promise.
    public var taskGroup: String?

    public init(id: String, idempotencyKey: String? = nil, strict: Bool = false, param: PromiseValue = .empty,
                timeout: Int64, tags: [String: String] = [:], taskGroup: String? = nil) {
        self.id = id
        self.idempotencyKey = idempotencyKey
        self.strict = strict
        self.param = param
        self.timeout = timeout
        self.tags = tags
        self.taskGroup = taskGroup
    }
}

/// A request to resolve, reject or cancel a promise.
public struct SettlePromise: Sendable, Equatable {
    public var id: String
    public var completion: PromiseRules.Completion
    public var idempotencyKey: String?
    public var strict: Bool
    public var value: PromiseValue

    public init(id: String, completion: PromiseRules.Completion, idempotencyKey: String? = nil, strict: Bool = false,
                value: PromiseValue = .empty) {
        self.id = id
        self.completion = completion
        self.idempotencyKey = idempotencyKey
        self.strict = strict
        self.value = value
    }
}

/// A search over promises. Results come in id order, a page at a time.
public struct PromiseSearch: Sendable, Equatable {
    /// An id pattern where `*` matches any run of characters (`hitl-*`); `*` matches all.
    public var id: String
    /// `nil` for every state.
    public var states: Set<PromiseState>?
    /// Every tag given must match exactly.
    public var tags: [String: String]
    /// Page size: default 100, at most 1,000.
    public var limit: Int
    /// The cursor of the previous page (the last id it returned).
    public var cursor: String?

    public init(id: String = "*", states: Set<PromiseState>? = nil, tags: [String: String] = [:], limit: Int = 100, cursor: String? = nil) {
        self.id = id
        self.states = states
        self.tags = tags
        self.limit = limit
        self.cursor = cursor
    }

    public static let maximumLimit = 1000
}

/// A page of search results; `cursor` is set when there may be more.
public struct PromisePage: Sendable, Equatable {
    public var promises: [PromiseRecord]
    public var cursor: String?

    public init(promises: [PromiseRecord], cursor: String?) {
        self.promises = promises
        self.cursor = cursor
    }

    /// What a promise counts towards a page's ``StoreLimits/maximumPageBytes``: a page stops at
    /// its limit or at that many bytes, whichever comes first (with at least one promise, which
    /// the payload limit bounds), so that a reply always fits a message.
    public static func bytes(of p: PromiseRecord) -> Int { p.param.byteCount + p.value.byteCount + p.id.utf8.count + 256 }
}

/// The result of a create: the promise, and whether it was made now.
public struct CreateResult: Sendable, Equatable {
    public var promise: PromiseRecord
    /// `true` when this call created it (HTTP 201), `false` when it deduplicated (200).
    public var created: Bool
    /// The task created with it, if it has a target group.
    public var task: TaskRecord?

    public init(promise: PromiseRecord, created: Bool, task: TaskRecord?) {
        self.promise = promise
        self.created = created
        self.task = task
    }
}

/// The result of a settle: the promise, and what its settling set in motion.
public struct SettleResult: Sendable, Equatable {
    public var promise: PromiseRecord
    /// `true` when this call settled it, `false` when it deduplicated.
    public var settled: Bool
    /// Suspended tasks that awaited this promise and must now be handed out again (each with
    /// its version already raised).
    public var resumedTasks: [TaskRecord]
    /// Who subscribed to the outcome (``StoreTransaction/subscribe(promiseID:address:correlation:now:)``)
    /// and must now be told; their subscriptions are gone.
    public var subscribers: [Subscriber] = []

    public init(promise: PromiseRecord, settled: Bool, resumedTasks: [TaskRecord], subscribers: [Subscriber] = []) {
        self.promise = promise
        self.settled = settled
        self.resumedTasks = resumedTasks
        self.subscribers = subscribers
    }
}

/// Someone waiting for a promise's outcome: an address (for the orchestrator, a reply queue) and
/// the correlation id to answer with.
public struct Subscriber: Sendable, Equatable, Hashable {
    public var address: String
    public var correlation: String

    public init(address: String, correlation: String) {
        self.address = address
        self.correlation = correlation
    }
}

/// The outcome of a step a worker ran, recorded with the report of the task that ran it (a
/// promise below the task's, created settled).
public struct StepOutcome: Sendable, Equatable {
    /// The step's promise id: below the task's id (`<task>.<n>`).
    public var id: String
    /// `.resolve` or `.reject`.
    public var completion: PromiseRules.Completion
    public var value: PromiseValue
    public var tags: [String: String]

    public init(id: String, completion: PromiseRules.Completion = .resolve, value: PromiseValue, tags: [String: String] = [:]) {
        self.id = id
        self.completion = completion
        self.value = value
        self.tags = tags
    }
}

/// A task: the work of running one promise's function, handed to workers of its group.
public struct TaskRecord: Sendable, Equatable {
    public enum State: Int, Sendable, Codable, Hashable {
        /// Waiting to be (or being) delivered to a worker.
        case pending = 0
        /// A worker claimed this version and runs it.
        case acquired = 1
        /// Waiting for promises; no worker holds it.
        case suspended = 2
        /// Its promise is settled; nothing more to do.
        case completed = 3
        /// Parked: its last run departed from the recorded history (the workflow's code changed
        /// under it), or the worker that took it has no such function. No worker holds it; it is
        /// offered again on a back-off (a fixed deploy takes it), or by an operator
        /// (`warren workflows retry|fail`). ``TaskRecord/blocked`` says why.
        case blocked = 4

        /// Every state, in order.
        public static let all: [State] = [.pending, .acquired, .suspended, .completed, .blocked]

        /// The state's name in the HTTP API and the CLI (`pending`, …, `blocked`).
        public var name: String { ["pending", "acquired", "suspended", "completed", "blocked"][rawValue] }

        /// The state with this name (any case), if it is one.
        public init?(name: String) {
            guard let state = Self.all.first(where: { $0.name == name.lowercased() }) else { return nil }
            self = state
        }
    }

    /// The task's id: the id of its promise.
    public var id: String
    public var group: String
    public var state: State
    /// Raised on every hand-out; a report for an older version is refused (fencing).
    public var version: Int64
    /// The worker holding the current version, when acquired.
    public var worker: String?
    public var updatedOn: Int64
    /// The step whose failures the task is retrying, and how many attempts of it failed so far.
    public var retry: TaskRetry? = nil
    /// Why the task is blocked (state ``State/blocked``): the step, what the history recorded and
    /// what the code did, or the missing function.
    public var blocked: String? = nil

    public init(id: String, group: String, state: State, version: Int64, worker: String?, updatedOn: Int64, retry: TaskRetry? = nil,
                blocked: String? = nil) {
        self.id = id
        self.group = group
        self.state = state
        self.version = version
        self.worker = worker
        self.updatedOn = updatedOn
        self.retry = retry
        self.blocked = blocked
    }
}

/// A step that failed and waits for its next attempt.
public struct TaskRetry: Sendable, Equatable {
    /// The step's promise id.
    public var step: String
    /// The attempts of the step that failed so far (1 after the first failure).
    public var failures: Int

    public init(step: String, failures: Int) {
        self.step = step
        self.failures = failures
    }
}

/// A timer that came due, with what firing it did.
public enum FiredTimer: Sendable, Equatable {
    /// A pending promise reached its timeout: it is now timed out (or, a timer, resolved).
    case promiseTimeout(SettleResult)
    /// A task's retry back-off ended: hand it out again (its version raised).
    case taskRetry(TaskRecord)
    /// A long run's lease lapsed (its worker stopped renewing it): hand the task out again.
    case leaseExpired(TaskRecord)
    /// A canceled workflow's grace period ended before its compensating run finished: its task
    /// is completed (what the run does later no longer counts).
    case graceEnded(TaskRecord)
    /// A schedule's tick is due (the schedule as stored, its ``ScheduleRecord/nextTick`` the tick):
    /// the kernel starts its workflow and sets the next tick with ``StoreTransaction/saveSchedule(_:)``.
    case scheduleTick(ScheduleRecord)
}

/// An outbox message the broker refused, set aside with the reason so that the rows after it
/// go out (`warren outbox`, `GET /outbox`); ``StoreTransaction/retryFailedOutbox(sequences:)``
/// sends it again.
public struct FailedOutboxMessage: Sendable, Equatable {
    public var message: OutboxMessage
    public var reason: String
    public var failedOn: Int64
    public init(message: OutboxMessage, reason: String, failedOn: Int64) {
        self.message = message
        self.reason = reason
        self.failedOn = failedOn
    }
}

/// A message to publish, written in the same transaction as the change that causes it.
/// The store treats it as opaque bytes with a routing destination.
public struct OutboxMessage: Sendable, Equatable {
    /// Assigned by the store, in commit order; delete by it after the publish is confirmed.
    public var sequence: Int64
    public var exchange: String
    public var routingKey: String
    /// The AMQP `type` (the message kind).
    public var kind: String
    public var headers: [String: String]
    public var body: [UInt8]

    public init(sequence: Int64 = 0, exchange: String, routingKey: String, kind: String,
                headers: [String: String] = [:], body: [UInt8]) {
        self.sequence = sequence
        self.exchange = exchange
        self.routingKey = routingKey
        self.kind = kind
        self.headers = headers
        self.body = body
    }
}
