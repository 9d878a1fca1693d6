// A worker process for the tests: the seed article's human-in-the-loop workflow.
//   WarrenTestWorker URL PREFIX
// Prints "approve: <promise id>" when `sendEmail` runs, and "unblocked: <decision>" after the wait.
// Serves the group "workers", or WARREN_GROUP.
import Foundation
import Synchronization
import Logging
import ServiceLifecycle
import Warren

let args = CommandLine.arguments
guard args.count == 3 else {
    FileHandle.standardError.write(Data("usage: WarrenTestWorker URL PREFIX\n".utf8))
    exit(64)
}

@Sendable func sendEmail(_ ctx: Context, _ promiseID: String) async throws -> String {
    // Written straight to the file descriptor: the test reads it while the process runs.
    FileHandle.standardOutput.write(Data("approve: http://localhost:5001/unblock-workflow?promise_id=\(promiseID)\n".utf8))
    return "email sent for \(promiseID)"
}

struct FlakyError: Error { var attempt: Int }

let running = Atomic<Int>(0)
final class Peak: Sendable {
    private let v = Mutex(0)
    func max(_ n: Int) { v.withLock { $0 = Swift.max($0, n) } }
    var value: Int { v.withLock { $0 } }
}
let peak = Peak()

extension Range where Bound == Int {
    func asyncMap<T>(_ f: (Int) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for i in self { out.append(try await f(i)) }
        return out
    }
}

