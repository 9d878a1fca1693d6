import AMQP
import Foundation
import Synchronization
import Testing
import WarrenTestSupport

/// Tests that stop, kill and restart a broker of their own. Serialized: each starts one broker.
@Suite("Broker restarts", .serialized)
struct BrokerRestartTests {
    @Test func durableQueueAndPersistentMessagesSurviveABrokerRestart() async throws {
        let broker = try await PrivateBroker.start()
        do {
            var config = try AMQPConfiguration(url: broker.url)
            config.recovery = .disabled
            config.connectionName = "persistence-test-publisher"
            let connection = try await AMQPConnection.connect(config)
            // The name reaches the broker, for operators reading `rabbitmqctl list_connections`.
            #expect(try await broker.ctl(["list_connections", "client_properties"]).contains("persistence-test-publisher"))
            let channel = try await connection.openChannel()
            try await channel.confirmSelect()
            try await channel.queueDeclare("durable-q", durable: true)
            try await channel.queueDeclare("transient-q", durable: false)
            for i in 0..<100 {
                try channel.basicPublish("persistent \(i)", exchange: "", routingKey: "durable-q",
                                         properties: .init(deliveryMode: .persistent))
            }
            try await channel.basicPublish("last", exchange: "", routingKey: "durable-q",
                                           properties: .init(deliveryMode: .persistent)).wait()
            await connection.close()

            try await broker.stop()
            try await broker.restart()

            let again = try await AMQPConnection.connect(url: broker.url)
            let ch = try await again.openChannel()
            #expect(try await ch.queueDeclare("durable-q", passive: true).messageCount == 101)
            await expectAMQPError(.notFound) { try await ch.queueDeclare("transient-q", passive: true) }
            let consumer = try await (try await again.openChannel()).basicConsume(queue: "durable-q")
            let first = try await consumer.next()
            #expect(String(decoding: first.body, as: UTF8.self) == "persistent 0")
            #expect(first.properties.deliveryMode == .persistent)
            await again.close()
        } catch {
            await broker.destroy()
            throw error
        }
        await broker.destroy()
    }

