import Foundation
import HumanInTheLoopWorkflow
import RefundWorkflow
import Testing
import Warren
import WarrenTesting

/// The examples' workflows, tested the way a user tests theirs: with WarrenTesting, in-process,
/// on a virtual clock. Each waits hours or days, and each test takes milliseconds.
@Suite("Refund approval, with the test kit")
struct RefundWorkflowTests {
    func environment(_ policy: RefundPolicy = RefundPolicy()) -> WarrenTestEnvironment {
        let env = WarrenTestEnvironment(group: "refunds")
        env.register("refund", refundWorkflow(policy))
        return env
    }

    func approval(_ env: WarrenTestEnvironment, _ id: String) throws -> PromiseRecord {
        try #require(try env.waiting(for: id, tags: ["human": "true"]).first)
    }

    @Test func aSmallRefundIsPaidAtOnce() async throws {
        let env = environment()
        try await env.start("r-small", "refund", Refund(id: "r-small", customer: "ada", amount: 40))
        #expect(try env.result(of: "r-small", as: String.self) == "refund r-small: 40 paid without approval")
        #expect(try env.tree("r-small").map { $0.tags["warren:kind"] ?? "" } == ["run:validate", "run:pay"])
    }

    @Test func anApprovalAfterTwoRemindersPaysAfterTheHold() async throws {
        let env = environment()
        let started = env.now
        try await env.start("r-1", "refund", Refund(id: "r-1", customer: "ada", amount: 500))
        let approval = try approval(env, "r-1")
        #expect(approval.tags["title"] == "Refund 500 to ada (r-1)")
        // Nine hours without a decision: two reminders (every four hours), still waiting.
        try await env.advance(by: .seconds(9 * 3600))
        #expect(try env.tree("r-1").filter { $0.tags["warren:kind"] == "run:remind" }.count == 2)
        #expect(try env.task("r-1")?.state == "suspended")
        try await env.resolve(approval.id, "approved")
        // The hour's hold before the payment: skipped.
        try await env.advanceUntilSettled("r-1")
        #expect(try env.result(of: "r-1", as: String.self) == "refund r-1: 500 paid after approval (approved)")
        #expect(env.now.timeIntervalSince(started) >= 10 * 3600, "nine hours of waiting and the hold passed, virtually")
    }

    @Test func aRejectionTellsTheCustomer() async throws {
        let env = environment()
        try await env.start("r-2", "refund", Refund(id: "r-2", customer: "bob", amount: 900))
        try await env.reject(try approval(env, "r-2").id, "too much")
        #expect(try env.result(of: "r-2", as: String.self) == "refund r-2: rejected by the manager")
        #expect(try env.tree("r-2").contains { $0.tags["warren:kind"] == "run:tellCustomer" })
    }

    @Test func noDecisionByTheDeadlineEscalatesAfterThreeReminders() async throws {
        var policy = RefundPolicy()
        policy.deadline = .seconds(7 * 86_400)  // a week
        policy.reminderEvery = .seconds(86_400)
        let env = environment(policy)
        try await env.start("r-3", "refund", Refund(id: "r-3", customer: "cy", amount: 300))
        try await env.advanceUntilSettled("r-3")
        #expect(try env.result(of: "r-3", as: String.self) == "refund r-3: no decision by the deadline, escalated")
        let kinds = try env.tree("r-3").compactMap { $0.tags["warren:kind"] }
        #expect(kinds.filter { $0 == "run:remind" }.count == 3 && kinds.contains("run:escalate"))
    }

    @Test func anInvalidRefundFailsTheWorkflowWithoutRetrying() async throws {
        let env = environment()
        try await env.start("r-4", "refund", Refund(id: "r-4", customer: "di", amount: -5))
        #expect(throws: WarrenError.self) { try env.result(of: "r-4", as: String.self) }
        #expect(try env.promise("r-4")?.state == .rejected)
    }

    @Test func theHumanInTheLoopWorkflowWaitsForItsApprovalAndFinishes() async throws {
        let signer = LinkSigner(baseURL: "http://localhost:8001", key: try LinkKey(id: "k1", secret: String(repeating: "s", count: 32)))
        let env = WarrenTestEnvironment(links: signer)
        env.register("foo-workflow", fooWorkflow)
        try await env.start("hitl-1", "foo-workflow", "hitl-1")
        let blocking = try #require(try env.waiting(for: "hitl-1", tags: ["human": "true"]).first)
        let email = try #require(try env.tree("hitl-1").first { $0.tags["warren:kind"] == "run:sendEmail" })
        #expect(email.value.data?.contains("http://localhost:8001") == true, "the step recorded the signed link")
        // A week passes; nothing happens but the wait.
        try await env.advance(by: .seconds(6 * 86_400))
        #expect(try env.task("hitl-1")?.state == "suspended")
        try await env.resolve(blocking.id, "approved")
        #expect(try env.result(of: "hitl-1", as: String.self) == "foo workflow hitl-1 complete")
    }
}
