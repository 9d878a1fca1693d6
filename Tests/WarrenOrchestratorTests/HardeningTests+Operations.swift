import AMQP
import Foundation
import Testing
import Warren
import WarrenTestSupport
import Glibc

/// Hardening against an operator's day: a second orchestrator, long steps, leases, limits, a full disk, backups.
extension HardeningTests {
    @Test func aSecondOrchestratorOnTheSameDatabaseRefusesToStart() async throws {
        try await Harness.with { h in
            let second = try await run(productsDirectory + "/warren", ["serve", "--amqp-url", h.orchestrator.url, "--db", h.orchestrator.database,
                                                                      "--prefix", h.orchestrator.prefix + "x", "--http-port", "\(freePort())"])
            #expect(second.status == 1)
            #expect(second.output.contains("in use by another orchestrator") && second.output.contains("pid \(h.orchestrator.pid)"), "\(second.output)")
        }
    }

    // MARK: Steps of any length

    @Test func aStepLongerThanTheConsumerTimeoutCompletesOnceWithTheWorkerUp() async throws {
        try await withPrivateBroker(consumerTimeoutMillis: 1000) { broker in
            let orchestrator = OrchestratorProcess(url: broker.url)
            let worker = WorkerProcess(prefix: orchestrator.prefix, n: 1)
            defer { orchestrator.remove(); worker.remove() }
            try await orchestrator.start()
            try worker.start(url: broker.url, prefix: orchestrator.prefix, environment: ["WARREN_LEASE_AFTER_MS": "300", "WARREN_LEASE_MS": "3000"])
            let client = try await Warren(url: broker.url, group: "gateway", prefix: orchestrator.prefix)
            let result = try await within(.seconds(120), "a step of 8 s") {
                try await client.rpc("long-1", "long-step", 8000, target: "workers", as: String.self)
            }
            await client.close()
            #expect(result == "long-step: ran 8000 ms")
            #expect(worker.text.components(separatedBy: "long step started").count == 2, "the step ran more than once:\n\(worker.text)")
            #expect(worker.text.contains("lease"))
            #expect(!worker.text.contains("PRECONDITION_FAILED"), "the consumer timeout closed a worker channel:\n\(worker.text)")
            #expect(kill(worker.pid, 0) == 0, "the worker is not running")
        }
    }

    @Test func aWorkerKilledDuringALongStepHasItsTaskHandedOutAgainWhenItsLeaseLapses() async throws {
        try await withReplaceableWorker { orchestrator, first, second, client in
            // The default worker of withWorkflows leases after 60 s: restart it with short settings.
            await first.kill(SIGKILL)
            let lease = ["WARREN_LEASE_AFTER_MS": "200", "WARREN_LEASE_MS": "1500"]
            try first.start(url: orchestrator.url, prefix: orchestrator.prefix, environment: lease)
            let handle = try await client.beginRpc("lease-1", "long-step", 3000, target: "workers")
            _ = try await first.line(startingWith: "long step started")
            _ = try await first.line(startingWith: "", containing: "holds its task with a lease")
            await first.kill(SIGKILL)
            let killed = ContinuousClock.now
            try second.start(url: orchestrator.url, prefix: orchestrator.prefix, environment: lease)
            _ = try await second.line(startingWith: "long step started", within: .seconds(20))
            let handedOutAfter = ContinuousClock.now - killed
            // The lease (1.5 s) plus the timer's tick, the execute message and the new worker's
            // start, with room for a loaded machine; without the lease it would never come.
            #expect(handedOutAfter < .milliseconds(1500 + 6000), "handed out again after \(handedOutAfter)")
            let value = try await within(.seconds(30), "the workflow") { try await handle.result(as: String.self) }
            #expect(value == "long-step: ran 3000 ms")
        }
    }

    // MARK: Values over the limit fail at the worker

    @Test func aStepValueOverTheLimitFailsTheStepAtTheWorkerWithTheReason() async throws {
        try await withWorkflows { _, _, client in
            let result = try await within(.seconds(30), "the huge step") {
                try await client.rpc("huge-1", "huge-step", 2 << 20, target: "workers", as: String.self)
            }
            #expect(result.contains("the step failed") && result.contains("returned 2097154 bytes"), "\(result)")
            // Steps that together exceed one message go in several: nothing is refused.
            let total = try await within(.seconds(60), "many big steps") {
                try await client.rpc("many-1", "many-big-steps", 4, target: "workers", as: Int.self)
            }
            #expect(total == 1_600_000)
        }
    }

    @Test func aWorkflowWhoseHistoryOutgrewAMessageIsRejectedWithTheReason() async throws {
        let orchestrator = OrchestratorProcess(url: try brokerURL())
        let worker = WorkerProcess(prefix: orchestrator.prefix, n: 1)
        defer { orchestrator.remove(); worker.remove() }
        try await orchestrator.start(["--max-message-bytes", "1200000"])
        try worker.start(url: orchestrator.url, prefix: orchestrator.prefix)
        let client = try await Warren(url: orchestrator.url, group: "gateway", prefix: orchestrator.prefix)
        defer { Task { await client.close() } }
        // Two steps of 500 KB fit (about 1 MB of history); three do not.
        let fits = try await within(.seconds(30), "two big steps") { try await client.rpc("fits", "big-then-sleep", 2, target: "workers", as: String.self) }
        #expect(fits == "woke with 2 big steps")
        do {
            let r = try await within(.seconds(30), "three big steps") { try await client.rpc("too-big", "big-then-sleep", 3, target: "workers", as: String.self) }
            Issue.record("completed: \(r)")
        } catch {
            #expect("\(error)".contains("execute message") && "\(error)".contains("limit is 1200000"), "\(error)")
        }
        let outbox = try await http("GET", orchestrator.httpURL + "/outbox")
        #expect((outbox.json["messages"] as? [Any])?.isEmpty == true)
    }

