import AMQP
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The folder of the built executables (the test bundle sits beside them).
var productsDirectory: String {
    let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
    if FileManager.default.isExecutableFile(atPath: beside + "/warren") { return beside }
    return packageRoot.path + "/.build/debug"
}

/// The broker the tests share: `WARREN_TEST_AMQP_URL`, as Scripts/test.sh sets it.
func brokerURL() throws -> String {
    guard let url = ProcessInfo.processInfo.environment["WARREN_TEST_AMQP_URL"] else {
        throw TestFailure("WARREN_TEST_AMQP_URL is not set: run the tests with Scripts/test.sh, which starts a broker")
    }
    return url
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Starts a program with its output in a log file; returns its pid.
func spawn(_ executable: String, _ arguments: [String], log: String) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let words = [executable] + arguments
    let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, executable, &actions, nil, argv, environ)
    guard rc == 0 else { throw TestFailure("cannot start \(executable): errno \(rc)") }
    return pid
}

/// Waits for a child to exit (on a thread of its own) and returns its raw wait status.
func waitForExit(_ pid: pid_t) async -> Int32 {
    await withCheckedContinuation { c in
        Thread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            c.resume(returning: status)
        }.start()
    }
}

/// Runs a program to its end; returns its exit status and output.
func run(_ executable: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
    let log = NSTemporaryDirectory() + "warren-run-\(UUID().uuidString).log"
    defer { unlink(log) }
    let pid = try spawn(executable, arguments, log: log)
    let status = await waitForExit(pid)
    return ((status >> 8) & 0xff, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
}

/// An orchestrator process (`warren serve`) with its own database and topology prefix, so that
/// tests can share one broker.
final class OrchestratorProcess: @unchecked Sendable {
    let prefix: String
    let database: String
    let log: String
    let url: String
    private(set) var pid: pid_t = 0

    init(url: String) {
        self.url = url
        prefix = "t\(UInt32.random(in: 0..<UInt32.max))"
        let dir = NSTemporaryDirectory() + "warren-orchestrator-tests"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        database = dir + "/\(prefix).db"
        log = dir + "/\(prefix).log"
    }

    /// Starts the process and waits until it consumes its queue.
    func start() async throws {
        pid = try spawn(productsDirectory + "/warren", ["serve", "--amqp-url", url, "--db", database, "--prefix", prefix,
                                                        "--log-level", "debug"], log: log)
        let connection = try await AMQPConnection.connect(url: url, name: "test-waits-for-orchestrator")
        defer { Task { await connection.close() } }
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let channel = try await connection.openChannel()
            if let ok = try? await channel.queueDeclare(prefix + ".orchestrator", passive: true), ok.consumerCount > 0 {
                try? await channel.close()
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("the orchestrator did not start within 30 s; its log:\n\(logText)")
    }

    func kill(_ signal: Int32) async -> Int32 {
        guard pid > 0 else { return -1 }  // not running: kill(0, …) would signal the whole process group
        Glibc.kill(pid, signal)
        let status = await waitForExit(pid)
        pid = 0
        return status
    }

    var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    func remove() {
        if pid > 0 { Glibc.kill(pid, SIGKILL); pid = 0 }
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: database + suffix) }
        try? FileManager.default.removeItem(atPath: log)
    }
}

/// Runs `body`, failing if it takes longer than `limit`.
func within<T: Sendable>(_ limit: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw TestFailure("timed out: \(what)")
        }
        let first = try await group.next()!
        group.cancelAll()
        return first
    }
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
