import AMQP
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Warren
import WarrenTestSupport

// MARK: The worker role

func runWorker(url: String, prefix: String, runsLog: String, counters: String) async throws {
    LoggingSystem.bootstrap { label in
        var h = StreamLogHandler.standardOutput(label: label)
        h.logLevel = .info
        return h
    }
    let log = open(runsLog, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    @Sendable func ran(_ key: String) { _ = "\(key)\n".withCString { write(log, $0, strlen($0)) } }
    let warren = try await Warren(url: url, group: "chaos", prefix: prefix, concurrency: 64,
                                  leaseAfter: .seconds(5), lease: .seconds(6))
    warren.register("chaos-steps") { (ctx: Context, spec: Spec) async throws -> String in
        var values: [String] = []
        for i in 0..<spec.n {
            values.append(try await ctx.run({ (_: Context, key: String) async throws -> String in
                ran(key)
                return "s" + digest(key)
            }, "\(spec.id)/\(i)", name: "step"))
        }
        return values.joined(separator: ",")
    }
    warren.register("chaos-retry") { (ctx: Context, spec: Spec) async throws -> String in
        let value = try await ctx.run({ (_: Context, spec: Spec) async throws -> String in
            ran(spec.id + "/flaky")
            let path = counters + "/" + spec.id
            let attempt = (Int((try? String(contentsOfFile: path, encoding: .utf8)) ?? "0") ?? 0) + 1
            try "\(attempt)".write(toFile: path, atomically: true, encoding: .utf8)
            struct Flaky: Error {}
            if attempt <= spec.n { throw Flaky() }
            return "r" + digest(spec.id)
        }, spec, name: "flaky", retry: RetryPolicy(maximumAttempts: 10, initialDelay: .milliseconds(100), maximumDelay: .milliseconds(500)))
        return value + " after failures"
    }
    warren.register("chaos-parallel") { (ctx: Context, spec: Spec) async throws -> String in
        var children: [DurablePromise] = []
        for i in 0..<spec.n { children.append(try await ctx.beginRpc("chaos-child", i + 1, target: "chaos")) }
        var sum = 0
        for c in children { sum += try await c.value(as: Int.self) }
        return "sum \(sum)"
    }
    warren.register("chaos-child") { (ctx: Context, x: Int) async throws -> Int in
        try await ctx.run({ (ctx: Context, x: Int) async throws -> Int in
            ran(ctx.id + "/double")
            return x * 2
        }, x, name: "double")
    }
    warren.register("chaos-human") { (ctx: Context, spec: Spec) async throws -> String in
        let approval = try await ctx.promise(timeout: .seconds(3600), tags: ["human": "true"])
        if let decision = try await ctx.wait(for: approval, atMost: .milliseconds(spec.deadlineMillis ?? 60_000), as: String.self) {
            return "approved:" + decision
        }
        return "timed out"
    }
    warren.register("chaos-sleep") { (ctx: Context, spec: Spec) async throws -> String in
        let value = try await ctx.run({ (_: Context, id: String) async throws -> String in
            ran(id + "/before")
            return digest(id)
        }, spec.id, name: "before")
        try await ctx.sleep(for: .milliseconds(spec.n))
        return "slept " + value
    }
    let group = ServiceGroup(services: [warren], gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "chaos-worker"))
    try await group.run()
}
