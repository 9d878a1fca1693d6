import AMQP
import Foundation
import Testing
import Warren
import WarrenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Who may start, settle and see what (issue 10, first part): bearer tokens with scopes, an open
/// API refused beyond loopback, workflow-internal promises closed to the public APIs, JSON-only
/// writes. Each door is tried the way an attacker would.
@Suite("Security", .serialized)
struct SecurityTests {
    static let secrets = (admin: "admin-secret-0123456789", workflows: "gateway-secret-0123456789", approve: "approver-secret-0123456789")

    /// An orchestrator whose HTTP API needs tokens, with a worker and a client.
    func withTokens(_ body: (OrchestratorProcess, WorkerProcess, Warren) async throws -> Void) async throws {
        let orchestrator = OrchestratorProcess(url: try brokerURL())
        let worker = WorkerProcess(prefix: orchestrator.prefix, n: 1)
        let tokens = orchestrator.database + ".tokens"
        try """
            # name  scopes     secret
            ops     admin      \(Self.secrets.admin)
            gateway workflows  \(Self.secrets.workflows)
            alice   approve    \(Self.secrets.approve)
            """.write(toFile: tokens, atomically: true, encoding: .utf8)
        defer { orchestrator.remove(); worker.remove(); unlink(tokens) }
        try await orchestrator.start(["--tokens-file", tokens])
        try worker.start(url: orchestrator.url, prefix: orchestrator.prefix)
        let client = try await Warren(url: orchestrator.url, group: "gateway", prefix: orchestrator.prefix)
        do {
            try await body(orchestrator, worker, client)
        } catch {
            print(orchestrator.logText.suffix(3000))
            await client.close()
            throw error
        }
        await client.close()
    }

    static func bearer(_ secret: String) -> [String: String] { ["authorization": "Bearer " + secret] }

    @Test func anOpenAPIIsRefusedBeyondLoopbackUnlessSaidInsecure() async throws {
        let orchestrator = OrchestratorProcess(url: try brokerURL())
        defer { orchestrator.remove() }
        let refused = try await run(productsDirectory + "/warren", ["serve", "--amqp-url", orchestrator.url, "--db", orchestrator.database,
                                                                   "--prefix", orchestrator.prefix, "--http-host", "0.0.0.0", "--http-port", "\(freePort())"])
        #expect(refused.status == 1 && refused.output.contains("no tokens"), "\(refused.output)")
        try await orchestrator.start(["--http-host", "0.0.0.0", "--insecure"])
        #expect(try await http("GET", orchestrator.httpURL + "/health").status == 200)
        _ = await orchestrator.kill(SIGTERM)
    }