    /// A publisher and a consumer run while the broker stops (politely, or killed with SIGKILL)
    /// and starts again; both go on by themselves, and every message is counted.
    @Test(arguments: [false, true])
    func publisherAndConsumerRecoverFromABrokerRestart(killed: Bool) async throws {
        let broker = try await PrivateBroker.start()
        do {
            var config = try AMQPConfiguration(url: broker.url)
            config.recovery = .init(initialDelay: .milliseconds(100), maximumDelay: .milliseconds(500))
            config.connectionName = "recovering-publisher"
            let publisher = try await AMQPConnection.connect(config)
            config.connectionName = "recovering-consumer"
            let consumerConnection = try await AMQPConnection.connect(config)
            let pch = try await publisher.openChannel()
            try await pch.confirmSelect()
            let queue = "recovery-q"
            try await pch.queueDeclare(queue, durable: true)
            let cch = try await consumerConnection.openChannel()
            // The consumer declares what it consumes too (recovery declares it again first), as
            // consumers should: it does not depend on the publisher's recovery coming first.
            try await cch.queueDeclare(queue, durable: true)
            try await cch.basicQos(prefetchCount: 50)
            let consumer = try await cch.basicConsume(queue: queue)

            let total = 3000
            let received = Mutex(Set<Int>())
            let consumed = Task {
                for try await d in consumer {
                    let n = Int(String(decoding: d.body, as: UTF8.self))!
                    let count = received.withLock { $0.insert(n); return $0.count }
                    do { try d.ack() } catch let e as AMQPError where e.code == .staleDelivery {
                        // Its connection died before the ack: it comes again, and the set counts it once.
                    }
                    if count == total { return }
                }
            }
            let published = Task {
                var republished = 0
                for n in 0..<total {
                    // At least once: a publish whose confirm was lost with the connection is sent again.
                    while true {
                        do {
                            try await pch.basicPublish("\(n)", exchange: "", routingKey: queue,
                                                       properties: .init(deliveryMode: .persistent)).wait()
                            break
                        } catch let e as AMQPError where e.code == .connectionLost {
                            republished += 1
                        }
                    }
                    if n % 10 == 0 { try await Task.sleep(for: .milliseconds(1)) }
                }
                return republished
            }
            // Stop the broker while both run.
            try await within(.seconds(30), "first messages") {
                while received.withLock({ $0.count }) < 300 { try await Task.sleep(for: .milliseconds(10)) }
            }
            if killed {
                try await broker.script(["kill", broker.dir])  // no connection.close: the sockets just die
            } else {
                try await broker.stop()
            }
            try await broker.restart()
            let republished = try await within(.seconds(90), "publisher finishing") { try await published.value }
            try await within(.seconds(90), "consumer finishing") { try await consumed.value }
            #expect(received.withLock { $0 } == Set(0..<total))
            // On a loaded machine the publisher can finish before the broker stops; its recovery
            // then completes after the last message: wait for it rather than race it.
            try await within(.seconds(60), "both connections recovered") {
                while !(publisher.recoveryCount >= 1 && consumerConnection.recoveryCount >= 1 && publisher.state == .open) {
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            print("recovery: republished \(republished) unconfirmed messages after the restart")
            await publisher.close()
            await consumerConnection.close()
        } catch {
            await broker.destroy()
            throw error
        }
        await broker.destroy()
    }

    /// A broker that stops answering (SIGSTOP: the socket stays open, nothing comes) is noticed
    /// by missed heartbeats, and the connection recovers once it answers again.
    @Test func aSilentBrokerIsNoticedThroughHeartbeatsAndTheConnectionRecovers() async throws {
        let broker = try await PrivateBroker.start()
        do {
            var config = try AMQPConfiguration(url: broker.url)
            config.heartbeat = 1
            config.connectTimeout = .seconds(2)
            config.recovery = .init(initialDelay: .milliseconds(100), maximumDelay: .milliseconds(500))
            let connection = try await AMQPConnection.connect(config)
            let channel = try await connection.openChannel()
            let queue = try await channel.queueDeclare("heartbeat-q", durable: false).queue
            let pid = pid_t(try String(contentsOfFile: broker.dir + "/broker.pid", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines))!
            kill(pid, SIGSTOP)
            let stopped = ContinuousClock.now
            do {
                try await within(.seconds(15), "the silence to be noticed") {
                    while connection.state != .recovering { try await Task.sleep(for: .milliseconds(50)) }
                }
            } catch {
                kill(pid, SIGCONT)
                throw error
            }
            let noticedAfter = ContinuousClock.now - stopped
            kill(pid, SIGCONT)
            #expect(noticedAfter < .seconds(6), "noticed after \(noticedAfter)")
            try await within(.seconds(60), "the connection to recover") {
                while connection.recoveryCount < 1 || connection.state != .open { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(try await channel.queueDeclare(queue, durable: false, passive: true).queue == queue)
            print("heartbeats: a silent broker noticed after \(noticedAfter)")
            await connection.close()
        } catch {
            await broker.destroy()
            throw error
        }
        await broker.destroy()
    }

    @Test func recoveryGivesUpAfterTheConfiguredAttempts() async throws {
        let broker = try await PrivateBroker.start()
        var config = try AMQPConfiguration(url: broker.url)
        config.recovery = .init(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(100), maximumAttempts: 3)
        let connection = try await AMQPConnection.connect(config)
        let channel = try await connection.openChannel()
        let consumer = try await channel.basicConsume(queue: try await channel.queueDeclare("", exclusive: true).queue)
        await broker.destroy()
        await expectAMQPError(.connectionLost, within: .seconds(20)) { for try await _ in consumer {} }
        guard case .closed(let e) = connection.state else { Issue.record("state \(connection.state)"); return }
        #expect(e.message.contains("gave up"))
        await expectAMQPError(.connectionLost) { _ = try await connection.openChannel() }
    }

    @Test func tlsConnectionVerifiesTheBrokerCertificate() async throws {
        let broker = try await PrivateBroker.start(tls: true)
        do {
            let tlsPort = broker.tlsPort!
            let ca = broker.dir + "/tls/ca.pem"
            let connection = try await AMQPConnection.connect(url: "amqps://guest:guest@localhost:\(tlsPort)/%2f?cacertfile=\(ca)")
            let channel = try await connection.openChannel()
            try await channel.confirmSelect()
            let queue = try await channel.queueDeclare("", exclusive: true).queue
            try await channel.basicPublish("over tls", exchange: "", routingKey: queue).wait()
            let d = try await channel.basicConsume(queue: queue).next()
            #expect(String(decoding: d.body, as: UTF8.self) == "over tls")
            await connection.close()

            // With a client certificate too.
            let withCert = try await AMQPConnection.connect(url: "amqps://guest:guest@localhost:\(tlsPort)/%2f?cacertfile=\(ca)"
                + "&certfile=\(broker.dir)/tls/client.pem&keyfile=\(broker.dir)/tls/client.key")
            await withCert.close()

            // No CA: the broker's certificate cannot be verified.
            await expectAMQPError(.tls) { _ = try await AMQPConnection.connect(url: "amqps://guest:guest@localhost:\(tlsPort)/%2f") }
        } catch {
            await broker.destroy()
            throw error
        }
        await broker.destroy()
    }
}
