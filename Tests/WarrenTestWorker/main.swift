// A worker process for the tests: the seed article's human-in-the-loop workflow.
//   WarrenTestWorker URL PREFIX
// Prints "approve: <promise id>" when `sendEmail` runs, and "unblocked: <decision>" after the wait.
import Foundation
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

nonisolated func main() async throws {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardOutput(label: label)
        handler.logLevel = .debug
        return handler
    }
    let warren = try await Warren(url: args[1], group: "workers", prefix: args[2])
    warren.register("foo-workflow") { (ctx: Context, workflowID: String) async throws -> String in
        let approval = try await ctx.promise(tags: ["human": "true"])
        _ = try await ctx.run(sendEmail, approval.id, name: "sendEmail")
        let decision: String = try await approval.value()
        FileHandle.standardOutput.write(Data("unblocked: \(decision)\n".utf8))
        return "foo workflow \(workflowID) complete"
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
    let group = ServiceGroup(services: [warren], gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "worker"))
    try await group.run()
}

try await main()
