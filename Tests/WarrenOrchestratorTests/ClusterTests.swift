import AMQP
import Foundation
import Testing
import Warren
import WarrenStore
import WarrenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Warren on a real three-node RabbitMQ cluster with quorum queues (issue 11): every process is
/// given all three nodes and fails over when the one it is on dies. Nodes are SIGKILLed one at a
/// time, the leader of the orchestrator's queue and the node the orchestrator is connected to
/// among them, while a workflow waits for its human and while a load of workflows runs: every
/// workflow completes exactly once. `WARREN_CLUSTER_WORKFLOWS` sets the load's size (200 by
/// default, which CI runs).
@Suite("Cluster", .serialized)
struct ClusterTests {
    static var load: Int { Int(ProcessInfo.processInfo.environment["WARREN_CLUSTER_WORKFLOWS"] ?? "") ?? 200 }

    /// The node (1-based) that leads `queue`.
    static func leader(of queue: String, in cluster: PrivateCluster, asking node: Int) async throws -> Int {
        let text = try await cluster.ctl(node, ["list_queues", "name", "leader", "--no-table-headers", "--quiet"])
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(queue + "\t") }),
              let i = try await cluster.node(named: String(line)) else {
            throw TestFailure("no leader of \(queue) in:\n\(text)")
        }
        return i
    }

    /// The node (1-based) the connection named `name` is on.
    static func node(ofConnection name: String, in cluster: PrivateCluster, asking node: Int) async throws -> Int {
        let text = try await cluster.ctl(node, ["list_connections", "port", "client_properties", "--no-table-headers", "--quiet"])
        guard let line = text.split(separator: "\n").first(where: { $0.contains("\"\(name)\"") }),
              let port = Int(line.split(separator: "\t").first ?? "") else {
            throw TestFailure("no connection \(name) in:\n\(text)")
        }
        for i in 1...cluster.nodes where try await cluster.port(i) == port { return i }
        throw TestFailure("no node listens on \(port)")
    }

    /// Kills node `i`, lets the others carry on for a moment, and starts it again.
    static func bounce(_ i: Int, _ cluster: PrivateCluster, while work: () async throws -> Void = {}) async throws {
        try await cluster.kill(i)
        try await work()
        try await cluster.restart(i)
    }

    @Test func workflowsSurviveEachNodeKilledInTurnOnQuorumQueues() async throws {
        let cluster = try await PrivateCluster.start(nodes: 3)
        do {
            let url = try await cluster.url()
            let orchestrator = OrchestratorProcess(url: url)
            let worker = WorkerProcess(prefix: orchestrator.prefix, n: 1)
            defer { orchestrator.remove(); worker.remove() }
            try await orchestrator.start(["--queue-type", "quorum"])
            try worker.start(url: url, prefix: orchestrator.prefix, environment: ["WARREN_QUEUE_TYPE": "quorum"])
            let client = try await Warren(url: url, group: "gateway", prefix: orchestrator.prefix, queueType: .quorum)
            defer { Task { await client.close() } }
            do {
                // The human in the loop, across the loss of the orchestrator queue's leader.
                let first = Task { try await client.rpc("c-1", "foo-workflow", "c-1", target: "workers", as: String.self) }
                _ = try await worker.line(startingWith: "", containing: "task suspended")
                let leader = try await Self.leader(of: orchestrator.prefix + ".orchestrator", in: cluster, asking: 1)
                try await Self.bounce(leader, cluster) {
                    _ = try await client.promises.resolve("c-1.1", value: "approved")
                    #expect(try await within(.seconds(180), "c-1 with its queue's leader down") { try await first.value } == "foo workflow c-1 complete")
                }
                // Across the loss of the node the orchestrator consumes from.
                let second = Task { try await client.rpc("c-2", "foo-workflow", "c-2", target: "workers", as: String.self) }
                _ = try await worker.line(startingWith: "approve: ", containing: "c-2.1")
                let alive = leader == 1 ? 2 : 1
                let consuming = try await Self.node(ofConnection: "warren-orchestrator", in: cluster, asking: alive)
                try await Self.bounce(consuming, cluster) {
                    _ = try await within(.seconds(180), "c-2 to suspend") {
                        while (try await http("GET", orchestrator.httpURL + "/workflows/c-2").json["task"] as? [String: Any])?["state"] as? String != "suspended" {
                            try await Task.sleep(for: .milliseconds(50))
                        }
                    }
                    _ = try await client.promises.resolve("c-2.1", value: "approved")
                    #expect(try await within(.seconds(180), "c-2 with the orchestrator's node down") { try await second.value } == "foo workflow c-2 complete")
                }

                // A load of workflows while each node in turn is killed and restarted.
                let count = Self.load
                let done = GuaranteeTests.Counter()
                let burst = Task { try await GuaranteeTests.doubleAll(client, count, tag: "cl", progress: done) }
                for node in 1...3 {
                    try await GuaranteeTests.until("more workflows to complete", within: .seconds(120)) { done.value >= node * count / 5 || done.value == count }
                    try await Self.bounce(node, cluster) { try await Task.sleep(for: .seconds(2)) }
                }
                let results = try await within(.seconds(180), "\(count) workflows across three node failures") { try await burst.value }
                #expect(results.count == count && results.allSatisfy { $0.value == 2 * $0.key })
                try await GuaranteeTests.expectResolvedOnce(database: orchestrator.database, tag: "cl", count: count)
                print("cluster: \(count) workflows completed once each while nodes 1, 2 and 3 were killed in turn; c-1 and c-2 survived their nodes")
            } catch {
                print("orchestrator log:\n\(orchestrator.logText.suffix(4000))\nworker log:\n\(worker.text.suffix(3000))")
                throw error
            }
            _ = await orchestrator.kill(SIGTERM)
        } catch {
            await cluster.destroy()
            throw error
        }
        await cluster.destroy()
    }

    @Test func aClientFailsOverToTheNextNodeAndSaysWhichItIsOn() async throws {
        let cluster = try await PrivateCluster.start(nodes: 3)
        do {
            // The first node listed is down: the connection goes to the next.
            try await cluster.kill(1)
            let connection = try await AMQPConnection.connect(url: try await cluster.url(), name: "failover-test")
            #expect(connection.endpoint.port == (try await cluster.port(2)))
            // Its node dies: it recovers on the next one, and what it declared is there. (The
            // queue is declared with all three nodes up, so that it keeps a majority.)
            try await cluster.restart(1)
            let channel = try await connection.openChannel()
            try await channel.queueDeclare("failover-q", durable: true, arguments: ["x-queue-type": "quorum"])
            try await cluster.kill(2)
            try await within(.seconds(60), "recovery on another node") {
                while connection.recoveryCount == 0 { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(connection.endpoint.port != (try await cluster.port(2)))
            try await channel.confirmSelect()
            // A channel that published while the quorum queue had no leader may be nacked from then
            // on (RabbitMQ 3.10); a new channel is not. Warren's publishers do the same.
            let recovered = connection
            try await within(.seconds(60), "the quorum queue to take a message again") {
                var publishing = channel
                while true {
                    do {
                        try await publishing.basicPublish("after failover", exchange: "", routingKey: "failover-q").wait()
                        return
                    } catch let e as AMQPError where e.code == .nacked {
                        publishing = try await recovered.openChannel()
                        try await publishing.confirmSelect()
                        try await Task.sleep(for: .milliseconds(200))
                    }
                }
            }
            await connection.close()
            // None reachable: one error naming every node.
            try await cluster.kill(1)
            try await cluster.kill(3)
            do {
                _ = try await AMQPConnection.connect(url: try await cluster.url() + "?connection_timeout=2000", name: "none")
                Issue.record("connected with every node down")
            } catch let e as AMQPError {
                #expect(e.message.contains("none of the 3 brokers took the connection"), "\(e.message)")
            }
        } catch {
            await cluster.destroy()
            throw error
        }
        await cluster.destroy()
    }
}
