import AMQP
import Foundation
import Testing
import Warren
import WarrenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The broker the tests share: `WARREN_TEST_AMQP_URL`, as Scripts/test.sh sets it.
func brokerURL() throws -> String {
    guard let url = ProcessInfo.processInfo.environment["WARREN_TEST_AMQP_URL"] else {
        throw TestFailure("WARREN_TEST_AMQP_URL is not set: run the tests with Scripts/test.sh, which starts a broker")
    }
    return url
}

/// An orchestrator process (`warren serve`) with its own database and topology prefix, so that
/// tests can share one broker.
final class OrchestratorProcess: @unchecked Sendable {
    let prefix: String
    let database: String
    let log: String
    let url: String
    /// Its HTTP API's port, and the API's base URL.
    let httpPort = freePort()
    var httpURL: String { "http://127.0.0.1:\(httpPort)" }
    private(set) var pid: pid_t = 0

    init(url: String, database: String? = nil, prefix: String? = nil, name: String = "") {
        self.url = url
        self.prefix = prefix ?? Self.newPrefix()
        let dir = NSTemporaryDirectory() + "warren-orchestrator-tests"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        self.database = database ?? dir + "/\(self.prefix).db"
        log = dir + "/\(self.prefix)\(name).log"
    }

    /// Starts the process and waits until it consumes its queue and its HTTP API answers.
    func start(_ extraArguments: [String] = []) async throws {
        try launch(extraArguments)
        try await waitUntilServing()
    }

    /// Starts the process without waiting for it (a standby waits for the active orchestrator).
    func launch(_ extraArguments: [String] = []) throws {
        pid = try spawn(productsDirectory + "/warren", ["serve", "--amqp-url", url, "--db", database, "--prefix", prefix,
                                                        "--http-port", "\(httpPort)", "--log-level", "debug"] + extraArguments, log: log)
    }

    /// Waits until it consumes its queue and its HTTP API answers.
    func waitUntilServing(within limit: Duration = .seconds(30)) async throws {
        let connection = try await AMQPConnection.connect(url: url, name: "test-waits-for-orchestrator")
        defer { Task { await connection.close() } }
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            // A passive declare of a missing queue closes its channel: a new one each time.
            let channel = try await connection.openChannel()
            let consumers = (try? await channel.queueDeclare(prefix + ".orchestrator", passive: true))?.consumerCount ?? 0
            try? await channel.close()
            if consumers > 0, (try? await http("GET", httpURL + "/health"))?.status == 200 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("the orchestrator did not start within \(limit); its log:\n\(logText)")
    }

    func kill(_ signal: Int32) async -> Int32 {
        guard pid > 0 else { return -1 }  // not running: kill(0, …) would signal the whole process group
        Glibc.kill(pid, signal)
        let status = await waitForExit(pid)
        pid = 0
        return status
    }

    var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    /// A topology prefix of its own, so that tests can share a broker.
    static func newPrefix() -> String { "t\(UInt32.random(in: 0..<UInt32.max))" }

    func remove() {
        if pid > 0 { Glibc.kill(pid, SIGKILL); pid = 0 }
        for suffix in ["", "-wal", "-shm", ".lock"] { try? FileManager.default.removeItem(atPath: database + suffix) }
        try? FileManager.default.removeItem(atPath: log)
    }
}

/// A worker process (the WarrenTestWorker executable) with its output in a log file.
final class WorkerProcess: @unchecked Sendable {
    let log: String
    var pid: pid_t = 0
    init(prefix: String, n: Int) {
        log = NSTemporaryDirectory() + "warren-orchestrator-tests/\(prefix)-worker\(n).log"
    }
    func start(url: String, prefix: String, environment: [String: String] = [:]) throws {
        pid = try spawn(productsDirectory + "/WarrenTestWorker", [url, prefix], log: log, environment: environment)
    }
    var text: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
    /// Waits for a line starting with `prefix` (and holding `containing`) and returns it.
    func line(startingWith prefix: String, containing: String = "", within limit: Duration = .seconds(30)) async throws -> String {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) && (containing.isEmpty || $0.contains(containing)) }) {
                return String(line)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("no line '\(prefix)…' from the worker within \(limit); its log:\n\(text)")
    }
    func kill(_ signal: Int32) async {
        guard pid > 0 else { return }  // never started: kill(0, …) would signal the whole process group
        Glibc.kill(pid, signal)
        _ = await waitForExit(pid)
        pid = 0
    }
    func remove() { if pid > 0 { Glibc.kill(pid, SIGKILL) }; try? FileManager.default.removeItem(atPath: log) }
}

