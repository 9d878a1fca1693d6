import WarrenContract
import WarrenStore

/// Every operation of the orchestrator, as a function of a command, a store transaction and the
/// time to the messages it causes. The AMQP consumer, the HTTP API and the timer loop all come
/// here; none of them decides anything on its own. The kernel writes nothing but through the
/// transaction it is given and publishes nothing: its callers write the messages it returns to
/// the outbox in the same transaction, so what it causes commits with the change (or not at all).
///
/// One file per operation: `StartWorkflow.swift`, `CreatePromise.swift`, `SettlePromise.swift`,
/// `Claim.swift`, `Suspend.swift`, `Complete.swift`, `Retry.swift`, `Progress.swift`,
/// `FireTimers.swift`, `Subscribe.swift`, `Read.swift`, `Workflows.swift` (cancel, retry, fail
/// and a blocked task's report), `Schedules.swift`; `Dispatch.swift` makes execute messages,
/// `Messages.swift` the shapes of what the orchestrator sends.
public struct Kernel: Sendable {
    public struct Configuration: Sendable {
        /// Names of the exchanges and routing keys it addresses.
        public var topology: Topology
        /// The largest message the broker takes: an execute message larger than this rejects its
        /// workflow, with the reason, instead of being refused by the broker for ever.
        public var maximumMessageBytes: Int
        /// Which broker users may act for which worker group (`--group-users`); `nil` for all.
        public var groupUsers: [String: Set<String>]?

        /// How long a blocked task waits before it is offered to the workers again (milliseconds):
        /// a deploy that fixed its code takes it then, or at once with `warren workflows retry`.
        public var blockedRetry: Int64
        /// How long a canceled workflow's compensating run may take (milliseconds) before its task
        /// is completed whatever it is doing.
        public var cancelGrace: Int64
        /// How late a schedule's tick may start (milliseconds) before it counts as missed: a
        /// missed tick of a ``ScheduleDefinition/MissedTicks/skip`` schedule starts nothing.
        public var scheduleTolerance: Int64

        public init(topology: Topology = Topology(), maximumMessageBytes: Int = 16 << 20, groupUsers: [String: Set<String>]? = nil,
                    blockedRetry: Int64 = 60_000, cancelGrace: Int64 = 60_000, scheduleTolerance: Int64 = 60_000) {
            self.topology = topology
            self.maximumMessageBytes = maximumMessageBytes
            self.groupUsers = groupUsers
            self.blockedRetry = blockedRetry
            self.cancelGrace = cancelGrace
            self.scheduleTolerance = scheduleTolerance
        }

        /// Whether broker user `user` may report for, or create inside, a workflow of `group`.
        public func mayAct(user: String?, forGroup group: String) -> Bool {
            guard let groupUsers else { return true }
            guard let user, let allowed = groupUsers[group] ?? groupUsers["*"] else { return false }
            return allowed.contains(user)
        }
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    var messages: Messages { Messages(topology: configuration.topology) }
}

/// Who sent a command, as its transport saw it: where to answer, and the broker user the broker
/// vouched for (AMQP's validated `user_id`).
public struct Caller: Sendable, Equatable {
    /// Where to answer (a checked reply queue), if anywhere.
    public var replyTo: String?
    public var correlationID: String?
    public var user: String?

    public init(replyTo: String? = nil, correlationID: String? = nil, user: String? = nil) {
        self.replyTo = replyTo
        self.correlationID = correlationID
        self.user = user
    }

    /// A caller that needs no answer (a timer, the HTTP API, which answers itself).
    public static let none = Caller()

    func requireReplyTo() throws -> String {
        guard let replyTo else { throw StoreError(.invalidArgument, "this command answers in a reply: set the reply_to property") }
        return replyTo
    }

    /// The caller as a subscriber: its `reply_to` and `correlation_id`.
    func subscriber() throws -> Subscriber {
        guard let replyTo, let correlationID, !correlationID.isEmpty else {
            throw StoreError(.invalidArgument, "a subscription answers in a reply: set the reply_to and correlation_id properties")
        }
        return Subscriber(address: replyTo, correlation: correlationID)
    }
}

/// What a command caused.
public struct Effects: Sendable, Equatable {
    /// What to publish, in order: written to the outbox in the command's transaction.
    public var messages: [OutboxMessage] = []
    /// Why the command is set aside in `<prefix>.dead` (a caller's mistake with no one to tell).
    public var deadLetter: String? = nil
    /// Why the command changed nothing, when that is no one's mistake (the first outcome won; a
    /// report for a version that no longer counts): worth a debug log, nothing more.
    public var ignored: String? = nil

    public init(messages: [OutboxMessage] = []) {
        self.messages = messages
    }

    mutating func send(_ m: OutboxMessage) { messages.append(m) }
    mutating func send(_ ms: [OutboxMessage]) { messages += ms }
}

extension StoreTransaction {
    /// Writes what a command caused to the outbox, in this transaction.
    public func enqueue(_ effects: Effects) throws {
        for m in effects.messages { _ = try enqueue(m) }
    }
}
