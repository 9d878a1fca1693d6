// The chaos suite (Scripts/chaos.sh runs it): a seeded schedule of workflows of mixed kinds, run
// by real `warren serve` and worker processes on a private RabbitMQ, while the driver SIGKILLs
// workers and the orchestrator, stops and starts the broker, sends duplicate resolves and
// resolves that race their timeouts, and injects bad inputs. At the end it checks that every
// workflow has exactly the result a fault-free run of the same seed gives, that every recorded
// step is the one the workflow used, that nothing valid sits in the dead-letter queue and no
// task is stuck, and prints the figures. A failure prints the seed that replays it.
//
//   WarrenChaos drive --seed S --workflows N --bin DIR --broker-dir DIR --scripts DIR --work DIR
//   WarrenChaos worker URL PREFIX RUNS_LOG COUNTERS_DIR     (started by the driver)
import AMQP
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import ServiceLifecycle
import Synchronization
import Warren
import WarrenTestSupport

#if canImport(Glibc)
import Glibc
#endif

// MARK: The driver role

struct Options {
    var seed: UInt64 = 1
    var workflows = 200
    var bin = ""
    var brokerDir = ""
    var scripts = ""
    var work = ""
    var port = 0
    var workers = 2
    /// Seconds between faults, on average.
    var faultEvery = 2.0
    /// Workflows started per second, so that the faults land while they run.
    var rate = 5.0
    /// A cluster's folder (Scripts/cluster.sh) instead of one broker: every process gets all
    /// the nodes and quorum queues, and the broker fault kills and restarts one node.
    var clusterDir = ""
    var clusterURL = ""
    var nodes = 3
}

final class Figures: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [String: Int] = [:]
    func add(_ what: String, _ n: Int = 1) { lock.lock(); counts[what, default: 0] += n; lock.unlock() }
    var all: [String: Int] { lock.lock(); defer { lock.unlock() }; return counts }
}

