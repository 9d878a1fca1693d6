import WarrenContract
import WarrenLinks
import WarrenKernel
import WarrenStore

/// How an orchestrator runs: where its broker and database are, and the names it uses.
public struct OrchestratorConfiguration: Sendable {
    /// The AMQP URI of the broker.
    public var amqpURL: String
    /// The SQLite file holding every promise.
    public var databasePath: String
    /// The prefix of every exchange and queue (`warren` gives `warren`, `warren.orchestrator`...).
    public var prefix: String
    /// The type of the queues it declares (`x-queue-type`): classic, or quorum for a cluster.
    public var queueType: Topology.QueueType = .classic
    /// The `x-delivery-limit` of quorum queues (``Topology/deliveryLimit``).
    public var deliveryLimit: Int64 = Topology.defaultDeliveryLimit
    /// How much of the topology it declares: all of it, none but checking it exists (`verify`),
    /// or nothing (`none`: the operator manages it).
    public var declare: Topology.Declare = .all
    /// How many deliveries the broker sends before they are acked; also the largest batch.
    public var prefetch: UInt16 = 512
    /// The timeout of a promise or workflow whose message names none, in milliseconds.
    public var defaultTimeout: Int64 = 86_400_000
    /// The largest command accepted, in bytes; a larger one is refused from its content header,
    /// without reading its body, and dead-lettered by the broker.
    public var maximumBodyBytes = 1 << 20 + 64 * 1024
    /// The largest message the orchestrator sends (an execute message carries a workflow's
    /// history): keep it at or below the broker's `max_message_size` (16 MiB by default in
    /// RabbitMQ 4). A workflow whose execute message would be larger is rejected with the reason.
    public var maximumMessageBytes = 16 << 20
    /// The most bytes of commands applied in one transaction (a batch of large commands is split).
    /// Memory in the worst case is `prefetch` × `maximumBodyBytes`: lower the prefetch where
    /// commands are large.
    public var maximumBatchBytes = 16 << 20
    /// How many times a redelivered command is tried before it is dead-lettered (a command that
    /// stopped the orchestrator every time it was applied).
    public var maximumAttempts = 5
    /// How long a settled workflow (its root promise and everything below it) is kept, in
    /// milliseconds; `nil` keeps everything.
    public var retention: Int64? = nil
    /// Where the HTTP API listens; `nil` for no HTTP server.
    public var httpPort: Int? = 8001
    /// The address the HTTP API binds (`0.0.0.0` to serve other hosts, as in a container).
    public var httpHost = "127.0.0.1"
    /// The bearer tokens the HTTP API accepts; none leaves it open, which is refused beyond a
    /// loopback address unless ``insecure`` says so in so many words.
    public var tokens: [AccessToken] = []
    /// Serve an open HTTP API beyond loopback (a trusted network, a proxy that authenticates).
    public var insecure = false
    /// `GET /ready` answers without a token (for probes).
    public var openReady = true
    /// Host names the HTTP API answers to (empty: any, when it has tokens; loopback names only,
    /// when it is open on loopback: no web page can reach it through DNS rebinding).
    public var allowedHosts: Set<String> = []
    /// The most HTTP connections open at once; one more is closed as soon as it is accepted.
    public var maximumHTTPConnections = 512
    /// How long an HTTP connection may sit idle before it is closed, in seconds.
    public var httpIdleTimeout: Int64 = 60
    /// Origins of web pages, besides the API's own, that may call it.
    public var allowedOrigins: Set<String> = []
    /// The broker users allowed to report for (and to create promises inside the workflows of)
    /// each worker group, by group; `"*"` names the users of every group not listed. `nil`
    /// checks nothing: any user the broker lets publish `task.*` may report. When set, reports
    /// must carry the broker-validated `user_id` property (Warren's SDK always sets it), and a
    /// report for a group with no entry is refused.
    public var groupUsers: [String: Set<String>]? = nil
    /// With a PostgreSQL database: wait for the active orchestrator's writer lock and take over
    /// when it stops, instead of refusing to start (`--standby`).
    public var standby = false
    /// How long a blocked task waits before it is offered to the workers again, in milliseconds
    /// (`--blocked-retry`): a deploy that fixed its code takes it then.
    public var blockedRetry: Int64 = 60_000
    /// How long a canceled workflow's compensating run may take, in milliseconds (`--cancel-grace`).
    public var cancelGrace: Int64 = 60_000
    /// How late a schedule's tick may start before it counts as missed, in milliseconds
    /// (`--schedule-tolerance`): a missed tick of a `skip` schedule starts nothing.
    public var scheduleTolerance: Int64 = 60_000
    /// The keys whose approval links (`/approve/…`) the HTTP API accepts; none accepts no link.
    /// Several at once, for rotation: workers sign with the newest, links signed with the older
    /// ones work until they expire or their key is removed.
    public var linkKeys: [LinkKey] = []