    @Test func everyRouteButHealthNeedsATokenWithTheRightScope() async throws {
        try await withTokens { orchestrator, worker, _ in
            let base = orchestrator.httpURL
            // Open: health, readiness, the document and the page (which asks for a token itself).
            #expect(try await http("GET", base + "/health").status == 200)
            #expect(try await http("GET", base + "/ready").status == 200)
            let page = try await http("GET", base + "/ui")
            #expect(page.status == 200 && page.headers["content-security-policy"]?.contains("frame-ancestors 'none'") == true)
            #expect(page.headers["x-frame-options"] == "DENY" && page.headers["cache-control"] == "no-store")
            // No token, a wrong one, a token's prefix: 401.
            #expect(try await http("GET", base + "/promises").status == 401)
            #expect(try await http("GET", base + "/promises", headers: Self.bearer("not-a-token-at-all")).status == 401)
            #expect(try await http("GET", base + "/promises", headers: Self.bearer(String(Self.secrets.admin.dropLast()))).status == 401)
            let start = #"{"id": "sec-1", "function": "foo-workflow", "args": ["sec-1"], "group": "workers"}"#
            // An approver cannot start workflows or see tasks; the gateway cannot settle.
            #expect(try await http("POST", base + "/workflows", start, headers: Self.bearer(Self.secrets.approve)).status == 403)
            #expect(try await http("GET", base + "/tasks", headers: Self.bearer(Self.secrets.approve)).status == 403)
            #expect(try await http("POST", base + "/workflows", start, headers: Self.bearer(Self.secrets.workflows)).status == 201)
            _ = try await worker.line(startingWith: "", containing: "task suspended")
            let resolve = #"{"state": "RESOLVED", "value": {"data": "ImFwcHJvdmVkIg=="}}"#
            #expect(try await http("PATCH", base + "/promises/sec-1.1", resolve, headers: Self.bearer(Self.secrets.workflows)).status == 403)
            // The approver sees the approval, not the workflow's machinery.
            let seen = try await http("GET", base + "/promises?id=sec-1*", headers: Self.bearer(Self.secrets.approve))
            #expect((seen.json["promises"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["sec-1.1"])
            #expect(try await http("GET", base + "/promises/sec-1", headers: Self.bearer(Self.secrets.approve)).status == 404)
            // And settles it; the value records who did, and through what.
            let settled = try await http("PATCH", base + "/promises/sec-1.1", resolve, headers: Self.bearer(Self.secrets.approve))
            #expect(settled.status == 200)
            let headers = (settled.json["value"] as? [String: Any])?["headers"] as? [String: String]
            #expect(headers?["warren:settled-by"] == "alice" && headers?["warren:settled-via"] == "http")
            let done = try await within(.seconds(30), "sec-1") {
                while true {
                    let w = try await http("GET", base + "/workflows/sec-1", headers: Self.bearer(Self.secrets.workflows))
                    if w.json["state"] as? String == "RESOLVED" { return w }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            #expect(done.json["result"] as? String == "foo workflow sec-1 complete")
            // The admin sees everything; the CLI sends WARREN_TOKEN.
            #expect(try await http("GET", base + "/tasks", headers: Self.bearer(Self.secrets.admin)).status == 200)
            let cli = try await run(productsDirectory + "/warren", ["tasks", "list", "--server", base], environment: ["WARREN_TOKEN": Self.secrets.admin])
            #expect(cli.status == 0 && cli.output.contains("sec-1"), "\(cli.output)")
            let anonymous = try await run(productsDirectory + "/warren", ["tasks", "list", "--server", base], environment: ["WARREN_TOKEN": ""])
            #expect(anonymous.status == 77, "\(anonymous.output)")
        }
    }

    @Test func aWorkflowsResultStepsAndIdSpaceAreClosedToThePublicAPIs() async throws {
        try await withWorkflows { orchestrator, worker, _ in
            let base = orchestrator.httpURL
            #expect(try await http("POST", base + "/workflows", #"{"id": "forge-1", "function": "foo-workflow", "args": ["forge-1"], "group": "workers"}"#).status == 201)
            _ = try await worker.line(startingWith: "", containing: "task suspended")
            // Forging the workflow's result, or its recorded step, over HTTP.
            let forged = try await http("PATCH", base + "/promises/forge-1", #"{"state": "RESOLVED", "value": {"data": "ImZvcmdlZCI="}}"#)
            #expect(forged.status == 403 && forged.errorCode == "internalPromise", "\(forged.text)")
            #expect(try await http("PATCH", base + "/promises/forge-1.2", #"{"state": "REJECTED"}"#).errorCode == "internalPromise")
            // Forging a step: a promise inside the workflow's id space.
            let step = try await http("POST", base + "/promises", #"{"id": "forge-1.9", "timeout": 4102444800000}"#)
            #expect(step.status == 403 && step.errorCode == "internalPromise", "\(step.text)")
            #expect(try await http("POST", base + "/workflows", #"{"id": "forge-1.9", "function": "double-workflow", "args": [1], "group": "workers"}"#).errorCode == "internalPromise")
            #expect(try await http("POST", base + "/promises", #"{"id": "mine", "timeout": 4102444800000, "tags": {"warren:kind": "run:x"}}"#).status == 400)
            // The same over AMQP: a resolve of the root is refused with a reason.
            let connection = try await AMQPConnection.connect(url: orchestrator.url, name: "forger")
            defer { Task { await connection.close() } }
            let channel = try await connection.openChannel()
            let replies = try await channel.queueDeclare("", exclusive: true).queue
            let consumer = try await channel.basicConsume(queue: replies, noAck: true)
            try await channel.basicPublish(#"{"id": "forge-1", "value": "forged"}"#, exchange: orchestrator.prefix, routingKey: "promise.resolve",
                                           properties: BasicProperties(correlationID: "f", replyTo: replies)).wait()
            let reply = try await within(.seconds(15), "the refusal") {
                var it = consumer.makeAsyncIterator()
                return String(decoding: try await it.next()!.body, as: UTF8.self)
            }
            #expect(reply.contains("internalPromise"), "\(reply)")
            // The approval itself is public: the workflow completes with its own result.
            #expect(try await http("PATCH", base + "/promises/forge-1.1", #"{"state": "RESOLVED", "value": {"data": "ImFwcHJvdmVkIg=="}}"#).status == 200)
            let done = try await settledWorkflow("forge-1", at: base)
            #expect(done.json["result"] as? String == "foo workflow forge-1 complete")
        }
    }

    @Test func anOpenAPIAnswersOnlyToLoopbackNamesAndItsOwnPages() async throws {
        try await withWorkflows { orchestrator, _, _ in
            let url = orchestrator.httpURL + "/promises"
            func status(_ headers: [String]) async throws -> String {
                try await run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}"] + headers.flatMap { ["-H", $0] } + [url]).output
            }
            // DNS rebinding: a page of evil.example whose name now points at 127.0.0.1.
            let rebound = try await status(["Host: evil.example:\(orchestrator.httpPort)"])
            // A page of another origin calling the API from the user's browser, or a sandboxed one.
            let foreign = try await status(["Origin: http://evil.example"])
            let sandboxed = try await status(["Origin: null"])
            // Its own pages, and loopback names, are fine; /health answers anyone.
            let own = try await status(["Origin: http://127.0.0.1:\(orchestrator.httpPort)"])
            let localhost = try await status(["Host: localhost:\(orchestrator.httpPort)"])
            #expect(rebound == "403" && foreign == "403" && sandboxed == "403")
            #expect(own == "200" && localhost == "200")
            #expect(try await run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: evil.example",
                                                    orchestrator.httpURL + "/health"]).output == "200")
        }
    }

