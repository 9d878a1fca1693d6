import AMQP
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The project's root, found from this file's path (Tests/AMQPTests/Support.swift).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Runs a program and returns its exit status and output (stdout and stderr together).
///
/// posix_spawn and waitpid on a thread of its own, output through a file: Foundation's
/// `Process` sometimes never reports the exit of a script that leaves a daemon behind (a
/// broker), and a pipe stays open as long as any grandchild holds it.
@discardableResult
func run(_ executable: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
    let outputPath = NSTemporaryDirectory() + "warren-run-\(UUID().uuidString).log"
    defer { unlink(outputPath) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
    guard spawned == 0 else { throw BrokerScriptError(message: "cannot run \(executable): errno \(spawned)") }
    let child = pid
    let status: Int32 = await withCheckedContinuation { c in
        let waiter = Thread {
            var status: Int32 = 0
            while waitpid(child, &status, 0) == -1 && errno == EINTR {}
            c.resume(returning: (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f))
        }
        waiter.start()
    }
    let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    return (status, output)
}

/// A port that is free now, with port+20000 (the broker's distribution port) free too.
func freePort() -> Int {
    func bindable(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
    while true {
        let p = Int.random(in: 30000..<45000)
        if bindable(p), bindable(p + 20000) { return p }
    }
}

/// A RabbitMQ broker of a test's own, in a temporary folder, through Scripts/broker.sh.
struct PrivateBroker {
    let dir: String
    let port: Int
    let tlsPort: Int?
    var url: String { "amqp://guest:guest@127.0.0.1:\(port)/%2f" }

    static func start(tls: Bool = false, consumerTimeoutMillis: Int? = nil) async throws -> PrivateBroker {
        let port = freePort()
        let tlsPort = tls ? freePort() : nil
        let dir = NSTemporaryDirectory() + "warren-test-brokers/\(port)"
        var args = ["start", dir, "--port", "\(port)"]
        if let tlsPort { args += ["--tls-port", "\(tlsPort)"] }
        if let consumerTimeoutMillis { args += ["--consumer-timeout", "\(consumerTimeoutMillis)"] }
        let broker = PrivateBroker(dir: dir, port: port, tlsPort: tlsPort)
        try await broker.script(args)
        return broker
    }

    func script(_ args: [String]) async throws {
        let r = try await run("/bin/bash", [packageRoot.appendingPathComponent("Scripts/broker.sh").path] + args)
        if r.status != 0 { throw BrokerScriptError(message: "broker.sh \(args.joined(separator: " ")) failed: \(r.output)") }
    }

    func stop() async throws { try await script(["stop", dir]) }
    func restart() async throws { try await script(["start", dir, "--port", "\(port)"] + (tlsPort.map { ["--tls-port", "\($0)"] } ?? [])) }
    func ctl(_ args: [String]) async throws -> String {
        let r = try await run("/bin/bash", [packageRoot.appendingPathComponent("Scripts/broker.sh").path, "ctl", dir] + args)
        return r.output
    }

    /// Stops the broker and removes its folder.
    func destroy() async {
        try? await stop()
        try? FileManager.default.removeItem(atPath: dir)
    }
}

struct BrokerScriptError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// The broker most tests share: `WARREN_TEST_AMQP_URL` (Scripts/test.sh starts one), or a
/// private broker started on first use and stopped when the test process exits.
enum SharedBroker {
    private static let started = Mutex<Task<String, any Error>?>(nil)

    static func url() async throws -> String {
        if let url = ProcessInfo.processInfo.environment["WARREN_TEST_AMQP_URL"] { return url }
        let task = started.withLock { t in
            if let t { return t }
            let new = Task<String, any Error> {
                let broker = try await PrivateBroker.start()
                sharedBrokerDir = broker.dir
                atexit {
                    if let dir = sharedBrokerDir {
                        _ = system("bash '\(packageRoot.path)/Scripts/broker.sh' stop '\(dir)' >/dev/null 2>&1; rm -rf '\(dir)'")
                    }
                }
                return broker.url
            }
            t = new
            return new
        }
        return try await task.value
    }
}

nonisolated(unsafe) private var sharedBrokerDir: String?

/// A unique name for a test's queues and exchanges.
func uniqueName(_ prefix: String) -> String {
    "\(prefix)-\(UInt64.random(in: 0..<UInt64.max).description.prefix(10))"
}

struct TimedOut: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out: \(what)" }
}

/// Runs `body`, failing with `TimedOut` if it takes longer than `limit`.
func within<T: Sendable>(_ limit: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw TimedOut(what: what)
        }
        let first = try await group.next()!
        group.cancelAll()
        return first
    }
}

/// Expects `body` to throw an `AMQPError` with `code`, within `limit`; returns the error.
@discardableResult
func expectAMQPError(_ code: AMQPError.Code, within limit: Duration = .seconds(15),
                     sourceLocation: SourceLocation = #_sourceLocation,
                     _ body: @escaping @Sendable () async throws -> Void) async -> AMQPError? {
    do {
        try await within(limit, "expected \(code)") { try await body() }
        Issue.record("expected AMQPError.\(code), but nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as AMQPError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected AMQPError.\(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

extension AMQPConsumer {
    /// The next delivery, or a TimedOut error.
    func next(within limit: Duration = .seconds(10)) async throws -> AMQPDelivery {
        let consumer = self
        return try await AMQP_Tests_within(limit) {
            var it = consumer.makeAsyncIterator()
            guard let d = try await it.next() else { throw TimedOut(what: "the consumer ended") }
            return d
        }
    }
}

private func AMQP_Tests_within<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await within(limit, "waiting for a delivery", body)
}
