import AMQP
import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import WarrenContract
import WarrenLinks
import WarrenOrchestrator

/// The `warren` command.
@main
struct WarrenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "warren",
        abstract: "Durable async/await for Swift over RabbitMQ.",
        discussion: """
            Run the orchestrator with `warren serve` (or `warren dev` to try things out), then
            look at and settle promises from the command line through its HTTP API:

              warren serve --db /var/lib/warren/warren.db
              warren promises search 'hitl-*' --state pending
              warren promises resolve hitl-001.1 --data '"approved"'
              warren invoke order-7 --func refund --arg '{"amount": 120}' --group workers
              warren tree order-7

            Exit codes: 0 done; 1 failed; 3 not found; 4 conflict (exists, or already settled);
            64 bad usage; 65 refused as invalid by the server; 69 the server is unreachable;
            77 the server wants a token (WARREN_TOKEN) or refused it.
            """,
        version: WarrenVersion.current,
        subcommands: [Serve.self, Dev.self, PromisesCommand.self, Invoke.self, WorkflowsCommand.self, SchedulesCommand.self, Tree.self, TasksCommand.self, OutboxCommand.self, DeadCommand.self, TopologyCommand.self,
                      Backup.self, Migrate.self]
    )
}

enum WarrenVersion {
    static let current = "0.3.0"
}

/// The options `serve` and `dev` share.
struct OrchestratorOptions: ParsableArguments {
    @Option(name: .customLong("amqp-url"),
            help: "The broker's AMQP URI (WARREN_AMQP_URL); for a cluster, repeat it once per node or list the nodes: amqp://u:p@n1:5672,n2:5672/%2f. A password here shows in ps: give it in WARREN_AMQP_URL or --amqp-url-file instead.")
    var amqpURLs: [String] = []

    /// The URI: the options' (one per node, merged), else the environment's, else the default.
    var amqpURL: String {
        get throws {
            if amqpURLs.isEmpty { return ProcessInfo.processInfo.environment["WARREN_AMQP_URL"] ?? "amqp://guest:guest@localhost:5672/%2f" }
            do { return try AMQPURI.merge(amqpURLs) } catch { throw CLIError(error.message, code: 64) }
        }
    }

    @Option(name: .customLong("amqp-url-file"), help: "A file holding the broker's AMQP URI, credentials included (WARREN_AMQP_URL_FILE).")
    var amqpURLFile = ProcessInfo.processInfo.environment["WARREN_AMQP_URL_FILE"]

    @Option(help: "The prefix of every exchange and queue (WARREN_PREFIX).")
    var prefix = ProcessInfo.processInfo.environment["WARREN_PREFIX"] ?? "warren"

    @Option(name: .customLong("queue-type"), help: "The type of the queues Warren declares: classic, or quorum on a cluster (WARREN_QUEUE_TYPE).")
    var queueType = ProcessInfo.processInfo.environment["WARREN_QUEUE_TYPE"] ?? "classic"

    @Option(name: .customLong("delivery-limit"),
            help: "The x-delivery-limit of quorum queues: deliveries before the broker dead-letters a message (WARREN_DELIVERY_LIMIT).")
    var deliveryLimit = Int64(ProcessInfo.processInfo.environment["WARREN_DELIVERY_LIMIT"] ?? "") ?? Topology.defaultDeliveryLimit

    @Option(help: "What of the topology to declare: all, verify (check it exists, say what is missing) or none (WARREN_DECLARE).")
    var declare = ProcessInfo.processInfo.environment["WARREN_DECLARE"] ?? "all"

    @Option(help: "Deliveries in flight, and the largest batch per transaction (WARREN_PREFETCH).")
    var prefetch: UInt16 = UInt16(ProcessInfo.processInfo.environment["WARREN_PREFETCH"] ?? "") ?? 512

    @Option(name: .customLong("http-host"), help: "The address the HTTP API binds; 0.0.0.0 serves other hosts (WARREN_HTTP_HOST).")
    var httpHost = ProcessInfo.processInfo.environment["WARREN_HTTP_HOST"] ?? "127.0.0.1"

