import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// What the test targets share: real processes (posix_spawn and waitpid on a thread of its own,
// output through a file: Foundation's `Process` sometimes never reports the exit of a script
// that leaves a daemon behind, and a pipe stays open as long as any grandchild holds it),
// private brokers, ports and deadlines.

/// The project's root, found from this file's path (Tests/WarrenTestSupport/Processes.swift).
public let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The folder of the built executables (the test bundle sits beside them).
public var productsDirectory: String {
    let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
    if FileManager.default.isExecutableFile(atPath: beside + "/warren") { return beside }
    return packageRoot.path + "/.build/debug"
}

public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

public struct TimedOut: Error, CustomStringConvertible {
    public var what: String
    public init(what: String) { self.what = what }
    public var description: String { "timed out: \(what)" }
}

/// Starts a program with stdout and stderr appended to `log`; returns its pid.
public func spawn(_ executable: String, _ arguments: [String], log: String, environment: [String: String] = [:]) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var env = ProcessInfo.processInfo.environment
    env.merge(environment) { _, new in new }
    let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { envp.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, executable, &actions, nil, argv, envp)
    guard rc == 0 else { throw TestFailure("cannot start \(executable): errno \(rc)") }
    return pid
}

/// Waits for a child to exit (on a thread of its own) and returns its raw wait status.
public func waitForExit(_ pid: pid_t) async -> Int32 {
    await withCheckedContinuation { c in
        Thread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            c.resume(returning: status)
        }.start()
    }
}

/// Runs a program to its end; returns its exit status (128 + the signal if one ended it) and
/// its output (stdout and stderr together).
@discardableResult
public func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32, output: String) {
    let log = NSTemporaryDirectory() + "warren-run-\(UUID().uuidString).log"
    defer { unlink(log) }
    let pid = try spawn(executable, arguments, log: log, environment: environment)
    let status = await waitForExit(pid)
    return ((status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f), (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
}

/// Runs `body`, failing with `TimedOut` if it takes longer than `limit`.
public func within<T: Sendable>(_ limit: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
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

/// A port that is free now, with port+20000 (the broker's distribution port) free too.
public func freePort() -> Int {
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
    // Below Linux's ephemeral range (32768-60999), port and port + 20000 (a broker's
    // distribution port) alike: a port chosen there could be taken by any outgoing connection
    // between this check and the server's bind (seen in CI: "Address already in use").
    // A port handed out once is not handed out again in this process: two tests that chose the
    // same free port before either bound it collided ("Address already in use").
    while true {
        let p = Int.random(in: 10000..<12700)
        guard handedOut.withLock({ $0.insert(p).inserted }) else { continue }
        if bindable(p), bindable(p + 20000) { return p }
    }
}

private let handedOut = Mutex(Set<Int>())

/// A RabbitMQ broker of a test's own, in a temporary folder, through Scripts/broker.sh.
public struct PrivateBroker: Sendable {
    public let dir: String
    public let port: Int
    public let tlsPort: Int?
    let consumerTimeoutMillis: Int?
    var maximumMessageBytes: Int? = nil
    public var url: String { "amqp://guest:guest@127.0.0.1:\(port)/%2f" }

    public static func start(tls: Bool = false, consumerTimeoutMillis: Int? = nil, maximumMessageBytes: Int? = nil) async throws -> PrivateBroker {
        let port = freePort()
        let broker = PrivateBroker(dir: NSTemporaryDirectory() + "warren-test-brokers/\(port)", port: port,
                                   tlsPort: tls ? freePort() : nil, consumerTimeoutMillis: consumerTimeoutMillis,
                                   maximumMessageBytes: maximumMessageBytes)
        try await broker.restart()
        return broker
    }

    public func script(_ args: [String]) async throws {
        let r = try await run("/bin/bash", [packageRoot.appendingPathComponent("Scripts/broker.sh").path] + args)
        if r.status != 0 { throw TestFailure("broker.sh \(args.joined(separator: " ")) failed: \(r.output)") }
    }

    /// Stops the broker politely; its data stays for ``restart()``.
    public func stop() async throws { try await script(["stop", dir]) }

    /// Starts the broker (again) on the same ports and data.
    public func restart() async throws {
        var args = ["start", dir, "--port", "\(port)"]
        if let tlsPort { args += ["--tls-port", "\(tlsPort)"] }
        if let consumerTimeoutMillis { args += ["--consumer-timeout", "\(consumerTimeoutMillis)"] }
        if let maximumMessageBytes { args += ["--max-message-size", "\(maximumMessageBytes)"] }
        try await script(args)
    }

    public func ctl(_ args: [String]) async throws -> String {
        try await run("/bin/bash", [packageRoot.appendingPathComponent("Scripts/broker.sh").path, "ctl", dir] + args).output
    }

    /// Stops the broker and removes its folder.
    public func destroy() async {
        try? await stop()
        try? FileManager.default.removeItem(atPath: dir)
    }
}

/// A RabbitMQ cluster of a test's own (several nodes on this machine), through Scripts/cluster.sh.
public struct PrivateCluster: Sendable {
    public let dir: String
    public let nodes: Int

    public static func start(nodes: Int = 3) async throws -> PrivateCluster {
        let cluster = PrivateCluster(dir: NSTemporaryDirectory() + "warren-test-brokers/cluster-\(UInt32.random(in: 0..<UInt32.max))", nodes: nodes)
        try await cluster.script(["start", cluster.dir, "--nodes", "\(nodes)"])
        return cluster
    }

    @discardableResult
    func script(_ args: [String]) async throws -> String {
        let r = try await run("/bin/bash", [packageRoot.appendingPathComponent("Scripts/cluster.sh").path] + args)
        if r.status != 0 { throw TestFailure("cluster.sh \(args.joined(separator: " ")) failed: \(r.output)") }
        return r.output
    }

    /// The AMQP URI naming every node.
    public func url() async throws -> String {
        try await script(["url", dir]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The AMQP port of node `i` (1-based).
    public func port(_ i: Int) async throws -> Int {
        let hosts = try await url().split(separator: "@")[1].split(separator: "/")[0].split(separator: ",")
        return Int(hosts[i - 1].split(separator: ":")[1])!
    }

    /// The node (1-based) whose AMQP port is `port`, or whose name (`warren<port>@localhost`) is given.
    public func node(named name: String) async throws -> Int? {
        for i in 1...nodes where name.contains("warren\(try await port(i))@") { return i }
        return nil
    }

    public func kill(_ i: Int) async throws { try await script(["kill", dir, "\(i)"]) }
    public func restart(_ i: Int) async throws { try await script(["restart", dir, "\(i)"]) }

    public func ctl(_ i: Int, _ args: [String]) async throws -> String {
        try await run("/bin/bash", [packageRoot.appendingPathComponent("Scripts/cluster.sh").path, "ctl", dir, "\(i)"] + args).output
    }

    /// Stops every node and removes the folder.
    public func destroy() async {
        _ = try? await script(["stop", dir])
        try? FileManager.default.removeItem(atPath: dir)
    }
}
