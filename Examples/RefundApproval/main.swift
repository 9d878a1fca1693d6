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
import Warren

let env = ProcessInfo.processInfo.environment

/// Prints a line at once (also into a file or a pipe, where print would buffer it).
func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

struct Refund: Codable, Sendable {
    var id: String
    var customer: String
    var amount: Int
}

struct InvalidRefund: NonRetryableError, CustomStringConvertible {
    var description: String
}

func duration(_ name: String, _ fallback: Duration) -> Duration {
    guard let text = env[name] else { return fallback }
    let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
    for (suffix, factor) in units where text.hasSuffix(suffix) {
        if let n = Int64(text.dropLast(suffix.count)), n > 0 { return .milliseconds(n * factor) }
    }
    return fallback
}

let deadline = duration("REFUND_DEADLINE", .seconds(86_400))
let reminderEvery = duration("REFUND_REMINDER", .seconds(4 * 3600))
let autoLimit = Int(env["REFUND_AUTO_LIMIT"] ?? "") ?? 100
let hold = duration("REFUND_HOLD", .seconds(3600))

// The steps: each runs at least once, its result recorded; a replay does not run it again.
@Sendable func validate(_ ctx: Context, _ r: Refund) async throws -> Int {
    guard r.amount > 0 else { throw InvalidRefund(description: "a refund must be positive, not \(r.amount)") }
    return r.amount
}
@Sendable func pay(_ ctx: Context, _ r: Refund) async throws -> String {
    say("paid \(r.amount) to \(r.customer) for \(r.id)")
    return "paid"
}
@Sendable func notifyManager(_ ctx: Context, _ how: String) async throws -> String {
    say("manager notified: \(how)")
    return how
}
@Sendable func remind(_ ctx: Context, _ n: Int) async throws -> Int {
    say("reminder \(n) sent to the manager")
    return n
}
@Sendable func escalate(_ ctx: Context, _ r: Refund) async throws -> String {
    say("no decision on \(r.id) in time: escalated to the finance team")
    return "escalated"
}
@Sendable func tellCustomer(_ ctx: Context, _ message: String) async throws -> String {
    say("customer told: \(message)")
    return message
}

/// The workflow: a plain async function that may wait for days.
@Sendable func refundWorkflow(_ ctx: Context, _ r: Refund) async throws -> String {
    let amount = try await ctx.run(validate, r, name: "validate")
    if amount <= autoLimit {
        try await ctx.run(pay, r, name: "pay")
        return "refund \(r.id): \(amount) paid without approval"
    }
    let approval = try await ctx.promise(timeout: deadline, tags: [
        "human": "true", "title": "Refund \(amount) to \(r.customer) (\(r.id))",
    ])
    // A signed link that settles this approval only, until the deadline (the promise's timeout).
    let how = ctx.canSignLinks ? "approve or reject at \(try approval.link(outcomes: ["approved", "rejected"]))"
        : "approve or reject \(approval.id) on the approval page"
    try await ctx.run(notifyManager, how, name: "notifyManager")
    var decision: String?
    do {
        // Remind the manager while waiting; each wait is a durable timer raced with the decision.
        var reminders = 0
        while decision == nil, reminders < 3 {
            decision = try await ctx.wait(for: approval, atMost: reminderEvery, as: String.self)
            if decision == nil {
                reminders += 1
                try await ctx.run(remind, reminders, name: "remind")
            }
        }
        if decision == nil { decision = try await approval.value(as: String.self) }
    } catch let e as WarrenError where e.code == .timedOut {
        try await ctx.run(escalate, r, name: "escalate")
        return "refund \(r.id): no decision by the deadline, escalated"
    } catch let e as WarrenError where e.code == .failed {
        // Rejected on the approval page (or by any client).
        decision = "rejected"
    }
    if decision == "rejected" {  // through the link, or the approval page
        try await ctx.run(tellCustomer, "refund \(r.id) was declined", name: "tellCustomer")
        return "refund \(r.id): rejected by the manager"
    }
    // A durable hold before paying out an approved refund: the worker lets go meanwhile.
    try await ctx.sleep(for: hold)
    try await ctx.run(pay, r, name: "pay")
    return "refund \(r.id): \(amount) paid after approval (\(decision ?? ""))"
}

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
        warren.register("refund", refundWorkflow)
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
