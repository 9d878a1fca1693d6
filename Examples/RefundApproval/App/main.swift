// A refund that needs a manager's approval within a deadline: small refunds go through at once;
// larger ones wait for a decision on the approval page (or any client), with reminders while
// they wait; approved, they are paid after a durable hold (ctx.sleep); rejected, the customer is
// told; with no decision by the deadline (the approval promise's timeout), it is escalated.
//
//   refund-approval worker                       serve the `refund` workflow (group "refunds")
//   refund-approval start <id> <customer> <amount>  start one and print its outcome
//
// The manager gets a signed link (approve or reject, until the deadline) when the worker has a
// link key (WARREN_LINK_URL, WARREN_LINK_KEY: docs/http.md#approval-links), else a pointer to the
// approval page.
//
// Environment: WARREN_AMQP_URL, WARREN_PREFIX, REFUND_DEADLINE (default 24h),
// REFUND_REMINDER (default 4h), REFUND_AUTO_LIMIT (default 100), REFUND_HOLD (the wait between an
// approval and the payment, default 1h).
import Foundation
import Logging
import ServiceLifecycle
import RefundWorkflow
import Warren

let env = ProcessInfo.processInfo.environment

/// Prints a line at once (also into a file or a pipe, where print would buffer it).
func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

func duration(_ name: String, _ fallback: Duration) -> Duration {
    guard let text = env[name] else { return fallback }
    let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
    for (suffix, factor) in units where text.hasSuffix(suffix) {
        if let n = Int64(text.dropLast(suffix.count)), n > 0 { return .milliseconds(n * factor) }
    }
    return fallback
}

let policy: RefundPolicy = {
    var p = RefundPolicy()
    p.deadline = duration("REFUND_DEADLINE", p.deadline)
    p.reminderEvery = duration("REFUND_REMINDER", p.reminderEvery)
    p.autoLimit = Int(env["REFUND_AUTO_LIMIT"] ?? "") ?? p.autoLimit
    p.hold = duration("REFUND_HOLD", p.hold)
    return p
}()

nonisolated func main() async throws {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = Logger.Level(rawValue: env["LOG_LEVEL"] ?? "") ?? .info
        return handler
    }
    let args = CommandLine.arguments
    let url = env["WARREN_AMQP_URL"] ?? "amqp://guest:guest@localhost:5672/%2f"
    let prefix = env["WARREN_PREFIX"] ?? "warren"
    switch args.count > 1 ? args[1] : "" {
    case "worker":
        let warren = try await Warren(url: url, group: "refunds", prefix: prefix)
        warren.register("refund", refundWorkflow(policy))
        say("refund worker ready (group refunds)")
        try await ServiceGroup(services: [warren], gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "refunds")).run()
    case "start" where args.count == 5:
        guard let amount = Int(args[4]) else { fatalUsage() }
        let warren = try await Warren(url: url, group: "refund-client", prefix: prefix)
        let outcome = try await warren.rpc(args[2], "refund", Refund(id: args[2], customer: args[3], amount: amount),
                                           target: "refunds", as: String.self)
        say(outcome)
        await warren.close()
    default:
        fatalUsage()
    }
}

func fatalUsage() -> Never {
    FileHandle.standardError.write(Data("usage: refund-approval worker | refund-approval start <id> <customer> <amount>\n".utf8))
    exit(64)
}

try await main()