struct HTTP {
    let base: String
    func call(_ method: String, _ path: String, body: String? = nil, headers: [String: String] = [:]) async throws -> (Int, [String: Any]) {
        var r = URLRequest(url: URL(string: base + path)!, timeoutInterval: 10)
        r.httpMethod = method
        for (k, v) in headers { r.setValue(v, forHTTPHeaderField: k) }
        if let body { r.httpBody = Data(body.utf8); r.setValue("application/json", forHTTPHeaderField: "content-type") }
        let (data, response) = try await URLSession.shared.data(for: r)
        return ((response as! HTTPURLResponse).statusCode, (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:])
    }
    /// Retries through restarts (connection refused, 503) until `limit`.
    func retrying(_ method: String, _ path: String, body: String? = nil, headers: [String: String] = [:],
                  limit: Duration = .seconds(120)) async throws -> (Int, [String: Any]) {
        let deadline = ContinuousClock.now + limit
        while true {
            if let answer = try? await call(method, path, body: body, headers: headers), answer.0 != 503 { return answer }
            if ContinuousClock.now > deadline { throw TestFailure("\(method) \(path): no answer within \(limit)") }
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}

/// The processes under test, restarted by the faults.
final class Stack: @unchecked Sendable {
    let o: Options
    let url: String
    let prefix: String
    let httpPort: Int
    var orchestrator: pid_t = 0
    var workers: [pid_t] = []
    let lock = NSLock()

    init(_ o: Options) {
        self.o = o
        url = o.clusterDir.isEmpty ? "amqp://guest:guest@127.0.0.1:\(o.port)/%2f" : o.clusterURL
        prefix = "chaos"
        httpPort = freePort()
    }

    var runsLog: String { o.work + "/runs.log" }

    func startOrchestrator() throws {
        orchestrator = try spawn(o.bin + "/warren", ["serve", "--amqp-url", url, "--db", o.work + "/warren.db", "--prefix", prefix,
                                                     "--http-port", "\(httpPort)", "--queue-type", queueType], log: o.work + "/orchestrator.log")
    }

    func startWorker(_ i: Int) throws {
        let pid = try spawn(o.bin + "/WarrenChaos", ["worker", url, prefix, runsLog, o.work + "/counters"], log: o.work + "/worker\(i).log",
                            environment: ["WARREN_QUEUE_TYPE": queueType])
        lock.lock(); workers[i] = pid; lock.unlock()
    }

    var queueType: String { o.clusterDir.isEmpty ? "classic" : "quorum" }

    /// On a cluster: SIGKILLs node `node` (1-based) or starts it again.
    func node(_ command: String, _ node: Int) async throws {
        let r = try await run("/bin/bash", [o.scripts + "/cluster.sh", command, o.clusterDir, "\(node)"])
        if r.status != 0 { throw TestFailure("cluster.sh \(command) \(node): \(r.output)") }
    }

    func broker(_ command: String) async throws {
        var args = [o.scripts + "/broker.sh", command, o.brokerDir]
        if command == "start" { args += ["--port", "\(o.port)"] }
        let r = try await run("/bin/bash", args)
        if r.status != 0 { throw TestFailure("broker.sh \(command): \(r.output)") }
    }

    func killAll() async {
        for pid in workers + [orchestrator] where pid > 0 { kill(pid, SIGKILL); _ = await waitForExit(pid) }
    }
}

func drive(_ o: Options) async throws -> Bool {
    let started = ContinuousClock.now
    let specs = makeSchedule(seed: o.seed, count: o.workflows)
    let figures = Figures()
    try FileManager.default.createDirectory(atPath: o.work + "/counters", withIntermediateDirectories: true)
    let stack = Stack(o)
    stack.workers = Array(repeating: 0, count: o.workers)
    try stack.startOrchestrator()
    for i in 0..<o.workers { try stack.startWorker(i) }
    let http = HTTP(base: "http://127.0.0.1:\(stack.httpPort)")
    _ = try await http.retrying("GET", "/health", limit: .seconds(60))
    let client = try await Warren(url: stack.url, group: "chaos-driver", prefix: stack.prefix,
                                  queueType: o.clusterDir.isEmpty ? .classic : .quorum)
    defer { let c = client; Task { await c.close() } }
    print("chaos: seed \(o.seed), \(specs.count) workflows (\(Dictionary(grouping: specs, by: \.kind).map { "\($0.value.count) \($0.key)" }.sorted().joined(separator: ", "))), \(o.workers) workers")

    // The faults, on their own seeded schedule, until every workflow is started and resolved.
    let finished = Mutex(false)
    let faults = Task {
        var rng = SeededRandom(state: o.seed ^ 0xFA17)
        while !finished.withLock({ $0 }) {
            let pause = o.faultEvery * (0.5 + Double(rng.next() % 1000) / 1000)
            try? await Task.sleep(for: .milliseconds(Int(pause * 1000)))
            if finished.withLock({ $0 }) { break }
            do {
                switch rng.next() % 10 {
                case 0...3:
                    let i = Int(rng.next() % UInt64(o.workers))
                    let pid = stack.lock.withLock { stack.workers[i] }
                    kill(pid, SIGKILL); _ = await waitForExit(pid)
                    figures.add("worker SIGKILLed")
                    try await Task.sleep(for: .milliseconds(Int(rng.next() % 1500)))
                    try stack.startWorker(i)
                case 4...5:
                    kill(stack.orchestrator, SIGKILL); _ = await waitForExit(stack.orchestrator)
                    figures.add("orchestrator SIGKILLed")
                    try await Task.sleep(for: .milliseconds(Int(rng.next() % 1000)))
                    try stack.startOrchestrator()
                case 6 where !o.clusterDir.isEmpty:
                    let node = Int(rng.next() % UInt64(o.nodes)) + 1
                    try await stack.node("kill", node)
                    figures.add("cluster node SIGKILLed and restarted")
                    try await Task.sleep(for: .milliseconds(Int(rng.next() % 2000)))
                    try await stack.node("restart", node)
                case 6:
                    try await stack.broker("stop")
                    figures.add("broker stopped and started")
                    try await Task.sleep(for: .milliseconds(Int(rng.next() % 2000)))
                    try await stack.broker("start")
                default:
                    try await injectBadInputs(stack, figures: figures, rng: &rng)
                }
            } catch {
                print("chaos: a fault failed to apply: \(error)")
            }
        }
    }

    // Start every workflow (over AMQP, retrying through the faults), and settle the human ones.
    func startAll() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var inFlight = 0
            let pace = Duration.milliseconds(Int(1000 / max(o.rate, 0.1)))
            for spec in specs {
                try await Task.sleep(for: pace)
                if inFlight >= 64 { try await group.next(); inFlight -= 1 }
                inFlight += 1
                let c = client
                group.addTask {
                    let deadline = ContinuousClock.now + .seconds(300)
                    while true {
                        do {
                            _ = try await c.beginRpc(spec.id, spec.function, spec, target: "chaos", timeout: .seconds(3600))
                            break
                        } catch {
                            if ContinuousClock.now > deadline { throw TestFailure("\(spec.id) could not be started: \(error)") }
                            figures.add("client retries")
                            try await Task.sleep(for: .milliseconds(300))
                        }
                    }
                    if spec.kind == .human { try await settleHuman(spec, http: http, figures: figures) }
                }
            }
            try await group.waitForAll()
        }
    }
    do {
        try await startAll()
    } catch {
        finished.withLock { $0 = true }
        await faults.value
        throw error
    }
    finished.withLock { $0 = true }
    await faults.value