/// A promise record as the settled events and replies carry it.
struct Record: Decodable, Equatable {
    struct Value: Decodable, Equatable { var headers: [String: String]?; var data: String? }
    var id: String
    var state: String
    var value: Value?
    var param: Value?
    var timeout: Int64
}

/// An orchestrator, a worker process (WarrenTestWorker) and a client of group `clientGroup`, on
/// `broker` (the shared one by default): runs `body`, prints both logs if it throws, and stops
/// everything.
func withWorkflows(broker: String? = nil, database: String? = nil, clientGroup: String = "gateway", orchestratorArguments: [String] = [],
                   workerEnvironment: [String: String] = [:],
                   _ body: (OrchestratorProcess, WorkerProcess, Warren) async throws -> Void) async throws {
    let orchestrator = OrchestratorProcess(url: try broker ?? brokerURL(), database: database)
    let worker = WorkerProcess(prefix: orchestrator.prefix, n: 1)
    defer { orchestrator.remove(); worker.remove() }
    try await orchestrator.start(orchestratorArguments)
    try worker.start(url: orchestrator.url, prefix: orchestrator.prefix, environment: workerEnvironment)
    let client = try await Warren(url: orchestrator.url, group: clientGroup, prefix: orchestrator.prefix)
    do {
        try await body(orchestrator, worker, client)
    } catch {
        print("orchestrator log:\n\(orchestrator.logText.suffix(3000))\nworker log:\n\(worker.text.suffix(3000))")
        await client.close()
        throw error
    }
    await client.close()
    await worker.kill(SIGTERM)
    _ = await orchestrator.kill(SIGTERM)
}

/// ``withWorkflows(broker:clientGroup:_:)`` with a second worker process, not started: for tests
/// that kill the first and start its replacement.
func withReplaceableWorker(_ body: (OrchestratorProcess, WorkerProcess, WorkerProcess, Warren) async throws -> Void) async throws {
    try await withWorkflows { orchestrator, first, client in
        let second = WorkerProcess(prefix: orchestrator.prefix, n: 2)
        defer { second.remove() }
        do {
            try await body(orchestrator, first, second, client)
        } catch {
            print("second worker log:\n\(second.text.suffix(3000))")
            throw error
        }
        await second.kill(SIGTERM)
    }
}

/// Waits until workflow `id` is no longer pending, through the HTTP API at `base`; returns its view.
func settledWorkflow(_ id: String, at base: String, headers: [String: String] = [:]) async throws -> HTTPAnswer {
    try await within(.seconds(30), "workflow \(id) to complete") {
        while true {
            let w = try await http("GET", base + "/workflows/" + id, headers: headers)
            if w.json["state"] as? String != "PENDING" { return w }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// A private broker for one test (to stop it, or to give it settings of its own): runs `body`
/// and destroys the broker, also when `body` throws.
func withPrivateBroker(tls: Bool = false, consumerTimeoutMillis: Int? = nil, maximumMessageBytes: Int? = nil,
                       _ body: (PrivateBroker) async throws -> Void) async throws {
    let broker = try await PrivateBroker.start(tls: tls, consumerTimeoutMillis: consumerTimeoutMillis, maximumMessageBytes: maximumMessageBytes)
    do {
        try await body(broker)
    } catch {
        await broker.destroy()
        throw error
    }
    await broker.destroy()
}