    // MARK: Storage faults

    @Test(.enabled(if: getuid() == 0, "mounting a size-limited tmpfs needs root (CI runs as root)"))
    func aFullDiskStopsIntakeUntilItClearsWithNothingLost() async throws {
        let mount = NSTemporaryDirectory() + "warren-full-disk-\(UInt32.random(in: 0..<UInt32.max))"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        let m = try await run("/bin/mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", mount])
        try #require(m.status == 0, "mount failed: \(m.output)")
        defer {
            Task { _ = try? await run("/bin/umount", ["-l", mount]); try? FileManager.default.removeItem(atPath: mount) }
        }
        let orchestrator = OrchestratorProcess(url: try brokerURL(), database: mount + "/warren.db")
        defer { orchestrator.remove() }
        try await orchestrator.start()
        let connection = try await AMQPConnection.connect(url: orchestrator.url, name: "full-disk-test")
        defer { Task { await connection.close() } }
        let channel = try await connection.openChannel()
        try await channel.confirmSelect()
        // Fill the disk.
        let filler = mount + "/filler"
        _ = try await run("/bin/dd", ["if=/dev/zero", "of=\(filler)", "bs=64k"])
        let param = String(repeating: "p", count: 100_000)
        for i in 0..<20 {
            try await channel.basicPublish(#"{"id": "full-\#(i)", "timeout": "1h", "param": "\#(param)"}"#, exchange: orchestrator.prefix,
                                           routingKey: "promise.create", properties: BasicProperties(deliveryMode: .persistent)).wait()
        }
        // Not ready, and the commands wait in the queue; the process lives.
        let ready = try await within(.seconds(30), "not ready") {
            while true {
                let r = try await http("GET", orchestrator.httpURL + "/ready")
                if r.status == 503, r.text.contains("storage") { return r }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        #expect(ready.text.contains("database"))
        #expect(kill(orchestrator.pid, 0) == 0)
        #expect(orchestrator.logText.contains("the database refuses writes") && orchestrator.logText.contains("disk is full"), "\(orchestrator.logText.suffix(2000))")
        // The fault clears: everything is applied, nothing twice, nothing dead.
        try FileManager.default.removeItem(atPath: filler)
        try await within(.seconds(60), "the 20 promises") {
            while true {
                let page = try await http("GET", orchestrator.httpURL + "/promises?id=full-*&limit=100")
                if (page.json["promises"] as? [Any])?.count == 20 { return }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        #expect(try await http("GET", orchestrator.httpURL + "/ready").status == 200)
        let dead = try await connection.openChannel().queueDeclare(orchestrator.prefix + ".dead", passive: true)
        #expect(dead.messageCount == 0)
        _ = await orchestrator.kill(SIGTERM)
    }

    // MARK: Scripts leave the machine as they found it

    @Test func installingPackagesNeverStopsABrokerTheScriptDidNotStart() async throws {
        // Fakes of apt-get, dpkg-query and service on PATH: chromium is "missing", RabbitMQ is
        // installed (and, say, running as the system's broker). `service` records its calls.
        let dir = NSTemporaryDirectory() + "warren-install-deps-\(UInt32.random(in: 0..<UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fakes = [
            "dpkg-query": "#!/bin/sh\ncase \"$3\" in chromium) exit 1 ;; *) echo 'install ok installed' ;; esac\n",
            "apt-get": "#!/bin/sh\necho \"apt-get $*\" >> \(dir)/calls\n",
            "service": "#!/bin/sh\necho \"service $*\" >> \(dir)/calls\n",
            "sudo": "#!/bin/sh\nexec \"$@\"\n",
        ]
        for (name, text) in fakes {
            try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
            chmod(dir + "/" + name, 0o755)
        }
        let script = packageRoot.appendingPathComponent("Scripts/install-deps.sh").path
        let r = try await run("/bin/bash", [script, "--test"], environment: ["PATH": dir + ":/usr/bin:/bin"])
        #expect(r.status == 0, "\(r.output)")
        let calls = (try? String(contentsOfFile: dir + "/calls", encoding: .utf8)) ?? ""
        #expect(calls.contains("install") && calls.contains("chromium"), "\(calls)")
        #expect(!calls.contains("service"), "the script touched a broker it did not start:\n\(calls)")
    }

    @Test func aBackupTakenWhileServingRestores() async throws {
        try await Harness.with { h in
            for i in 0..<50 { try await h.publish("promise.create", #"{"id": "kept-\#(i)", "timeout": "1h"}"#) }
            try await h.amqpPublish("promise.resolve", #"{"id": "kept-49", "value": "yes"}"#)
            _ = try await h.nextEvent()
            let copy = h.orchestrator.database + ".backup"
            defer { try? FileManager.default.removeItem(atPath: copy) }
            let backup = try await run(productsDirectory + "/warren", ["backup", "--db", h.orchestrator.database, "--to", copy])
            #expect(backup.status == 0, "\(backup.output)")
            // A second backup to the same file is refused, not overwritten.
            #expect(try await run(productsDirectory + "/warren", ["backup", "--db", h.orchestrator.database, "--to", copy]).status == 1)
            // Restore: another orchestrator on the copy has everything.
            let restored = OrchestratorProcess(url: h.orchestrator.url, database: copy)
            defer { restored.remove() }
            try await restored.start()
            let page = try await http("GET", restored.httpURL + "/promises?id=kept-*&limit=100")
            #expect((page.json["promises"] as? [Any])?.count == 50)
            #expect(try await http("GET", restored.httpURL + "/promises/kept-49").json["state"] as? String == "RESOLVED")
            _ = await restored.kill(SIGTERM)
        }
    }
}
