import Foundation
import Testing
import WarrenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// What a user touches around the engine, as real processes: the `warren` command against a
/// running orchestrator, the examples, the approval page in a real headless browser, and the
/// compose file.
@Suite("Product", .serialized)
struct ProductTests {
    /// Runs `warren ARGS --server …` and returns its exit status and output.
    static func warren(_ orchestrator: OrchestratorProcess, _ args: [String], server: Bool = true) async throws -> (status: Int32, output: String) {
        try await run(productsDirectory + "/warren", args + (server ? ["--server", orchestrator.httpURL] : []))
    }

    static func json(_ text: String) -> Any? {
        try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
    }

    @Test func theCommandLineCreatesSettlesSearchesAndShowsTreesAndTasks() async throws {
        try await withWorkflows { orchestrator, worker, _ in
            var r = try await Self.warren(orchestrator, ["promises", "create", "cli-1", "--timeout", "1h", "--tag", "human=true", "--data", #"{"amount": 5}"#])
            #expect(r.status == 0, "\(r.output)")
            #expect(r.output.contains("cli-1") && r.output.contains("PENDING") && r.output.contains("human=true"), "\(r.output)")
            r = try await Self.warren(orchestrator, ["promises", "get", "cli-1", "--json"])
            #expect((Self.json(r.output) as? [String: Any])?["state"] as? String == "PENDING", "\(r.output)")
            r = try await Self.warren(orchestrator, ["promises", "resolve", "cli-1", "--data", #""approved""#, "--comment", "fine"])
            #expect(r.status == 0 && r.output.contains("RESOLVED") && r.output.contains(#""approved""#), "\(r.output)")
            // Distinct exit codes: already settled 4, unknown 3, bad input 64, unreachable 69.
            r = try await Self.warren(orchestrator, ["promises", "reject", "cli-1"])
            #expect(r.status == 4 && r.output.contains("first outcome wins"), "\(r.output)")
            r = try await Self.warren(orchestrator, ["promises", "get", "no-such"])
            #expect(r.status == 3 && r.output.contains("no promise"), "\(r.output)")
            r = try await Self.warren(orchestrator, ["promises", "resolve", "cli-1", "--data", "not json"])
            #expect(r.status == 64 && r.output.contains("must be JSON"), "\(r.output)")
            r = try await run(productsDirectory + "/warren", ["promises", "get", "x", "--server", "http://127.0.0.1:\(freePort())"])
            #expect(r.status == 69 && r.output.contains("cannot reach"), "\(r.output)")
            r = try await Self.warren(orchestrator, ["promises", "search", "cli-*", "--state", "resolved", "--json"])
            #expect(((Self.json(r.output) as? [String: Any])?["promises"] as? [[String: Any]])?.map { $0["id"] as? String } == ["cli-1"], "\(r.output)")

            // A workflow started from the command line, seen as a tree and in the task list.
            r = try await Self.warren(orchestrator, ["invoke", "cli-wf", "--func", "foo-workflow", "--arg", #""cli-wf""#, "--group", "workers", "--timeout", "1h"])
            #expect(r.status == 0 && r.output.contains("foo-workflow"), "\(r.output)")
            _ = try await worker.line(startingWith: "", containing: "task suspended")
            r = try await Self.warren(orchestrator, ["tasks", "list", "--state", "suspended"])
            #expect(r.output.contains("cli-wf") && r.output.contains("cli-wf.1"), "\(r.output)")
            r = try await Self.warren(orchestrator, ["tree", "cli-wf"])
            #expect(r.status == 0, "\(r.output)")
            let lines = r.output.split(separator: "\n")
            #expect(lines.count == 3, "\(r.output)")
            #expect(lines.first?.contains("workflow foo-workflow") == true && lines.first?.contains("PENDING") == true, "\(r.output)")
            #expect(lines.dropFirst().first?.contains("cli-wf.1") == true && lines.dropFirst().first?.contains("[promise]") == true, "\(r.output)")
            #expect(lines.last?.contains("[run:sendEmail]") == true && lines.last?.contains("RESOLVED") == true, "\(r.output)")
            r = try await Self.warren(orchestrator, ["invoke", "cli-wf", "--func", "other", "--group", "workers"])
            #expect(r.status == 4, "\(r.output)")
        }

        // migrate and --version need no server.
        let db = NSTemporaryDirectory() + "warren-migrate-\(UInt32.random(in: 0..<UInt32.max)).db"
        defer { for s in ["", "-wal", "-shm"] { unlink(db + s) } }
        var r = try await run(productsDirectory + "/warren", ["migrate", "--db", db])
        #expect(r.status == 0 && r.output.contains("v1, v2"), "\(r.output)")
        r = try await run(productsDirectory + "/warren", ["--version"])
        #expect(r.status == 0 && !r.output.isEmpty)
        r = try await run(productsDirectory + "/warren", ["promises", "frobnicate"])
        #expect(r.status == 64, "\(r.output)")
    }

    @Test func warrenDevServesOnAThrowawayDatabaseAndRemovesIt() async throws {
        let prefix = "dev\(UInt32.random(in: 0..<UInt32.max))", port = freePort()
        let log = NSTemporaryDirectory() + "warren-orchestrator-tests/\(prefix).log"
        try? FileManager.default.createDirectory(atPath: NSTemporaryDirectory() + "warren-orchestrator-tests", withIntermediateDirectories: true)
        defer { unlink(log) }
        let pid = try spawn(productsDirectory + "/warren", ["dev", "--amqp-url", try brokerURL(), "--prefix", prefix, "--http-port", "\(port)"], log: log)
        defer { kill(pid, SIGKILL) }
        try await within(.seconds(30), "warren dev to answer") {
            while (try? await http("GET", "http://127.0.0.1:\(port)/ready"))?.status != 200 { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(try await http("POST", "http://127.0.0.1:\(port)/promises", #"{"id": "dev-1", "timeout": 4102444800000}"#).status == 201)
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        let folder = try #require(text.split(separator: "\n").first { $0.hasPrefix("warren dev: a throwaway database in ") }?
            .dropFirst("warren dev: a throwaway database in ".count))
        #expect(FileManager.default.fileExists(atPath: folder + "/warren.db"))
        #expect(text.contains("debug"), "debug logs expected:\n\(text)")
        kill(pid, SIGTERM)
        _ = await waitForExit(pid)
        #expect(!FileManager.default.fileExists(atPath: String(folder)), "the throwaway database was left behind")
    }

    @Test func theHumanInTheLoopExampleRunsAsTheArticleDescribes() async throws {
        let orchestrator = OrchestratorProcess(url: try brokerURL())
        let dir = NSTemporaryDirectory() + "warren-orchestrator-tests"
        let (workerLog, gatewayLog) = (dir + "/\(orchestrator.prefix)-hitl-worker.log", dir + "/\(orchestrator.prefix)-hitl-gateway.log")
        let keys = orchestrator.database + ".link-keys"
        var pids: [pid_t] = []
        defer {
            orchestrator.remove()
            for p in pids where p > 0 { kill(p, SIGKILL) }
            unlink(workerLog); unlink(gatewayLog); unlink(keys)
        }
        try "demo hitl-link-secret-0123456789\n".write(toFile: keys, atomically: true, encoding: .utf8)
        try await orchestrator.start(["--link-keys-file", keys])
        let port = freePort()
        let env = ["WARREN_AMQP_URL": orchestrator.url, "WARREN_PREFIX": orchestrator.prefix, "GATEWAY_PORT": "\(port)",
                   "WARREN_LINK_URL": orchestrator.httpURL, "WARREN_LINK_KEY": "demo hitl-link-secret-0123456789"]
        // Without a link key the worker says what to set and exits 64.
        let keyless = try await run(productsDirectory + "/hitl-worker", [], environment: ["WARREN_AMQP_URL": orchestrator.url, "WARREN_PREFIX": orchestrator.prefix])
        #expect(keyless.status == 64 && keyless.output.contains("WARREN_LINK_KEY"), "\(keyless.output)")
        pids.append(try spawn(productsDirectory + "/hitl-worker", [], log: workerLog, environment: env))
        pids.append(try spawn(productsDirectory + "/hitl-gateway", [], log: gatewayLog, environment: env))
        let gateway = "http://127.0.0.1:\(port)"
        try await within(.seconds(30), "the gateway to listen") {
            while (try? await http("GET", gateway + "/unblock-workflow")) == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        // Validation: precise 400s; a GET never settles (405).
        #expect(try await http("POST", gateway + "/start-workflow", "{}").status == 400)
        #expect(try await http("POST", gateway + "/unblock-workflow", "{}").status == 400)
        #expect(try await http("GET", gateway + "/unblock-workflow?promise_id=hitl-001.1").status == 405)
        let started = Task { try await http("POST", gateway + "/start-workflow", #"{"workflow_id": "hitl-001"}"#) }
        let link = try await within(.seconds(30), "the approval link") {
            while true {
                let text = (try? String(contentsOfFile: workerLog, encoding: .utf8)) ?? ""
                if let line = text.split(separator: "\n").first(where: { $0.contains("/approve/") }) {
                    return String(line.split(separator: " ").last!)
                }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(link.hasPrefix(orchestrator.httpURL + "/approve/hitl-001.1?outcomes=approved,rejected&expires="), "\(link)")
        // Opening the link shows the confirmation page; the button's POST approves.
        let page = try await http("GET", link)
        #expect(page.status == 200 && page.text.contains("Approve workflow hitl-001"), "\(page.text)")
        let approved = try await http("POST", link, #"{"outcome": "approved"}"#)
        #expect(approved.status == 200, "\(approved.text)")
        let answer = try await within(.seconds(30), "the workflow's result") { try await started.value }
        #expect(answer.status == 200 && answer.json["message"] as? String == "foo workflow hitl-001 complete", "\(answer.text)")
        // The link again: the first outcome won.
        #expect(try await http("POST", link, #"{"outcome": "rejected"}"#).status == 409)
        // The gateway settles a promise whose id a system holds, through POST.
        #expect(try await http("POST", orchestrator.httpURL + "/promises", #"{"id": "sys-1", "timeout": 4102444800000}"#).status == 201)
        let unblocked = try await http("POST", gateway + "/unblock-workflow", #"{"promise_id": "sys-1"}"#)
        #expect(unblocked.status == 200 && unblocked.json["message"] as? String == "workflow unblocked", "\(unblocked.text)")
        let log = (try? String(contentsOfFile: workerLog, encoding: .utf8)) ?? ""
        #expect(log.contains("unblocked, promise resolved with approved"), "\(log)")
        _ = await orchestrator.kill(SIGTERM)
    }

    @Test(arguments: ["approve", "reject", "timeout", "small"])
    func aRefundIsApprovedRejectedEscalatedOrPaidAtOnce(path: String) async throws {
        let orchestrator = OrchestratorProcess(url: try brokerURL())
        let log = NSTemporaryDirectory() + "warren-orchestrator-tests/\(orchestrator.prefix)-refund.log"
        var worker: pid_t = 0
        defer { orchestrator.remove(); if worker > 0 { kill(worker, SIGKILL) }; unlink(log) }
        try await orchestrator.start()
        // A deadline of 2.5 s with a reminder every 0.6 s: three reminders, then the deadline.
        let env = ["WARREN_AMQP_URL": orchestrator.url, "WARREN_PREFIX": orchestrator.prefix,
                   "REFUND_DEADLINE": "2500ms", "REFUND_REMINDER": "600ms", "REFUND_HOLD": "300ms"]
        worker = try spawn(productsDirectory + "/refund-approval", ["worker"], log: log, environment: env)
        let amount = path == "small" ? "40" : "250"
        let client = Task { try await run(productsDirectory + "/refund-approval", ["start", "r-\(path)", "ada", amount], environment: env) }
        @Sendable func logText() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        if path == "approve" || path == "reject" {
            try await within(.seconds(30), "the manager's notification") { while !logText().contains("manager notified") { try await Task.sleep(for: .milliseconds(20)) } }
            let r = try await run(productsDirectory + "/warren", ["promises", path == "approve" ? "resolve" : "reject", "r-\(path).2",
                                                                 "--data", path == "approve" ? #""approved""# : #""rejected""#, "--server", orchestrator.httpURL])
            #expect(r.status == 0, "\(r.output)")
        }
        let outcome = try await within(.seconds(60), "the refund's outcome") { try await client.value }
        #expect(outcome.status == 0, "\(outcome.output)\n\(logText())")
        switch path {
        case "approve": #expect(outcome.output.contains("250 paid after approval (approved)"), "\(outcome.output)")
        case "reject":
            #expect(outcome.output.contains("rejected by the manager"), "\(outcome.output)")
            #expect(logText().contains("customer told"))
        case "timeout":
            #expect(outcome.output.contains("escalated"), "\(outcome.output)")
            // Reminders while waiting, each once, then the escalation.
            #expect(logText().components(separatedBy: "reminder ").count - 1 >= 2, "\(logText())")
            #expect(!logText().contains("paid"))
        default: #expect(outcome.output.contains("40 paid without approval"), "\(outcome.output)")
        }
        kill(worker, SIGTERM)
        _ = await waitForExit(worker)
        worker = 0
        _ = await orchestrator.kill(SIGTERM)
    }

    @Test func theApprovalPageAndASignedLinkApproveInARealBrowser() async throws {
        let browser = packageRoot.path + "/.build/ui-venv/bin/python"
        guard FileManager.default.isExecutableFile(atPath: browser) else {
            throw TestFailure("no browser driver: Scripts/test.sh installs chromium, chromium-driver and selenium (in .build/ui-venv)")
        }
        // An API that needs tokens: the page asks for one (an approve token) before it lists anything.
        let orchestrator = OrchestratorProcess(url: try brokerURL())
        let worker = WorkerProcess(prefix: orchestrator.prefix, n: 1)
        let (tokens, keys) = (orchestrator.database + ".tokens", orchestrator.database + ".link-keys")
        try "ops admin ui-admin-secret-0123456789\nalice approve ui-approver-secret-0123456789\n".write(toFile: tokens, atomically: true, encoding: .utf8)
        try "k1 ui-link-secret-0123456789\n".write(toFile: keys, atomically: true, encoding: .utf8)
        defer { orchestrator.remove(); worker.remove(); unlink(tokens); unlink(keys) }
        try await orchestrator.start(["--tokens-file", tokens, "--link-keys-file", keys])
        try worker.start(url: orchestrator.url, prefix: orchestrator.prefix,
                         environment: ["WARREN_LINK_URL": orchestrator.httpURL, "WARREN_LINK_KEY": "k1 ui-link-secret-0123456789"])
        let base = orchestrator.httpURL, admin = ["authorization": "Bearer ui-admin-secret-0123456789"]
        func value(_ id: String) async throws -> [String: Any] {
            try #require(try await http("GET", base + "/promises/" + id, headers: admin).json["value"] as? [String: Any])
        }
        do {
            // The approval page: sign in with the approve token, find the card, comment, Approve.
            #expect(try await http("POST", base + "/workflows", #"{"id": "ui-1", "function": "foo-workflow", "args": ["ui-1"], "group": "workers"}"#,
                                   headers: admin).status == 201)
            _ = try await worker.line(startingWith: "", containing: "task suspended")
            var r = try await run(browser, [packageRoot.path + "/Tests/ui/approve.py", base + "/ui", "ui-1.1", "ship it", "ui-approver-secret-0123456789"])
            #expect(r.status == 0, "\(r.output)")
            let done = try await settledWorkflow("ui-1", at: base, headers: admin)
            #expect(done.json["result"] as? String == "foo workflow ui-1 complete")
            let headers = try await value("ui-1.1")["headers"] as? [String: String] ?? [:]
            #expect(headers["comment"] == "ship it" && headers["warren:settled-by"] == "alice" && headers["warren:settled-via"] == "http", "\(headers)")

            // The signed link a workflow mailed: open it (no token), comment, click Approve.
            #expect(try await http("POST", base + "/workflows", #"{"id": "ui-2", "function": "linked-workflow", "args": ["ui-2"], "group": "workers"}"#,
                                   headers: admin).status == 201)
            let link = String(try await worker.line(startingWith: "link: ").dropFirst("link: ".count))
            r = try await run(browser, [packageRoot.path + "/Tests/ui/approve_link.py", link, "approved", "via the mail"])
            #expect(r.status == 0, "\(r.output)")
            let linked = try await settledWorkflow("ui-2", at: base, headers: admin)
            #expect(linked.json["result"] as? String == "ui-2: approved")
            let via = try await value("ui-2.1")["headers"] as? [String: String] ?? [:]
            #expect(via["comment"] == "via the mail" && via["warren:settled-by"] == "link:k1" && via["warren:settled-via"] == "link", "\(via)")
        } catch {
            print(orchestrator.logText.suffix(3000), worker.text.suffix(2000))
            throw error
        }
        _ = await orchestrator.kill(SIGTERM)
    }

    @Test func theApprovalPageShowsAnOperatorBlockedAndWaitingTasksAndRetriesOrFailsThemInARealBrowser() async throws {
        let browser = packageRoot.path + "/.build/ui-venv/bin/python"
        guard FileManager.default.isExecutableFile(atPath: browser) else {
            throw TestFailure("no browser driver: Scripts/test.sh installs chromium, chromium-driver and selenium (in .build/ui-venv)")
        }
        try await withWorkflows(orchestratorArguments: ["--blocked-retry", "10m"], workerEnvironment: ["WARREN_VERSIONS": "1"]) { orchestrator, v1, _ in
            let base = orchestrator.httpURL
            let fixed = WorkerProcess(prefix: orchestrator.prefix, n: 2)
            defer { fixed.remove() }
            @Sendable func task(_ id: String) async throws -> [String: Any] {
                try await http("GET", base + "/workflows/" + id).json["task"] as? [String: Any] ?? [:]
            }
            func waitFor(_ id: String, _ state: String) async throws {
                try await within(.seconds(30), "task \(id) to be \(state)") {
                    while try await task(id)["state"] as? String != state { try await Task.sleep(for: .milliseconds(20)) }
                }
            }
            // Two workflows of a function no worker has: blocked. One started under code version 1,
            // whose v1 workers are then gone: once resumed, it waits for a worker that serves v1.
            for id in ["op-1", "op-2"] {
                #expect(try await http("POST", base + "/workflows", #"{"id": "\#(id)", "function": "later-workflow", "args": ["\#(id)"], "group": "workers"}"#).status == 201)
            }
            #expect(try await http("POST", base + "/workflows", #"{"id": "vw-1", "function": "versioned-workflow", "args": ["vw-1"], "group": "workers"}"#).status == 201)
            for id in ["op-1", "op-2"] { try await waitFor(id, "blocked") }
            try await waitFor("vw-1", "suspended")
            await v1.kill(SIGKILL)
            try fixed.start(url: orchestrator.url, prefix: orchestrator.prefix, environment: ["WARREN_CODE": "fixed", "WARREN_VERSIONS": "2"])
            #expect(try await http("PATCH", base + "/promises/vw-1.2", #"{"state": "RESOLVED", "value": {"data": "\#(b64(#""approved""#))"}}"#).status == 200)
            try await waitFor("vw-1", "pending")

            let r = try await run(browser, [packageRoot.path + "/Tests/ui/operator_view.py", base + "/ui?waitingAfter=1", "op-1", "op-2", "vw-1",
                                            "for a worker that serves versioned-workflow v1"])
            #expect(r.status == 0, "\(r.output)")
            let failed = try await settledWorkflow("op-1", at: base)
            #expect(failed.json["state"] as? String == "REJECTED" && "\(failed.json["error"] ?? "")".contains("not ours to run"), "\(failed.text)")
            let retried = try await settledWorkflow("op-2", at: base)
            #expect(retried.json["result"] as? String == "later op-2 under fixed", "\(retried.text)")
            #expect(try await task("vw-1")["state"] as? String == "pending", "nothing serves v1: it waits, it is not failed")
        }
    }

    @Test func theREADMEsPythonExampleResolvesAPromiseWithPika() async throws {
        let python = packageRoot.path + "/.build/ui-venv/bin/python"
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw TestFailure("no Python venv: Scripts/test.sh installs pika (in .build/ui-venv)")
        }
        let orchestrator = OrchestratorProcess(url: try brokerURL())
        defer { orchestrator.remove() }
        try await orchestrator.start()
        let base = orchestrator.httpURL
        #expect(try await http("POST", base + "/promises", #"{"id": "py-1", "timeout": 4102444800000}"#).status == 201)
        let r = try await run(python, [packageRoot.path + "/Examples/clients/resolve_with_pika.py", "py-1", "approved", orchestrator.url, orchestrator.prefix])
        #expect(r.status == 0, "\(r.output)")
        let resolved = try await within(.seconds(15), "the resolve") {
            while true {
                let p = try await http("GET", base + "/promises/py-1")
                if p.json["state"] as? String != "PENDING" { return p }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(resolved.json["state"] as? String == "RESOLVED")
        #expect((resolved.json["value"] as? [String: Any])?["data"] as? String == b64(#""approved""#))
        _ = await orchestrator.kill(SIGTERM)
    }

    @Test func theComposeFileIsValid() async throws {
        let compose = "/usr/bin/docker-compose"
        guard FileManager.default.isExecutableFile(atPath: compose) else {
            throw TestFailure("docker-compose is not installed: Scripts/test.sh installs it (Debian's docker-compose)")
        }
        let r = try await run(compose, ["-f", packageRoot.path + "/compose/docker-compose.yml", "config", "-q"])
        #expect(r.status == 0, "\(r.output)")
        let text = try String(contentsOfFile: packageRoot.path + "/compose/docker-compose.yml", encoding: .utf8)
        for service in ["rabbitmq:", "orchestrator:", "worker:", "gateway:"] { #expect(text.contains(service)) }
    }
}