    // Everything settles once the faults stop.
    var results: [String: (state: String, value: String?)] = [:]
    let deadline = ContinuousClock.now + .seconds(300)
    for spec in specs {
        while true {
            let (status, w) = try await http.retrying("GET", "/workflows/" + spec.id)
            if status == 200, let state = w["state"] as? String, state != "PENDING" {
                results[spec.id] = (state, (w["result"] as? String) ?? (w["error"].map { "\($0)" }))
                break
            }
            if ContinuousClock.now > deadline { results[spec.id] = ("PENDING", nil); break }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
    _ = client

    // The checks.
    var failures: [String] = []
    for spec in specs {
        let r = results[spec.id]!
        guard r.state == "RESOLVED", let value = r.value else {
            failures.append("\(spec.id) (\(spec.kind)): \(r.state) \(r.value ?? "")"); continue
        }
        if let expected = spec.expected {
            if value != expected { failures.append("\(spec.id) (\(spec.kind)): got '\(value)', a fault-free run gives '\(expected)'") }
        } else {
            // A race: the result must agree with what was recorded for the approval.
            let (_, p) = try await http.retrying("GET", "/promises/\(spec.id).1")
            let state = p["state"] as? String ?? "?"
            let agrees = (value.hasPrefix("approved:") && state == "RESOLVED") || value == "timed out"
            if !agrees { failures.append("\(spec.id) (race): result '\(value)' but the approval is \(state)") }
            figures.add(value == "timed out" ? "races won by the deadline" : "races won by the resolve")
        }
        // Every recorded step is the value the workflow used.
        if spec.kind == .steps {
            for i in 0..<spec.n {
                let (_, p) = try await http.retrying("GET", "/promises/\(spec.id).\(i + 1)")
                let data = (p["value"] as? [String: Any])?["data"] as? String
                let text = data.flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) }
                if text != "\"s\(digest("\(spec.id)/\(i)"))\"" { failures.append("\(spec.id): step \(i + 1) recorded \(text ?? "nothing")") }
            }
        }
    }
    // No task stuck.
    for state in ["pending", "acquired", "suspended"] {
        let (_, page) = try await http.retrying("GET", "/tasks?state=\(state)&limit=1000")
        let tasks = page["tasks"] as? [[String: Any]] ?? []
        if !tasks.isEmpty { failures.append("\(tasks.count) task(s) still \(state): \(tasks.prefix(3).compactMap { $0["id"] as? String })") }
    }
    // Nothing set aside, nothing valid dead.
    let (_, outbox) = try await http.retrying("GET", "/outbox")
    if let set = outbox["messages"] as? [Any], !set.isEmpty { failures.append("\(set.count) outgoing message(s) set aside: \(set.prefix(2))") }
    let dead = try await drainDead(stack)
    let valid = dead.filter { !$0.hasPrefix("chaos-bad-") }
    figures.add("bad inputs dead-lettered", dead.count - valid.count)
    if !valid.isEmpty { failures.append("\(valid.count) valid message(s) in \(stack.prefix).dead: \(valid.prefix(3))") }
    // Steps that ran more than once (a worker killed after running one, before its outcome was recorded).
    // (Attempts of the flaky steps are retries by design, not duplicates.)
    let runs = ((try? String(contentsOfFile: stack.runsLog, encoding: .utf8)) ?? "").split(separator: "\n").filter { !$0.hasSuffix("/flaky") }
    figures.add("step executions (retries aside)", runs.count)
    figures.add("steps run again after a fault", runs.count - Set(runs).count)