    @Option(name: .customLong("http-port"), help: "The HTTP API's port (WARREN_HTTP_PORT).")
    var httpPort: Int = Int(ProcessInfo.processInfo.environment["WARREN_HTTP_PORT"] ?? "") ?? 8001

    @Flag(name: .customLong("no-http"), help: "Serve no HTTP API.")
    var noHTTP = false

    @Option(name: .customLong("tokens-file"),
            help: "Bearer tokens for the HTTP API, one per line: NAME SCOPE[,SCOPE] SECRET (WARREN_TOKENS_FILE; or the tokens themselves in WARREN_TOKENS, ';'-separated).")
    var tokensFile = ProcessInfo.processInfo.environment["WARREN_TOKENS_FILE"]

    @Option(name: .customLong("link-keys-file"),
            help: "Keys whose signed approval links the HTTP API accepts, one per line: KEY-ID SECRET (WARREN_LINK_KEYS_FILE; or the keys themselves in WARREN_LINK_KEYS, ';'-separated).")
    var linkKeysFile = ProcessInfo.processInfo.environment["WARREN_LINK_KEYS_FILE"]

    @Option(name: .customLong("group-users"),
            help: "Broker users allowed to report for each worker group: GROUP=USER[,USER];… (*=USER for every other group) (WARREN_GROUP_USERS). Without it, any user the broker lets publish task.* may.")
    var groupUsers = ProcessInfo.processInfo.environment["WARREN_GROUP_USERS"]

    @Flag(help: "Serve the HTTP API without tokens beyond loopback (only behind a proxy that authenticates).")
    var insecure = false

    @Flag(help: "With a PostgreSQL database: if another orchestrator is active on it, wait and take over when it stops (WARREN_STANDBY=1).")
    var standby = ProcessInfo.processInfo.environment["WARREN_STANDBY"] == "1"

    @Flag(name: .customLong("private-ready"), help: "GET /ready needs a token too.")
    var privateReady = false

    @Option(name: .customLong("max-http-connections"), help: "HTTP connections open at once; one more is closed at once.")
    var maximumHTTPConnections = 512

    @Option(name: .customLong("http-idle-timeout"), help: "Seconds an HTTP connection may sit idle before it is closed.")
    var httpIdleTimeout: Int64 = 60

    @Option(name: .customLong("allowed-hosts"),
            help: "Host names the HTTP API answers to, comma-separated (WARREN_ALLOWED_HOSTS); an open API on loopback answers to loopback names only.")
    var allowedHosts = ProcessInfo.processInfo.environment["WARREN_ALLOWED_HOSTS"] ?? ""

    @Option(name: .customLong("allowed-origins"),
            help: "Origins of web pages, besides the API's own, that may call it, comma-separated (WARREN_ALLOWED_ORIGINS).")
    var allowedOrigins = ProcessInfo.processInfo.environment["WARREN_ALLOWED_ORIGINS"] ?? ""

    @Option(name: .customLong("max-message-bytes"),
            help: "The largest message Warren sends; at most the broker's max_message_size (WARREN_MAX_MESSAGE_BYTES).")
    var maximumMessageBytes = Int(ProcessInfo.processInfo.environment["WARREN_MAX_MESSAGE_BYTES"] ?? "") ?? (16 << 20)

    @Option(name: .customLong("max-attempts"),
            help: "Deliveries of a command that stopped the orchestrator each time before it is dead-lettered (WARREN_MAX_ATTEMPTS).")
    var maximumAttempts = Int(ProcessInfo.processInfo.environment["WARREN_MAX_ATTEMPTS"] ?? "") ?? 5

    @Option(help: "Delete settled workflows this long after they settled: 90s, 12h, 30d (WARREN_RETENTION); kept forever without it.")
    var retention: String? = ProcessInfo.processInfo.environment["WARREN_RETENTION"]

