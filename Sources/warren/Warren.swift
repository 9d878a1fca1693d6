import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import WarrenOrchestrator

/// The `warren` command.
@main
struct WarrenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "warren",
        abstract: "Durable async/await for Swift over RabbitMQ.",
        version: "0.1.0",
        subcommands: [Serve.self]
    )
}

/// `warren serve`: the orchestrator.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the orchestrator: keeps every durable promise and hands tasks to workers.",
        discussion: """
            Every option also reads an environment variable. Examples:
              warren serve
              WARREN_AMQP_URL=amqp://user:pass@rabbit:5672/%2f warren serve --db /var/lib/warren/warren.db
            """)

    @Option(name: .customLong("amqp-url"), help: "The broker's AMQP URI (WARREN_AMQP_URL).")
    var amqpURL = ProcessInfo.processInfo.environment["WARREN_AMQP_URL"] ?? "amqp://guest:guest@localhost:5672/%2f"

    @Option(name: .customLong("db"), help: "The SQLite file holding every promise (WARREN_DB).")
    var database = ProcessInfo.processInfo.environment["WARREN_DB"] ?? "warren.db"

    @Option(help: "The prefix of every exchange and queue (WARREN_PREFIX).")
    var prefix = ProcessInfo.processInfo.environment["WARREN_PREFIX"] ?? "warren"

    @Option(help: "Deliveries in flight, and the largest batch per transaction (WARREN_PREFETCH).")
    var prefetch: UInt16 = UInt16(ProcessInfo.processInfo.environment["WARREN_PREFETCH"] ?? "") ?? 512

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (LOG_LEVEL).")
    var logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"] ?? "info"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("unknown log level '\(logLevel)'; use trace, debug, info, notice, warning, error or critical")
        }
        guard prefetch > 0 else { throw ValidationError("--prefetch must be at least 1") }
        guard !prefix.isEmpty, prefix.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw ValidationError("--prefix '\(prefix)' may hold letters, digits and -_. only")
        }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel)!
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "warren")
        var config = OrchestratorConfiguration(amqpURL: amqpURL, databasePath: database, prefix: prefix)
        config.prefetch = prefetch
        let orchestrator = Orchestrator(configuration: config, logger: Logger(label: "warren.orchestrator"))
        let group = ServiceGroup(services: [orchestrator], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }
}
