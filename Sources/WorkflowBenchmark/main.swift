// Workflows through Warren end to end: a worker process and a client process against a running
// `warren serve`. Run by Scripts/bench-workflows.sh.
//   WorkflowBenchmark worker URL
//   WorkflowBenchmark client URL WORKFLOWS IN_FLIGHT LATENCY_SAMPLES
//   WorkflowBenchmark history URL LENGTHS SAMPLES      (LENGTHS: 10,100,1000,10000)
// The client prints: workflows_per_s=<n> resume_p50_us=<us> resume_p99_us=<us> (no latency with 0 samples)
// History prints, per length n, the median resume latency of a workflow that waits after n steps
// in one run (every resume replays n steps) and after n runs of one step each with continueAsNew
// (a resume replays the last run), and the time per run of the continued loop.
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
    let warren = try await Warren(url: url, group: "bench", prefix: prefix, concurrency: 256, maximumCallsPerRun: 20_000)
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
    // n steps in one run, then a wait: a resume replays all n.
    warren.register("long-run") { (ctx: Context, n: Int) async throws -> String in
        for i in 0..<n { _ = try await ctx.run(increment, i, name: "s") }
        return try await ctx.promise().value(as: String.self)
    }
    // One step a run, `left` more runs with continueAsNew, then a wait: a resume replays one run.
    warren.register("continued") { (ctx: Context, left: Int) async throws -> String in
        _ = try await ctx.run(increment, left, name: "s")
        if left > 0 { return try await ctx.continueAsNew(left - 1) }
        return try await ctx.promise().value(as: String.self)
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

/// Waits until promise `id` exists (the workflow reached its wait), polling.
func waitFor(_ id: String, _ warren: Warren) async throws {
    while true {
        if (try? await warren.promises.get(id)) != nil { return }
        try await Task.sleep(for: .milliseconds(20))
    }
}

nonisolated func history(url: String, lengths: [Int], samples: Int) async throws {
    let warren = try await Warren(url: url, group: "bench-client", prefix: prefix)
    let run = UUID().uuidString.prefix(8)
    /// Resolves `waiting` and returns how long the workflow's result took to come, in µs.
    func resume(_ handle: WorkflowHandle, _ waiting: String) async throws -> Double {
        try await waitFor(waiting, warren)
        try await Task.sleep(for: .milliseconds(30))  // idle: the workflow has suspended
        let s = ContinuousClock.now
        try await warren.promises.resolve(waiting, value: "go")
        _ = try await handle.result(as: String.self)
        return seconds(ContinuousClock.now - s) * 1e6
    }
    for n in lengths {
        var single: [Double] = []
        var continued: [Double] = []
        var perRun: [Double] = []
        for i in 0..<samples {
            let id = "h\(run)-\(n)-\(i)"
            single.append(try await resume(try await warren.beginRpc(id, "long-run", n, target: "bench", timeout: .seconds(3600)), "\(id).\(n + 1)"))
            let cid = "c\(run)-\(n)-\(i)"
            let started = ContinuousClock.now
            let handle = try await warren.beginRpc(cid, "continued", n, target: "bench", timeout: .seconds(3600))
            let waiting = RunMarker.prefix(of: cid, run: n + 1) + ".2"
            try await waitFor(waiting, warren)
            perRun.append(seconds(ContinuousClock.now - started) * 1e6 / Double(n + 1))
            continued.append(try await resume(handle, waiting))
        }
        single.sort(); continued.sort(); perRun.sort()
        print(String(format: "history=%d resume_one_run_p50_us=%.0f resume_continued_p50_us=%.0f ratio=%.2f continued_us_per_run=%.0f",
                     n, single[samples / 2], continued[samples / 2], single[samples / 2] / continued[samples / 2], perRun[samples / 2]))
    }
    await warren.close()
}

do {
    switch (args.count, args.dropFirst().first) {
    case (5, "history"):
        let lengths = args[3].split(separator: ",").compactMap { Int($0) }
        guard !lengths.isEmpty, lengths.allSatisfy({ $0 > 0 }), let samples = Int(args[4]), samples > 0 else {
            throw WarrenError(.codec, "LENGTHS must be positive numbers separated by commas, SAMPLES a positive number")
        }
        try await history(url: args[2], lengths: lengths, samples: samples)
    case (3, "worker"): try await worker(url: args[2])
    case (6, "client"):
        guard let total = Int(args[3]), let inFlight = Int(args[4]), let samples = Int(args[5]), total > 0, inFlight > 0, samples >= 0 else {
            throw WarrenError(.codec, "WORKFLOWS and IN_FLIGHT must be positive numbers, LATENCY_SAMPLES 0 or more")
        }
        try await client(url: args[2], total: total, inFlight: inFlight, samples: samples)
    default:
        FileHandle.standardError.write(Data("usage: WorkflowBenchmark worker URL | client URL WORKFLOWS IN_FLIGHT LATENCY_SAMPLES | history URL LENGTHS SAMPLES\n".utf8))
        exit(64)
    }
} catch {
    FileHandle.standardError.write(Data("WorkflowBenchmark: \(error)\n".utf8))
    exit(1)
}