    @Option(name: .customLong("blocked-retry"),
            help: "How long a blocked task waits before it is offered to the workers again: 10s, 5m (WARREN_BLOCKED_RETRY).")
    var blockedRetry = ProcessInfo.processInfo.environment["WARREN_BLOCKED_RETRY"] ?? "60s"

    @Option(name: .customLong("cancel-grace"),
            help: "How long a canceled workflow's code may run to compensate before its task is ended: 30s, 5m (WARREN_CANCEL_GRACE).")
    var cancelGrace = ProcessInfo.processInfo.environment["WARREN_CANCEL_GRACE"] ?? "60s"

    @Option(name: .customLong("schedule-tolerance"),
            help: "How late a schedule's tick may start before it counts as missed (a `skip` schedule then starts nothing): 30s, 5m (WARREN_SCHEDULE_TOLERANCE).")
    var scheduleTolerance = ProcessInfo.processInfo.environment["WARREN_SCHEDULE_TOLERANCE"] ?? "60s"

    @Option(name: .customLong("log-format"), help: "text, or json: one JSON object per line, for log shippers (WARREN_LOG_FORMAT).")
    var logFormat = ProcessInfo.processInfo.environment["WARREN_LOG_FORMAT"] ?? "text"

    func validate() throws {
        guard LogFormat(rawValue: logFormat) != nil else { throw ValidationError("--log-format must be text or json, not '\(logFormat)'") }
        for (flag, text) in [("--blocked-retry", blockedRetry), ("--cancel-grace", cancelGrace), ("--schedule-tolerance", scheduleTolerance)] {
            guard let ms = Durations.milliseconds(in: text), ms >= 100 else {
                throw ValidationError("\(flag) '\(text)' must be a duration of at least 100ms, such as 30s or 5m")
            }
        }
        guard prefetch > 0 else { throw ValidationError("--prefetch must be at least 1") }
        guard !prefix.isEmpty, prefix.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw ValidationError("--prefix '\(prefix)' may hold letters, digits and -_. only")
        }
        guard (1...65535).contains(httpPort) else { throw ValidationError("--http-port must be from 1 to 65535") }
        guard Topology.QueueType(rawValue: queueType) != nil else { throw ValidationError("--queue-type must be classic or quorum, not '\(queueType)'") }
        guard Topology.Declare(rawValue: declare) != nil else { throw ValidationError("--declare must be all, verify or none, not '\(declare)'") }
        if let retention { _ = try parseDuration(retention) }
    }

    /// Secrets from the environment variable `variable` (entries separated by `;`) and the file, together.
    static func secrets(_ variable: String, file: String?, what: String) throws -> String {
        var text = ProcessInfo.processInfo.environment[variable] ?? ""
        if let file {
            guard let contents = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw CLIError("cannot read the \(what) '\(file)'", code: 64)
            }
            text += "\n" + contents
        }
        return text
    }

    func run(database: String, logLevel: Logger.Level) async throws {
        let format = LogFormat(rawValue: logFormat) ?? .text
        LoggingSystem.bootstrap { label in format.handler(label: label, level: logLevel) }
        var url = try amqpURL
        if let amqpURLFile {
            guard let text = try? String(contentsOfFile: amqpURLFile, encoding: .utf8) else {
                throw CLIError("cannot read the AMQP URL file '\(amqpURLFile)'", code: 64)
            }
            url = text.trimmingCharacters(in: .whitespacesAndNewlines)
        } else if !amqpURLs.isEmpty, let uri = try? AMQPURI(url),
                  uri.password != "guest" || uri.user != "guest" {
            Logger(label: "warren").warning(
                "the AMQP URL's password was given on the command line, where ps shows it to every user of this machine: give it in WARREN_AMQP_URL or --amqp-url-file instead")
        }
        if database != ProcessInfo.processInfo.environment["WARREN_DB"], let c = URLComponents(string: database), c.password != nil,
           c.scheme?.hasPrefix("postgres") == true {
            Logger(label: "warren").warning(
                "the database URL's password was given on the command line, where ps shows it to every user of this machine: give it in WARREN_DB instead")
        }
        var config = OrchestratorConfiguration(amqpURL: url, databasePath: database, prefix: prefix)
        config.prefetch = prefetch
        config.queueType = Topology.QueueType(rawValue: queueType)!
        config.deliveryLimit = deliveryLimit
        config.declare = Topology.Declare(rawValue: declare)!
        config.httpHost = httpHost
        config.httpPort = noHTTP ? nil : httpPort
        config.retention = try retention.map(parseDuration)
        config.maximumMessageBytes = maximumMessageBytes
        config.blockedRetry = try parseDuration(blockedRetry)
        config.cancelGrace = try parseDuration(cancelGrace)
        config.scheduleTolerance = try parseDuration(scheduleTolerance)
        do {
            config.tokens = try AccessToken.parse(try Self.secrets("WARREN_TOKENS", file: tokensFile, what: "tokens file"))
            config.linkKeys = try LinkKey.parse(try Self.secrets("WARREN_LINK_KEYS", file: linkKeysFile, what: "link keys file"))
        } catch let e as OrchestratorError {
            throw CLIError(e.description, code: 64)
        } catch let e as LinkError {
            throw CLIError(e.description, code: 64)
        }
        do {
            config.groupUsers = try groupUsers.map(OrchestratorConfiguration.parseGroupUsers)
            config.standby = standby
        } catch let e as OrchestratorError {
            throw CLIError(e.description, code: 64)
        }
        config.insecure = insecure
        config.openReady = !privateReady
        guard maximumHTTPConnections >= 1, httpIdleTimeout >= 1 else {
            throw CLIError("--max-http-connections and --http-idle-timeout must be at least 1", code: 64)
        }
        config.maximumHTTPConnections = maximumHTTPConnections
        config.httpIdleTimeout = httpIdleTimeout
        config.allowedHosts = Set(allowedHosts.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty })
        config.allowedOrigins = Set(allowedOrigins.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
        config.maximumAttempts = maximumAttempts
        let orchestrator = Orchestrator(configuration: config, logger: Logger(label: "warren.orchestrator"))
        let group = ServiceGroup(services: [orchestrator], gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "warren"))
        do {
            try await group.run()
        } catch let e as OrchestratorError {
            throw CLIError(e.description, code: 1)
        }
    }
}