    await stack.killAll()
    let elapsed = ContinuousClock.now - started
    print("chaos: figures (seed \(o.seed))")
    func row(_ label: String, _ value: String) { print("  " + label.padding(toLength: 42, withPad: " ", startingAt: 0) + value) }
    row("workflows", "\(specs.count)")
    for (k, v) in figures.all.sorted(by: { $0.key < $1.key }) { row(k, "\(v)") }
    row("seconds", String(format: "%.1f", Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18))
    if failures.isEmpty {
        print("chaos: PASSED — every workflow has the result a fault-free run gives; nothing lost, stuck or wrongly dead")
        return true
    }
    print("chaos: FAILED (\(failures.count) problems); replay with --seed \(o.seed) --workflows \(o.workflows)")
    for f in failures.prefix(30) { print("  - \(f)") }
    return false
}

/// Resolves a human workflow's approval when the schedule says, over HTTP with an idempotency
/// key (retried through restarts); a duplicate resolve with another value must be refused.
func settleHuman(_ spec: Spec, http: HTTP, figures: Figures) async throws {
    let approval = spec.id + ".1"
    // Wait until the workflow created it (a run must reach ctx.promise first).
    let deadline = ContinuousClock.now + .seconds(300)
    while true {
        if let (status, _) = try? await http.call("GET", "/promises/" + approval), status == 200 { break }
        if ContinuousClock.now > deadline { throw TestFailure("\(approval) was never created") }
        try await Task.sleep(for: .milliseconds(100))
    }
    try await Task.sleep(for: .milliseconds(spec.resolveAfterMillis ?? 0))
    let value = Data("\"\(spec.humanValue ?? "")\"".utf8).base64EncodedString()
    let (status, _) = try await http.retrying("PATCH", "/promises/" + approval, body: #"{"state": "RESOLVED", "value": {"data": "\#(value)"}}"#,
                                              headers: ["idempotency-key": "driver-" + approval])
    figures.add(status == 200 ? "resolves accepted" : "resolves refused")
    if spec.duplicateResolve {
        let other = Data("\"duplicate\"".utf8).base64EncodedString()
        let (again, _) = try await http.retrying("PATCH", "/promises/" + approval, body: #"{"state": "RESOLVED", "value": {"data": "\#(other)"}}"#)
        figures.add("duplicate resolves sent (each refused)")
        if again == 200 { throw TestFailure("a duplicate resolve of \(approval) with another value was accepted") }
    }
}

/// Bad inputs of every kind the hardening issue lists, each marked with a `chaos-bad-` message id.
func injectBadInputs(_ stack: Stack, figures: Figures, rng: inout SeededRandom) async throws {
    let connection = try await AMQPConnection.connect(url: stack.url, name: "chaos-bad-inputs")
    defer { Task { await connection.close() } }
    let channel = try await connection.openChannel()
    try await channel.confirmSelect()
    let n = rng.next()
    var tags: [String] = []
    for i in 0..<1000 { tags.append("\"k\(i)\": \"v\"") }
    let bad: [(String, [UInt8])] = [
        ("promise.create", Array("{not json".utf8)),
        ("promise.frobnicate", Array(#"{"id": "x"}"#.utf8)),
        ("promise.create", Array(#"{"id": "\#(String(repeating: "a", count: 250))", "timeout": "1h"}"#.utf8)),
        ("promise.search", Array(#"{"id": "*", "tags": {\#(tags.joined(separator: ","))}}"#.utf8)),
        ("promise.resolve", Array(#"{"id": "chaos-nobody-\#(n)", "value": 1}"#.utf8)),
        ("promise.create", [UInt8](repeating: UInt8(ascii: "x"), count: 2 << 20)),
    ]
    for (i, (kind, body)) in bad.enumerated() {
        try await channel.basicPublish(body, exchange: stack.prefix, routingKey: kind,
                                       properties: BasicProperties(deliveryMode: .persistent, messageID: "chaos-bad-\(n)-\(i)")).wait()
    }
    figures.add("bad inputs injected", bad.count)
}

/// Takes every message out of the dead-letter queue; returns their message ids (or routing keys).
func drainDead(_ stack: Stack) async throws -> [String] {
    let connection = try await AMQPConnection.connect(url: stack.url, name: "chaos-dead")
    defer { Task { await connection.close() } }
    let channel = try await connection.openChannel()
    let count = Int(try await channel.queueDeclare(stack.prefix + ".dead", passive: true).messageCount)
    guard count > 0 else { return [] }
    var it = try await channel.basicConsume(queue: stack.prefix + ".dead", noAck: true).makeAsyncIterator()
    var ids: [String] = []
    while ids.count < count, let d = try await it.next() {
        let header = d.properties.headers?["amqp.message_id"]?.stringValue
        ids.append(d.properties.messageID ?? header ?? "routing key \(d.routingKey): \(d.properties.headers?["x-warren-error"]?.stringValue ?? "")")
    }
    return ids
}

// MARK: Entry

let arguments = CommandLine.arguments
if arguments.count == 6, arguments[1] == "worker" {
    try await runWorker(url: arguments[2], prefix: arguments[3], runsLog: arguments[4], counters: arguments[5])
    exit(0)
}
guard arguments.count >= 2, arguments[1] == "drive" else {
    FileHandle.standardError.write(Data("usage: WarrenChaos drive --seed S --workflows N --bin DIR --broker-dir DIR --port P --scripts DIR --work DIR\n".utf8))
    exit(64)
}
var options = Options()
var i = 2
while i + 1 < arguments.count {
    let (key, value) = (arguments[i], arguments[i + 1])
    switch key {
    case "--seed": options.seed = UInt64(value) ?? 1
    case "--workflows": options.workflows = Int(value) ?? 200
    case "--bin": options.bin = value
    case "--broker-dir": options.brokerDir = value
    case "--port": options.port = Int(value) ?? 5672
    case "--scripts": options.scripts = value
    case "--work": options.work = value
    case "--workers": options.workers = Int(value) ?? 2
    case "--fault-every": options.faultEvery = Double(value) ?? 2
    case "--rate": options.rate = Double(value) ?? 5
    case "--cluster-dir": options.clusterDir = value
    case "--cluster-url": options.clusterURL = value
    case "--nodes": options.nodes = Int(value) ?? 3
    default: FileHandle.standardError.write(Data("unknown option \(key)\n".utf8)); exit(64)
    }
    i += 2
}
do {
    exit(try await drive(options) ? 0 : 1)
} catch {
    print("chaos: FAILED: \(error); replay with --seed \(options.seed) --workflows \(options.workflows)")
    exit(1)
}