nonisolated func main() async throws {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardOutput(label: label)
        handler.logLevel = .debug
        return handler
    }
    // Tests of long steps shorten when a run takes a lease, and the lease (milliseconds).
    let env = ProcessInfo.processInfo.environment
    let leaseAfter = Int(env["WARREN_LEASE_AFTER_MS"] ?? "").map { Duration.milliseconds($0) } ?? .seconds(60)
    let lease = Int(env["WARREN_LEASE_MS"] ?? "").map { Duration.milliseconds($0) } ?? .seconds(60)
    let warren = try await Warren(url: args[1], group: env["WARREN_GROUP"] ?? "workers", prefix: args[2], leaseAfter: leaseAfter, lease: lease)
    warren.register("foo-workflow") { (ctx: Context, workflowID: String) async throws -> String in
        let approval = try await ctx.promise(tags: ["human": "true"])
        _ = try await ctx.run(sendEmail, approval.id, name: "sendEmail")
        let decision: String = try await approval.value()
        FileHandle.standardOutput.write(Data("unblocked: \(decision)\n".utf8))
        return "foo workflow \(workflowID) complete"
    }
    // A human's approval through a signed link (when the worker has a link key).
    warren.register("linked-workflow") { (ctx: Context, workflowID: String) async throws -> String in
        let approval = try await ctx.promise(tags: ["human": "true", "title": "Approve \(workflowID)"])
        _ = try await ctx.run({ (_: Context, link: String) async throws -> String in
            FileHandle.standardOutput.write(Data("link: \(link)\n".utf8))
            return link
        }, try approval.link(), name: "mailLink")
        let decision: String = try await approval.value()
        return "\(workflowID): \(decision)"
    }
    // An order waiting for the team's own `order.approved` event, which names its promise in a header.
    warren.register("order-workflow") { (ctx: Context, order: String) async throws -> String in
        let approval = try await ctx.promise(id: "\(order)-approval")
        FileHandle.standardOutput.write(Data("waiting for \(approval.id)\n".utf8))
        let event: [String: String] = try await approval.value()
        return "\(order) approved by \(event["approvedBy"] ?? "?")"
    }
    warren.register("slow-workflow") { (ctx: Context, label: String) async throws -> String in
        let slow = try await ctx.run({ (_: Context, label: String) async throws -> String in
            FileHandle.standardOutput.write(Data("step started: \(label)\n".utf8))
            try await Task.sleep(for: .seconds(2))
            return "\(label) done"
        }, label, name: "slow")
        return "slow workflow: \(slow)"
    }
    warren.register("sleepy-workflow") { (ctx: Context, millis: Int) async throws -> String in
        let step = try await ctx.run({ (_: Context, n: Int) async throws -> Int in n * 2 }, millis, name: "double")
        try await ctx.sleep(for: .milliseconds(millis))
        return "slept \(millis) ms after computing \(step)"
    }
    warren.register("double-workflow") { (ctx: Context, n: Int) async throws -> Int in
        try await ctx.run({ (_: Context, n: Int) async throws -> Int in n * 2 }, n, name: "double")
    }
    // Fails its first two attempts (counted in a file named by the argument), then succeeds.
    warren.register("flaky-workflow") { (ctx: Context, counter: String) async throws -> String in
        let attempts = try await ctx.run({ (_: Context, path: String) async throws -> Int in
            let n = (Int((try? String(contentsOfFile: path, encoding: .utf8)) ?? "0") ?? 0) + 1
            try "\(n)".write(toFile: path, atomically: true, encoding: .utf8)
            FileHandle.standardOutput.write(Data("flaky attempt \(n)\n".utf8))
            if n < 3 { throw FlakyError(attempt: n) }
            return n
        }, counter, name: "flaky", retry: RetryPolicy(maximumAttempts: 5, initialDelay: .milliseconds(200)))
        return "succeeded on attempt \(attempts)"
    }
    // A child workflow awaited, and one started and left running: the parent completes only
    // after it.
    warren.register("parent-workflow") { (ctx: Context, n: Int) async throws -> String in
        let doubled: Int = try await ctx.rpc("double-workflow", n, target: "workers")
        _ = try await ctx.beginRpc("slow-double", doubled, target: "workers")
        let ran = try await ctx.now()
        let luck = try await ctx.random()
        FileHandle.standardOutput.write(Data("parent returns at \(Int(ran.timeIntervalSince1970 * 1000)) with \(luck)\n".utf8))
        return "parent of \(doubled)"
    }
    warren.register("slow-double") { (ctx: Context, n: Int) async throws -> Int in
        try await ctx.sleep(for: .milliseconds(300))
        return n * 2
    }
    // Two long steps: the first is recorded (task.progress) while the second runs.
    warren.register("two-slow-steps") { (ctx: Context, label: String) async throws -> String in
        let a = try await ctx.run({ (_: Context, label: String) async throws -> String in
            FileHandle.standardOutput.write(Data("step A started: \(label)\n".utf8))
            try await Task.sleep(for: .milliseconds(1200))
            return "A"
        }, label, name: "A")
        let b = try await ctx.run({ (_: Context, label: String) async throws -> String in
            FileHandle.standardOutput.write(Data("step B started: \(label)\n".utf8))
            try await Task.sleep(for: .seconds(3))
            return "B"
        }, label, name: "B")
        return "\(label): \(a)\(b)"
    }
    // sleep(until:) a deadline taken from the recorded time; returns how long after it woke.
    warren.register("sleep-until-workflow") { (ctx: Context, millis: Int) async throws -> Int in
        let start = try await ctx.now()
        try await ctx.sleep(until: start.addingTimeInterval(Double(millis) / 1000))
        let woke = try await ctx.now()
        return Int(woke.timeIntervalSince(start) * 1000)
    }
    // A child left running (detached): the parent completes without it.
    warren.register("detached-parent") { (ctx: Context, n: Int) async throws -> String in
        let child = try await ctx.detached("slow-double", n, target: "workers")
        return "started \(child.id)"
    }
    // A promise with an id an outside system knows.
    warren.register("named-approval") { (ctx: Context, order: String) async throws -> String in
        let approval = try await ctx.promise(id: "approval-\(order)", tags: ["human": "true"])
        let decision: String = try await approval.value()
        return "\(order): \(decision)"
    }
    // Three steps at once: returns how many ran at the same time.
    warren.register("parallel-workflow") { (ctx: Context, n: Int) async throws -> Int in
        let handles = try await (0..<n).asyncMap { i in
            try await ctx.beginRun({ (_: Context, i: Int) async throws -> Int in
                let now = running.add(1, ordering: .relaxed).newValue
                peak.max(now)
                try await Task.sleep(for: .milliseconds(300))
                running.subtract(1, ordering: .relaxed)
                return i
            }, i, name: "part")
        }
        var sum = 0
        for h in handles { sum += try await h.value() }
        return peak.value * 100 + sum
    }
    // One step that runs for the given milliseconds (longer than the broker's consumer timeout).
    warren.register("long-step") { (ctx: Context, millis: Int) async throws -> String in
        let ran = try await ctx.run({ (_: Context, millis: Int) async throws -> String in
            FileHandle.standardOutput.write(Data("long step started\n".utf8))
            try await Task.sleep(for: .milliseconds(millis))
            FileHandle.standardOutput.write(Data("long step finished\n".utf8))
            return "ran \(millis) ms"
        }, millis, name: "long")
        return "long-step: \(ran)"
    }
    // A step whose value is over the limit: the step fails at the worker, saying why.
    warren.register("huge-step") { (ctx: Context, bytes: Int) async throws -> String in
        do {
            let big = try await ctx.run({ (_: Context, n: Int) async throws -> String in String(repeating: "x", count: n) }, bytes, name: "huge")
            return "got \(big.count) bytes"
        } catch {
            return "the step failed: \(error)"
        }
    }
    // Many steps whose values together are larger than one message may be.
    warren.register("many-big-steps") { (ctx: Context, count: Int) async throws -> Int in
        var total = 0
        for i in 0..<count {
            total += try await ctx.run({ (_: Context, i: Int) async throws -> String in String(repeating: "\(i % 10)", count: 400_000) }, i, name: "big").count
        }
        return total
    }
    // Steps whose history, once the workflow sleeps, makes its next execute message large.
    warren.register("big-then-sleep") { (ctx: Context, count: Int) async throws -> String in
        for i in 0..<count {
            _ = try await ctx.run({ (_: Context, i: Int) async throws -> String in String(repeating: "\(i % 10)", count: 500_000) }, i, name: "big")
        }
        try await ctx.sleep(for: .milliseconds(10))
        return "woke with \(count) big steps"
    }
    // Code that changes between deploys (WARREN_CODE): "v1" records a step, then waits for an
    // approval; "broken" reaches that step's place with a sleep instead (its replay departs from
    // the history); "fixed" is v1 again, and also has "later-workflow"; "patched" adds an audit
    // step before the note behind `ctx.patched`, so histories recorded by v1 keep their path.
    let code = env["WARREN_CODE"] ?? "v1"
    warren.register("evolving-workflow") { (ctx: Context, id: String) async throws -> String in
        var audited = ""
        if code == "patched", ctx.patched("audit") {
            _ = try await ctx.run({ (_: Context, s: String) async throws -> String in "audited \(s)" }, id, name: "audit")
            audited = " audited"
        }
        if code == "broken" {
            try await ctx.sleep(for: .milliseconds(1))
        } else {
            _ = try await ctx.run({ (_: Context, s: String) async throws -> String in "noted \(s)" }, id, name: "note")
        }
        let approval = try await ctx.promise()
        let decision: String = try await approval.value()
        return "evolving \(id) \(decision) under \(code)\(audited)"
    }
    if code == "fixed" {
        warren.register("later-workflow") { (_: Context, id: String) async throws -> String in "later \(id) under \(code)" }
    }
    // Versions of one function deployed side by side (WARREN_VERSIONS: "1", "2" or "1,2"): v1
    // notes, then waits for an approval; v2 waits first and notes after, so a history recorded by
    // v1 and replayed by v2 would depart from it.
    let versions = Set((env["WARREN_VERSIONS"] ?? "").split(separator: ",").compactMap { Int($0) })
    if versions.contains(1) {
        warren.register("versioned-workflow", version: 1) { (ctx: Context, id: String) async throws -> String in
            _ = try await ctx.run({ (_: Context, s: String) async throws -> String in "noted \(s)" }, id, name: "note")
            let decision: String = try await ctx.promise().value()
            return "versioned \(id) \(decision) under v1"
        }
    }
    if versions.contains(2) {
        warren.register("versioned-workflow", version: 2) { (ctx: Context, id: String) async throws -> String in
            let decision: String = try await ctx.promise().value()
            _ = try await ctx.run({ (_: Context, s: String) async throws -> String in "noted \(s)" }, id, name: "note")
            return "versioned \(id) \(decision) under v2"
        }
    }
    // A loop that continues as new: a step per run, `until` runs, each a fresh history.
    struct Loop: Codable, Sendable { var n: Int; var until: Int }
    warren.register("looping-workflow") { (ctx: Context, loop: Loop) async throws -> String in
        _ = try await ctx.run({ (_: Context, n: Int) async throws -> Int in n }, loop.n, name: "tick")
        if loop.n >= loop.until { return "looped \(loop.n) times, in run \(ctx.runNumber)" }
        return try await ctx.continueAsNew(Loop(n: loop.n + 1, until: loop.until))
    }
    // Waits for an approval; canceled, it compensates with a step, then rethrows.
    warren.register("compensating-workflow") { (ctx: Context, id: String) async throws -> String in
        let approval = try await ctx.promise()
        do {
            let decision: String = try await approval.value()
            return "refund \(id) \(decision)"
        } catch let e as WarrenError where e.code == .canceled && ctx.isCanceled {
            _ = try await ctx.run({ (_: Context, id: String) async throws -> String in
                FileHandle.standardOutput.write(Data("compensated: \(id)\n".utf8))
                return "withdrawn mail sent"
            }, id, name: "withdraw")
            throw e
        }
    }
    let group = ServiceGroup(services: [warren], gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "worker"))
    try await group.run()
}

try await main()