/// `warren serve`: the orchestrator.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the orchestrator: keeps every durable promise and hands tasks to workers.",
        discussion: """
            Every option also reads an environment variable. Examples:
              warren serve
              WARREN_AMQP_URL=amqp://user:pass@rabbit:5672/%2f warren serve --db /var/lib/warren/warren.db
              warren serve --db postgres://warren@db.internal:5432/warren
            """)

    @OptionGroup var options: OrchestratorOptions

    @Option(name: .customLong("db"), help: "Where every promise is kept: a SQLite file, or postgres://user[:password]@host[:port]/database[?schema=NAME] (WARREN_DB).")
    var database = ProcessInfo.processInfo.environment["WARREN_DB"] ?? "warren.db"

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (LOG_LEVEL).")
    var logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"] ?? "info"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("unknown log level '\(logLevel)'; use trace, debug, info, notice, warning, error or critical")
        }
    }

    func run() async throws {
        try await reporting { try await options.run(database: database, logLevel: Logger.Level(rawValue: logLevel)!) }
    }
}

/// `warren dev`: the orchestrator on a throwaway database, with debug logs.
struct Dev: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the orchestrator for development: a throwaway database in a temporary folder, debug logs.",
        discussion: "Everything is forgotten when it stops. Example:\n  warren dev --amqp-url amqp://guest:guest@localhost:5672/%2f")

    @OptionGroup var options: OrchestratorOptions

    func run() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("warren-dev-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        FileHandle.standardError.write(Data("warren dev: a throwaway database in \(dir.path)\n".utf8))
        try await reporting { try await options.run(database: dir.appendingPathComponent("warren.db").path, logLevel: .debug) }
    }
}