    public init(amqpURL: String = "amqp://guest:guest@localhost:5672/%2f", databasePath: String = "warren.db",
                prefix: String = "warren") {
        self.amqpURL = amqpURL
        self.databasePath = databasePath
        self.prefix = prefix
    }

    /// Refuses settings that could not work, with the reason.
    public func validate() throws {
        guard !prefix.isEmpty, prefix.utf8.count <= 120,
              prefix.utf8.allSatisfy({ StoreLimits.isAllowedIDCharacter($0) && $0 != UInt8(ascii: "/") }) else {
            throw OrchestratorError("the prefix '\(prefix.prefix(40))' must be 1 to 120 bytes of letters, digits and -_.:@+=~")
        }
        guard maximumBodyBytes >= 1024, maximumMessageBytes >= maximumBodyBytes else {
            throw OrchestratorError("the largest command (\(maximumBodyBytes) bytes) must be at least 1024 and at most the "
                + "largest message (\(maximumMessageBytes) bytes)")
        }
        guard maximumAttempts >= 1 else { throw OrchestratorError("the number of attempts must be at least 1") }
        guard deliveryLimit > Int64(maximumAttempts) else {
            throw OrchestratorError("the delivery limit (\(deliveryLimit)) must be above --max-attempts (\(maximumAttempts)), so that Warren "
                + "dead-letters a command that stops it, with the reason, before the broker drops it")
        }
        if httpPort != nil, tokens.isEmpty, !insecure, !AccessPolicy.isLoopback(httpHost) {
            throw OrchestratorError("the HTTP API would listen on \(httpHost) with no tokens: anyone who reaches it could start "
                + "workflows and settle promises. Give tokens (WARREN_TOKENS or --tokens-file), listen on 127.0.0.1, or say "
                + "--insecure if a proxy in front authenticates")
        }
    }

    /// What the kernel needs of it: the names it addresses, the message limit, who may act for which
    /// group, the blocked-task and cancel back-offs, and how late a tick may be.
    public var kernel: Kernel.Configuration {
        Kernel.Configuration(topology: topology, maximumMessageBytes: maximumMessageBytes, groupUsers: groupUsers,
                             blockedRetry: blockedRetry, cancelGrace: cancelGrace, scheduleTolerance: scheduleTolerance)
    }

    /// Parses `workers=alice,bob;billing=carol;*=ops` (`--group-users`).
    public static func parseGroupUsers(_ text: String) throws -> [String: Set<String>] {
        var result: [String: Set<String>] = [:]
        for entry in text.split(whereSeparator: { $0 == ";" || $0 == "\n" }) {
            let trimmed = entry.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            let parts = trimmed.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            let users = parts.count == 2 ? Set(parts[1].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }) : []
            guard parts.count == 2, !parts[0].isEmpty, !users.isEmpty else {
                throw OrchestratorError("group users entry '\(trimmed.prefix(60))': expected GROUP=USER[,USER] (or *=USER for every other group)")
            }
            guard result[parts[0]] == nil else { throw OrchestratorError("group users: the group '\(parts[0])' is named twice") }
            result[parts[0]] = users
        }
        return result
    }

    /// Replies go only to reply queues: the SDK's `<prefix>.reply.…`, RabbitMQ's direct reply-to,
    /// or a server-named queue (`amq.gen-…`: random, exclusive to its client's connection,
    /// never a name anyone chose), never to a queue of a caller's choosing.
    func isReplyQueue(_ name: String) -> Bool {
        (name.hasPrefix(topology.replyQueuePrefix) && name.utf8.count > topology.replyQueuePrefix.utf8.count)
            || name.hasPrefix("amq.rabbitmq.reply-to") || name.hasPrefix("amq.gen-")
    }

    // The topology (docs/messages.md).
    public var topology: Topology { Topology(prefix: prefix, queueType: queueType, deliveryLimit: deliveryLimit) }
    var exchange: String { topology.exchange }
    var deadLetterExchange: String { topology.deadLetterExchange }
    var orchestratorQueue: String { topology.orchestratorQueueName }
    var deadQueue: String { topology.deadQueueName }
    func groupQueue(_ group: String) -> String { topology.groupQueueName(group) }
}
