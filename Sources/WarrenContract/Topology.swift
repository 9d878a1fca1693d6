import Foundation

/// The exchanges, queues and bindings Warren uses, with their arguments: one description that
/// the orchestrator and the workers declare from, `warren topology export` prints as RabbitMQ
/// definitions, and docs/messages.md tabulates.
public struct Topology: Sendable, Equatable {
    /// The kind of queue Warren declares.
    public enum QueueType: String, Sendable, CaseIterable {
        /// One replica: fast, lost with its node's disk. The default, and what a single broker needs.
        case classic
        /// Replicated over the cluster's nodes (Raft): survives the loss of a minority of them. For
        /// production clusters.
        case quorum
    }

    /// How much of the topology a process declares.
    public enum Declare: String, Sendable, CaseIterable {
        /// Declare everything it uses, idempotently (the default).
        case all
        /// Declare nothing; check passively that what it uses exists, and say what is missing.
        case verify
        /// Declare and check nothing: the operator manages the topology.
        case none
    }

    /// A queue argument's value.
    public enum Argument: Sendable, Equatable {
        case string(String)
        case int(Int64)
    }

    public struct Queue: Sendable, Equatable {
        public var name: String
        public var arguments: [String: Argument]
        /// (exchange, routing key) pairs the queue is bound with.
        public var bindings: [(exchange: String, routingKey: String)]

        public static func == (a: Queue, b: Queue) -> Bool {
            a.name == b.name && a.arguments == b.arguments
                && a.bindings.map { "\($0.exchange) \($0.routingKey)" } == b.bindings.map { "\($0.exchange) \($0.routingKey)" }
        }
    }

    public struct Exchange: Sendable, Equatable {
        public var name: String
        public var type: String
    }

    public var prefix: String
    public var queueType: QueueType
    /// The `x-delivery-limit` of quorum queues: how many times the broker delivers a message
    /// before it dead-letters it. Warren counts the attempts of a command that stopped the
    /// orchestrator itself (`--max-attempts`, 5) and dead-letters it with the reason, long before
    /// this; the broker's limit only bounds what Warren cannot count (a worker killed again and
    /// again on one execute message). RabbitMQ 4 defaults to 20, which a long orchestrator outage
    /// (workers give execute messages back while it is away) can exhaust; Warren sets it so that
    /// 3.x and 4.x brokers behave alike.
    public var deliveryLimit: Int64

    public static let defaultDeliveryLimit: Int64 = 1000

    public init(prefix: String = "warren", queueType: QueueType = .classic, deliveryLimit: Int64 = Topology.defaultDeliveryLimit) {
        self.prefix = prefix
        self.queueType = queueType
        self.deliveryLimit = deliveryLimit
    }

    public var exchange: String { prefix }
    public var deadLetterExchange: String { prefix + ".dlx" }
    /// Where a team's own events come in (fanout to the orchestrator's queue): bind an existing
    /// exchange to it (an exchange-to-exchange binding) with the events' routing key, and an event
    /// carrying `x-warren-promise-id` settles that promise with its body (docs/rabbitmq.md).
    public var eventsExchange: String { prefix + ".events" }
    public var orchestratorQueueName: String { prefix + ".orchestrator" }
    public var deadQueueName: String { prefix + ".dead" }
    public func groupQueueName(_ group: String) -> String { prefix + ".group." + group }
    /// The prefix of the SDK's reply queues (exclusive, so always classic).
    public var replyQueuePrefix: String { prefix + ".reply." }
    /// A reply queue's name for a client's unique `suffix`.
    public func replyQueueName(_ suffix: String) -> String { replyQueuePrefix + suffix }
    /// The routing key of a group's execute messages.
    public static func executeRoutingKey(_ group: String) -> String { executePrefix + group }
    public static let executePrefix = "execute."
    /// The group an execute message's routing key names, if it is one.
    public static func group(ofExecuteRoutingKey key: String) -> String? {
        route(ofExecuteRoutingKey: key)?.group
    }

    /// The routing key of the execute messages of workflows pinned to `code`:
    /// `execute.<group>,<function>,v<version>` (a `,` is in no group name or function name, so
    /// no two routes share a key).
    public static func executeRoutingKey(_ group: String, code: CodeVersion?) -> String {
        guard let code else { return executeRoutingKey(group) }
        return executePrefix + group + code.suffix
    }

    /// The group and code version an execute message's routing key names, if it is one.
    public static func route(ofExecuteRoutingKey key: String) -> (group: String, code: CodeVersion?)? {
        guard key.hasPrefix(executePrefix) else { return nil }
        let parts = key.dropFirst(executePrefix.count).split(separator: ",", omittingEmptySubsequences: false)
        switch parts.count {
        case 1: return (String(parts[0]), nil)
        case 3:
            guard parts[2].hasPrefix("v"), let version = Int(parts[2].dropFirst()),
                  let code = CodeVersion(function: String(parts[1]), version: version) else { return nil }
            return (String(parts[0]), code)
        default: return nil
        }
    }

    /// The queue of a group's workflows pinned to `code` (`<prefix>.group.<group>,<function>,v<n>`),
    /// or the group's own queue.
    public func groupQueueName(_ group: String, code: CodeVersion?) -> String {
        groupQueueName(group) + (code?.suffix ?? "")
    }
    /// The routing key of a promise's settled event (bind `settled.#` for all).
    public static func settledRoutingKey(_ id: String) -> String { "settled." + id }
    /// What the orchestrator's queue is bound with on the exchange: every command kind.
    public static let commandBindings = ["workflow.*", "promise.*", "task.*", "schedule.*"]