    /// A TCP connection to `port` on loopback, with a 5 s receive timeout.
    static func connect(_ port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc != 0 { throw TestFailure("connect failed") }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// 0 when the server closed the socket, -1 when 5 s passed with it open.
    static func readUntilClosed(_ fd: Int32) -> Int {
        var byte: UInt8 = 0
        return read(fd, &byte, 1)
    }

    @Test func openConnectionsAreCapped() async throws {
        let orchestrator = OrchestratorProcess(url: try brokerURL())
        defer { orchestrator.remove() }
        // Idle connections would wait 30 s: only the cap can close one within the 5 s read.
        try await orchestrator.start(["--max-http-connections", "4", "--http-idle-timeout", "30"])
        // Five idle connections for four places: one of them (whichever the server set up last:
        // it accepts on several event loops) is closed as soon as it is accepted.
        let sockets = try (0..<5).map { _ in try Self.connect(orchestrator.httpPort) }
        var fds = sockets.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        #expect(poll(&fds, nfds_t(fds.count), 5000) >= 1, "no connection was closed")
        let closed = fds.filter { $0.revents != 0 }.filter { Self.readUntilClosed($0.fd) == 0 }.count
        // One at least (the test process's own keep-alive connection from the start-up probe may
        // hold a place too); without the cap none would close before the 30 s idle timeout.
        #expect((1...2).contains(closed), "\(closed) connections were closed; one was over the cap")
        sockets.forEach { close($0) }
        try await within(.seconds(10), "a request once the places are free") {
            while (try? await http("GET", orchestrator.httpURL + "/health"))?.status != 200 { try await Task.sleep(for: .milliseconds(50)) }
        }
        _ = await orchestrator.kill(SIGTERM)
    }

    @Test func idleConnectionsAreClosed() async throws {
        let orchestrator = OrchestratorProcess(url: try brokerURL())
        defer { orchestrator.remove() }
        try await orchestrator.start(["--http-idle-timeout", "1"])
        let idle = try Self.connect(orchestrator.httpPort)
        #expect(Self.readUntilClosed(idle) == 0, "an idle connection stayed open past the idle timeout")
        close(idle)
        _ = await orchestrator.kill(SIGTERM)
    }

    @Test func aCrossSiteFormPostCannotReachAWrite() async throws {
        try await withWorkflows { orchestrator, _, _ in
            let base = orchestrator.httpURL
            // What a form on any web page can send without a preflight: text/plain, form encoding.
            let form = try await http("POST", base + "/workflows", #"{"id": "xs-1", "function": "foo-workflow", "group": "workers"}"#,
                                      headers: ["content-type": "text/plain"])
            #expect(form.status == 415, "\(form.text)")
            #expect(try await http("PATCH", base + "/promises/any", "state=RESOLVED", headers: ["content-type": "application/x-www-form-urlencoded"]).status == 415)
            #expect(try await http("GET", base + "/promises/xs-1").status == 404)
        }
    }

    /// `amqps://` without a CA file verifies against the system's bundle (here pointed at the test
    /// broker's CA with SSL_CERT_FILE, as an operator would add a private CA); without it, the
    /// private broker's certificate is refused. The password never shows in `ps` or the log.
    @Test func amqpsVerifiesAgainstTheSystemBundleAndCredentialsStayOutOfPsAndLogs() async throws {
        try await withPrivateBroker(tls: true) { broker in
            _ = try await broker.ctl(["add_user", "ops-app", "pw-Hunter2-0123"])
            _ = try await broker.ctl(["set_permissions", "-p", "/", "ops-app", ".*", ".*", ".*"])
            let secretURL = "amqps://ops-app:pw-Hunter2-0123@localhost:\(broker.tlsPort!)/%2f"
            let orchestrator = OrchestratorProcess(url: secretURL)
            let urlFile = orchestrator.database + ".amqp-url"
            try (secretURL + "\n").write(toFile: urlFile, atomically: true, encoding: .utf8)
            defer { orchestrator.remove(); unlink(urlFile) }
            let args = ["serve", "--amqp-url-file", urlFile, "--db", orchestrator.database, "--prefix", orchestrator.prefix,
                        "--http-port", "\(orchestrator.httpPort)", "--log-level", "debug"]

            // Against the system's bundle, which does not hold the private CA: refused, saying why.
            let refused = try await run(productsDirectory + "/warren", args)
            #expect(refused.status != 0 && refused.output.contains("TLS"), "\(refused.output)")
            #expect(!refused.output.contains("pw-Hunter2"), "\(refused.output)")

            // With the CA in the bundle it connects, and serves.
            let pid = try spawn(productsDirectory + "/warren", args, log: orchestrator.log, environment: ["SSL_CERT_FILE": broker.dir + "/tls/ca.pem"])
            defer { kill(pid, SIGKILL) }
            try await within(.seconds(30), "the orchestrator over TLS") {
                while !orchestrator.logText.contains("orchestrator started") { try await Task.sleep(for: .milliseconds(50)) }
                while (try? await http("GET", orchestrator.httpURL + "/ready"))?.status != 200 { try await Task.sleep(for: .milliseconds(50)) }
            }
            let cmdline = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            #expect(cmdline.contains("--amqp-url-file") && !cmdline.contains("pw-Hunter2"), "\(cmdline)")
            #expect(!orchestrator.logText.contains("pw-Hunter2"), "the password is in the log:\n\(orchestrator.logText)")
            kill(pid, SIGTERM)
            _ = await waitForExit(pid)

            // The same URL on the command line works, with a warning that ps shows it; never in the log.
            let shown = try await run(productsDirectory + "/warren", ["serve", "--amqp-url", secretURL + "?connection_timeout=1", "--db",
                                                                     orchestrator.database + "-2", "--prefix", orchestrator.prefix,
                                                                     "--http-port", "\(freePort())", "--max-attempts", "0"])
            #expect(shown.output.contains("ps shows it") && !shown.output.contains("pw-Hunter2"), "\(shown.output)")
        }
    }
}
