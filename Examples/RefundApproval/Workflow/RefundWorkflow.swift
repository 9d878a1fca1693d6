// The refund workflow and its steps, as a library: the refund-approval executable serves it, and
// Tests/ExamplesTests test it with WarrenTesting (week-long waits in milliseconds).
import Foundation
import Warren

/// Prints a line at once (also into a file or a pipe, where print would buffer it).
func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

public struct Refund: Codable, Sendable {
    public var id: String
    public var customer: String
    public var amount: Int

    public init(id: String, customer: String, amount: Int) {
        self.id = id
        self.customer = customer
        self.amount = amount
    }
}

public struct InvalidRefund: NonRetryableError, CustomStringConvertible {
    public var description: String
}

/// How refunds are decided: what is paid at once, how long a manager has, how often they are
/// reminded, and the hold between an approval and the payment.
public struct RefundPolicy: Sendable {
    public var deadline: Duration = .seconds(86_400)
    public var reminderEvery: Duration = .seconds(4 * 3600)
    public var autoLimit = 100
    public var hold: Duration = .seconds(3600)

    public init() {}
}

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

/// The workflow under `policy`: a plain async function that may wait for days.
public func refundWorkflow(_ policy: RefundPolicy) -> @Sendable (Context, Refund) async throws -> String {
    { ctx, r in
        let amount = try await ctx.run(validate, r, name: "validate")
        if amount <= policy.autoLimit {
            try await ctx.run(pay, r, name: "pay")
            return "refund \(r.id): \(amount) paid without approval"
        }
        let approval = try await ctx.promise(timeout: policy.deadline, tags: [
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
                decision = try await ctx.wait(for: approval, atMost: policy.reminderEvery, as: String.self)
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
        try await ctx.sleep(for: policy.hold)
        try await ctx.run(pay, r, name: "pay")
        return "refund \(r.id): \(amount) paid after approval (\(decision ?? ""))"
    }
}