    public var exchanges: [Exchange] {
        [Exchange(name: exchange, type: "topic"), Exchange(name: deadLetterExchange, type: "fanout"), Exchange(name: eventsExchange, type: "fanout")]
    }

    /// The arguments of every durable queue Warren declares: its type, and (but for the dead
    /// queue itself) the dead-letter exchange.
    public func arguments(deadLettered: Bool) -> [String: Argument] {
        var a: [String: Argument] = [:]
        if deadLettered { a["x-dead-letter-exchange"] = .string(deadLetterExchange) }
        if queueType == .quorum {
            a["x-queue-type"] = .string("quorum")
            a["x-delivery-limit"] = .int(deliveryLimit)
        }
        return a
    }

    public var orchestratorQueue: Queue {
        Queue(name: orchestratorQueueName, arguments: arguments(deadLettered: true),
              bindings: Self.commandBindings.map { (exchange, $0) } + [(eventsExchange, "")])
    }

    public var deadQueue: Queue {
        Queue(name: deadQueueName, arguments: arguments(deadLettered: false), bindings: [(deadLetterExchange, "")])
    }

    public func groupQueue(_ group: String) -> Queue {
        groupQueue(group, code: nil)
    }

    /// The queue a worker of `group` that serves `code` consumes (the group's own with `nil`).
    public func groupQueue(_ group: String, code: CodeVersion?) -> Queue {
        Queue(name: groupQueueName(group, code: code), arguments: arguments(deadLettered: true),
              bindings: [(exchange, Self.executeRoutingKey(group, code: code))])
    }

    /// Why a declaration was refused as inequivalent, said so that an operator can act: what the
    /// queue has, what Warren asked for, and the ways out. `brokerMessage` is RabbitMQ's
    /// `PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost '/':
    /// received 'quorum' but current is 'classic'`.
    public func explainMismatch(queue: String, brokerMessage: String) -> String {
        let parts = Self.inequivalence(brokerMessage)
        let what = parts.map { "the queue '\(queue)' exists with \($0.argument) \($0.current ?? "unset"), but Warren declares it with \($0.argument) \($0.received ?? "unset")" }
            ?? "the queue '\(queue)' exists with other arguments than Warren declares (\(brokerMessage))"
        let fix = parts?.argument == "x-queue-type"
            ? "start Warren with --queue-type \(parts?.current ?? "classic") (WARREN_QUEUE_TYPE) to match it, or drain the queue, delete it and let Warren declare it again"
            : "drain the queue, delete it and let Warren declare it again, or manage it yourself and start Warren with --declare verify"
        return what + ". It is used as it is; to make them agree, " + fix
    }

    /// The argument, and the values received and current, of RabbitMQ's inequivalence message:
    /// `inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received 'quorum' but current
    /// is 'classic'` (or `received the value 'quorum' of type 'longstr' but current is none`).
    static func inequivalence(_ message: String) -> (argument: String, received: String?, current: String?)? {
        guard let r = message.range(of: "inequivalent arg '") else { return nil }
        let argument = String(message[r.upperBound...].prefix { $0 != "'" })
        func quoted(after marker: String) -> String? {
            guard let m = message.range(of: marker, range: r.upperBound..<message.endIndex) else { return nil }
            let rest = message[m.upperBound...]
            if rest.hasPrefix("none") { return nil }
            guard let open = rest.firstIndex(of: "'") else { return nil }
            return String(rest[rest.index(after: open)...].prefix { $0 != "'" })
        }
        return (argument, quoted(after: "received "), quoted(after: "current is "))
    }

    // MARK: As RabbitMQ definitions

    /// The topology as a RabbitMQ definitions document for `rabbitmqctl import_definitions` (or
    /// the management UI's import): the exchanges, the queues with their arguments (the queues of
    /// `groups` and of the code versions `codes` included), the bindings, and a policy an operator may apply instead of arguments.
    public func definitions(vhost: String = "/", groups: [String] = [], codes: [(group: String, code: CodeVersion)] = []) -> String {
        func arguments(_ a: [String: Argument]) -> [String: Any] {
            a.mapValues { v -> Any in
                switch v {
                case .string(let s): s
                case .int(let n): n
                }
            }
        }
        let queues = [deadQueue, orchestratorQueue] + groups.map(groupQueue) + codes.map { groupQueue($0.group, code: $0.code) }
        var policy: [String: Any] = ["dead-letter-exchange": deadLetterExchange]
        if queueType == .quorum { policy["delivery-limit"] = deliveryLimit }
        let escaped = prefix.replacingOccurrences(of: ".", with: "\\.")
        let document: [String: Any] = [
            "exchanges": exchanges.map { ["name": $0.name, "vhost": vhost, "type": $0.type, "durable": true, "auto_delete": false,
                                          "internal": false, "arguments": [String: Any]()] as [String: Any] },
            "queues": queues.map { ["name": $0.name, "vhost": vhost, "durable": true, "auto_delete": false,
                                    "arguments": arguments($0.arguments)] as [String: Any] },
            "bindings": queues.flatMap { q in
                q.bindings.map { ["source": $0.exchange, "vhost": vhost, "destination": q.name, "destination_type": "queue",
                                  "routing_key": $0.routingKey, "arguments": [String: Any]()] as [String: Any] }
            },
            // Queue arguments are set above; a team that manages arguments by policy instead can
            // use this one (and declare the queues without them).
            "policies": [["vhost": vhost, "name": prefix + "-queues", "pattern": "^\(escaped)\\.(orchestrator|group\\..+)$",
                          "apply-to": "queues", "priority": 0, "definition": policy] as [String: Any]],
        ]
        let data = (try? JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
