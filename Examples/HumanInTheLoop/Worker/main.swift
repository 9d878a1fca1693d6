// The seed article's worker, in Swift on RabbitMQ: `foo-workflow` creates a promise, mails a
// signed approval link for it (printed here), and waits, for as long as it takes, holding no
// memory and no message, until someone resolves the promise.
//
// The link points at the orchestrator (WARREN_LINK_URL) and is signed with a key it holds
// (WARREN_LINK_KEY, "KEY-ID SECRET", the same line as in `warren serve --link-keys-file`):
// opening it shows a confirmation page, and its Approve button settles the promise.
//
//   WARREN_AMQP_URL=amqp://guest:guest@localhost:5672/%2f WARREN_LINK_URL=http://localhost:8001 \
//   WARREN_LINK_KEY="k1 $(cat link-secret)" swift run hitl-worker
import Foundation
import Logging
import HumanInTheLoopWorkflow
import ServiceLifecycle
import Warren

let env = ProcessInfo.processInfo.environment

/// Prints a line at once (also into a file or a pipe, where print would buffer it).
func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
let amqpURL = env["WARREN_AMQP_URL"] ?? "amqp://guest:guest@localhost:5672/%2f"

nonisolated func main() async throws {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = Logger.Level(rawValue: env["LOG_LEVEL"] ?? "") ?? .info
        return handler
    }
    let warren = try await Warren(url: amqpURL, group: "workers", prefix: env["WARREN_PREFIX"] ?? "warren")
    guard warren.links != nil else {
        FileHandle.standardError.write(Data("hitl-worker: set WARREN_LINK_URL (the orchestrator's address) and WARREN_LINK_KEY ('KEY-ID SECRET', a key warren serve holds)\n".utf8))
        exit(64)
    }

    // The workflow (Examples/HumanInTheLoop/Workflow/FooWorkflow.swift).
    warren.register("foo-workflow", fooWorkflow)

    let group = ServiceGroup(services: [warren], gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "hitl-worker"))
    say("worker ready (group workers)")
    try await group.run()
}

try await main()
