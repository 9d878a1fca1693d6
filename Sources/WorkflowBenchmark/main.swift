// Workflows through Warren end to end: a worker process and a client process against a running
// `warren serve`. Run by Scripts/bench-workflows.sh.
//   WorkflowBenchmark worker URL
//   WorkflowBenchmark client URL WORKFLOWS IN_FLIGHT LATENCY_SAMPLES
// The client prints: workflows_per_s=<n> resume_p50_us=<us> resume_p99_us=<us> (no latency with 0 samples)
// WARREN_PREFIX and WARREN_QUEUE_TYPE choose the topology, as for any Warren process.
import Foundation
import Logging
import ServiceLifecycle
import Warren

let args = CommandLine.arguments
let prefix = ProcessInfo.processInfo.environment["WARREN_PREFIX"] ?? "warren"

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

@Sendable func increment(_ ctx: Context, _ n: Int) async throws -> Int { n + 1 }

nonisolated func worker(url: String) async throws {
    let warren = try await Warren(url: url, group: "bench", prefix: prefix, concurrency: 256)
    // Three trivial durable steps.
    warren.register("three-steps") { (ctx: Context, n: Int) async throws -> Int in
        let a = try await ctx.run(increment, n, name: "a")
        let b = try await ctx.run(increment, a, name: "b")
        return try await ctx.run(increment, b, name: "c")
    }
    // One wait for a promise that the client resolves.
    warren.register("wait-once") { (ctx: Context, _: Int) async throws -> String in
        let p = try await ctx.promise()
        return try await p.value(as: String.self)
    }
    try await ServiceGroup(services: [warren], gracefulShutdownSignals: [.sigterm], logger: Logger(label: "bench-worker")).run()
}

nonisolated func client(url: String, total: Int, inFlight: Int, samples: Int) async throws {
    let warren = try await Warren(url: url, group: "bench-client", prefix: prefix)
    let run = UUID().uuidString.prefix(8)
    let start = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        var next = 0
        func launch() {
            let i = next
            next += 1
            group.addTask {
                let r = try await warren.rpc("w\(run)-\(i)", "three-steps", i, target: "bench", as: Int.self)
                guard r == i + 3 else { throw WarrenError(.failed, "workflow \(i) returned \(r)") }
            }
        }
        while next < min(inFlight, total) { launch() }
        while try await group.next() != nil { if next < total { launch() } }
    }
    let rate = Double(total) / seconds(ContinuousClock.now - start)

    var latencies: [Double] = []
    for i in 0..<samples {
        let id = "l\(run)-\(i)"
        let result = Task { try await warren.rpc(id, "wait-once", 0, target: "bench", as: String.self) }
        try await Task.sleep(for: .milliseconds(30))  // idle: the workflow has suspended on its promise
        let s = ContinuousClock.now
        try await warren.promises.resolve(id + ".1", value: "go")
        _ = try await result.value
        latencies.append(seconds(ContinuousClock.now - s) * 1e6)
    }
    latencies.sort()
    if samples == 0 {
        print(String(format: "workflows_per_s=%.0f", rate))
    } else {
        print(String(format: "workflows_per_s=%.0f resume_p50_us=%.0f resume_p99_us=%.0f", rate,
                     latencies[samples / 2], latencies[samples * 99 / 100]))
    }
    await warren.close()
}

do {
    switch (args.count, args.dropFirst().first) {
    case (3, "worker"): try await worker(url: args[2])
    case (6, "client"):
        guard let total = Int(args[3]), let inFlight = Int(args[4]), let samples = Int(args[5]), total > 0, inFlight > 0, samples >= 0 else {
            throw WarrenError(.codec, "WORKFLOWS and IN_FLIGHT must be positive numbers, LATENCY_SAMPLES 0 or more")
        }
        try await client(url: args[2], total: total, inFlight: inFlight, samples: samples)
    default:
        FileHandle.standardError.write(Data("usage: WorkflowBenchmark worker URL | client URL WORKFLOWS IN_FLIGHT LATENCY_SAMPLES\n".utf8))
        exit(64)
    }
} catch {
    FileHandle.standardError.write(Data("WorkflowBenchmark: \(error)\n".utf8))
    exit(1)
}
