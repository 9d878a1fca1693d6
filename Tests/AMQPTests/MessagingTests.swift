import AMQP
import Foundation
import Synchronization
import Testing
import WarrenTestSupport

/// Publishing, consuming and acknowledging against a real broker.
@Suite("Messaging against RabbitMQ")
struct MessagingTests {
    func connect(_ name: String = "test") async throws -> AMQPConnection {
        try await AMQPConnection.connect(url: try await SharedBroker.url(), name: name)
    }

    @Test(arguments: [0, 1, 1 << 20])
    func bodiesOfEverySizeRoundTrip(size: Int) async throws {
        let connection = try await connect()
        defer { Task { await connection.close() } }
        let channel = try await connection.openChannel()
        try await channel.confirmSelect()
        let queue = try await channel.queueDeclare("", durable: false, exclusive: true).queue
        let body = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        try await channel.basicPublish(body, exchange: "", routingKey: queue).wait()
        let consumer = try await channel.basicConsume(queue: queue)
        let delivery = try await consumer.next()
        #expect(delivery.body.count == size)
        #expect(delivery.body == body)
        try delivery.ack()
    }

    @Test func everyPropertyAndHeaderTypeRoundTrips() async throws {
        let connection = try await connect()
        defer { Task { await connection.close() } }
        let channel = try await connection.openChannel()
        try await channel.confirmSelect()
        let queue = try await channel.queueDeclare("", durable: false, exclusive: true).queue
        let headers: FieldTable = [
            "bool": .bool(true), "int8": .int8(-8), "uint8": .uint8(200), "int16": .int16(-1600),
            "uint16": .uint16(60000), "int32": .int32(-320000), "uint32": .uint32(4_000_000_000),
            "int64": .int64(-64_000_000_000), "uint64": .uint64(18_000_000_000_000_000_000), "float": .float(1.5), "double": .double(-2.25),
            "decimal": .decimal(scale: 2, value: 12345), "string": .string("héllo ✓"),
            "bytes": .bytes([0, 1, 254, 255]), "array": .array([.int32(1), .string("two"), .bool(false)]),
            "table": .table(["nested": .table(["deep": .int64(1)])]), "timestamp": .timestamp(1_700_000_000),
            "void": .void,
        ]
        let properties = BasicProperties(
            contentType: "application/json", contentEncoding: "identity", headers: headers,
            deliveryMode: .persistent, priority: 5, correlationID: "corr-1", replyTo: "reply-queue",
            expiration: "60000", messageID: "msg-1", timestamp: 1_700_000_001, type: "promise.resolve",
            userID: "guest", appID: "warren-tests", clusterID: "cluster-a")
        try await channel.basicPublish("{}", exchange: "", routingKey: queue, properties: properties).wait()
        let consumer = try await channel.basicConsume(queue: queue)
        let delivery = try await consumer.next()
        var received = delivery.properties
        // RabbitMQ 3.x keeps the field; some brokers drop cluster-id (deprecated in 0-9-1).
        if received.clusterID == nil { received.clusterID = "cluster-a" }
        #expect(received.headers == headers)
        #expect(received == properties)
        #expect(delivery.routingKey == queue)
        #expect(delivery.exchange == "")
        #expect(!delivery.redelivered)
        try delivery.ack()
    }

    @Test func tenThousandPersistentConfirmedMessagesArriveOnceEach() async throws {
        let connection = try await connect("publisher")
        let consumerConnection = try await connect("consumer")
        defer { Task { await connection.close(); await consumerConnection.close() } }
        let channel = try await connection.openChannel()
        try await channel.confirmSelect()
        let queue = uniqueName("ten-thousand")
        try await channel.queueDeclare(queue, durable: true)
        let count = 10_000
        var confirmations: [PublishConfirmation] = []
        confirmations.reserveCapacity(count)
        for i in 0..<count {
            confirmations.append(try channel.basicPublish(
                "message \(i)", exchange: "", routingKey: queue,
                properties: BasicProperties(deliveryMode: .persistent, messageID: "\(i)")))
        }
        for c in confirmations { try await c.wait() }
        #expect(try await channel.queueDeclare(queue, passive: true).messageCount == UInt32(count))

        let consumeChannel = try await consumerConnection.openChannel()
        try await consumeChannel.basicQos(prefetchCount: 500)
        let consumer = try await consumeChannel.basicConsume(queue: queue)
        let (seen, duplicates) = try await within(.seconds(60), "consuming 10,000 messages") {
            var seen = Set<Int>(), duplicates = 0
            for try await d in consumer {
                let id = Int(d.properties.messageID ?? "") ?? -1
                if !seen.insert(id).inserted { duplicates += 1 }
                #expect(String(decoding: d.body, as: UTF8.self) == "message \(id)")
                try d.ack()
                if seen.count == count { break }
            }
            return (seen, duplicates)
        }
        #expect(seen == Set(0..<count))
        #expect(duplicates == 0)
        try await consumeChannel.basicCancel(consumer.tag)
        let remaining = try await channel.queueDelete(queue)
        #expect(remaining == 0)
    }

    @Test func unackedDeliveriesAreRedeliveredToAnotherConsumer() async throws {
        let url = try await SharedBroker.url()
        let setup = try await AMQPConnection.connect(url: url)
        defer { Task { await setup.close() } }
        let channel = try await setup.openChannel()
        try await channel.confirmSelect()
        let queue = uniqueName("redeliver")
        try await channel.queueDeclare(queue, durable: false, autoDelete: false)
        for i in 0..<3 { try await channel.basicPublish("m\(i)", exchange: "", routingKey: queue).wait() }

        let first = try await AMQPConnection.connect(url: url, name: "goes-away")
        let firstChannel = try await first.openChannel()
        let firstConsumer = try await firstChannel.basicConsume(queue: queue)
        var firstBodies: [String] = []
        for _ in 0..<3 {
            let d = try await firstConsumer.next()
            #expect(!d.redelivered)
            firstBodies.append(String(decoding: d.body, as: UTF8.self))
        }
        await first.close()  // goes away without acking

        let secondChannel = try await setup.openChannel()
        let secondConsumer = try await secondChannel.basicConsume(queue: queue)
        var secondBodies: [String] = []
        for _ in 0..<3 {
            let d = try await secondConsumer.next()
            #expect(d.redelivered)
            secondBodies.append(String(decoding: d.body, as: UTF8.self))
            try d.ack()
        }
        #expect(firstBodies == ["m0", "m1", "m2"])
        #expect(secondBodies == firstBodies)
        try await channel.queueDelete(queue)
    }

    @Test func rejectedMessageReachesTheDeadLetterQueue() async throws {
        let connection = try await connect()
        defer { Task { await connection.close() } }
        let channel = try await connection.openChannel()
        try await channel.confirmSelect()
        let dlx = uniqueName("dlx"), dead = uniqueName("dead"), work = uniqueName("work")
        try await channel.exchangeDeclare(dlx, type: "fanout", durable: false, autoDelete: true)
        try await channel.queueDeclare(dead, durable: false, exclusive: true)
        try await channel.queueBind(dead, exchange: dlx, routingKey: "")
        try await channel.queueDeclare(work, durable: false, exclusive: true, arguments: ["x-dead-letter-exchange": .string(dlx)])
        try await channel.basicPublish("poison", exchange: "", routingKey: work,
                                       properties: BasicProperties(messageID: "p-1")).wait()
        let consumer = try await channel.basicConsume(queue: work)
        try await consumer.next().reject(requeue: false)
        let deadConsumer = try await channel.basicConsume(queue: dead)
        let d = try await deadConsumer.next()
        #expect(String(decoding: d.body, as: UTF8.self) == "poison")
        #expect(d.properties.messageID == "p-1")
        // RabbitMQ records why in x-death.
        guard case .array(let deaths)? = d.properties.headers?["x-death"], case .table(let death)? = deaths.first else {
            Issue.record("no x-death header: \(String(describing: d.properties.headers))"); return
        }
        #expect(death["reason"]?.stringValue == "rejected")
        #expect(death["queue"]?.stringValue == work)
        try d.ack()
    }

    @Test func unroutableMandatoryMessageIsAnError() async throws {
        let connection = try await connect()
        defer { Task { await connection.close() } }
        let channel = try await connection.openChannel()
        try await channel.confirmSelect()
        let exchange = uniqueName("nowhere")
        try await channel.exchangeDeclare(exchange, type: "direct", durable: false, autoDelete: false)
        let error = await expectAMQPError(.unroutable) {
            try await channel.basicPublish("lost", exchange: exchange, routingKey: "nobody", mandatory: true).wait()
        }
        #expect(error?.message.contains("nobody") == true)
        // The channel stays usable, and a routable publish right after still succeeds.
        try await channel.basicPublish("fine", exchange: exchange, routingKey: "nobody").wait()
        try await channel.exchangeDelete(exchange)
    }

    @Test func aNackedPublishIsAnErrorAndOthersAreConfirmed() async throws {
        let connection = try await connect()
        defer { Task { await connection.close() } }
        let channel = try await connection.openChannel()
        try await channel.confirmSelect()
        // A queue that holds one message and refuses more: the broker nacks the overflow.
        let queue = uniqueName("bounded")
        try await channel.queueDeclare(queue, durable: true, arguments: ["x-max-length": 1, "x-overflow": "reject-publish"])
        let first = try channel.basicPublish("kept", exchange: "", routingKey: queue, properties: .init(deliveryMode: .persistent))
        try await first.wait()
        let second = try channel.basicPublish("refused", exchange: "", routingKey: queue, properties: .init(deliveryMode: .persistent))
        await expectAMQPError(.nacked) { try await second.wait() }
        // The channel goes on: consume the kept one, then a publish is confirmed again.
        let consumer = try await channel.basicConsume(queue: queue)
        let d = try await consumer.next()
        #expect(String(decoding: d.body, as: UTF8.self) == "kept")
        try d.ack()
        try await channel.basicCancel(consumer.tag)
        try await channel.basicPublish("again", exchange: "", routingKey: queue).wait()
        try await channel.queueDelete(queue)
    }

    @Test func quorumQueuesWork() async throws {
        let connection = try await connect()
        defer { Task { await connection.close() } }
        let channel = try await connection.openChannel()
        try await channel.confirmSelect()
        let queue = uniqueName("quorum")
        try await channel.queueDeclare(queue, durable: true, arguments: ["x-queue-type": "quorum"])
        for i in 0..<100 { try channel.basicPublish("\(i)", exchange: "", routingKey: queue, properties: .init(deliveryMode: .persistent)) }
        try await channel.basicPublish("100", exchange: "", routingKey: queue, properties: .init(deliveryMode: .persistent)).wait()
        try await channel.basicQos(prefetchCount: 10)
        var received: [String] = []
        for try await d in try await channel.basicConsume(queue: queue) {
            received.append(String(decoding: d.body, as: UTF8.self))
            try d.ack()
            if received.count == 101 { break }
        }
        #expect(received == (0...100).map { "\($0)" })
        try await channel.queueDelete(queue)
    }

    @Test func brokerSideConsumerCancellationEndsTheSequenceWithAnError() async throws {
        let connection = try await connect()
        defer { Task { await connection.close() } }
        let channel = try await connection.openChannel()
        let other = try await connection.openChannel()
        let queue = uniqueName("cancelled")
        try await channel.queueDeclare(queue, durable: false)
        let consumer = try await channel.basicConsume(queue: queue)
        try await other.queueDelete(queue)
        await expectAMQPError(.consumerCancelled) {
            for try await _ in consumer {}
        }
        // The channel itself is still open.
        try await channel.queueDeclare(uniqueName("still-open"), durable: false, exclusive: true)
    }

    @Test func cancellingAConsumerEndsItsSequence() async throws {
        let connection = try await connect()
        defer { Task { await connection.close() } }
        let channel = try await connection.openChannel()
        let queue = try await channel.queueDeclare("", durable: false, exclusive: true).queue
        let consumer = try await channel.basicConsume(queue: queue)
        try await channel.basicCancel(consumer.tag)
        let count = try await within(.seconds(5), "consumer end") {
            var n = 0
            for try await _ in consumer { n += 1 }
            return n
        }
        #expect(count == 0)
    }

    @Test func aConsumerNoLongerIteratedGivesItsUnseenDeliveriesBack() async throws {
        let connection = try await connect()
        defer { Task { await connection.close() } }
        let channel = try await connection.openChannel()
        try await channel.confirmSelect()
        let queue = try await channel.queueDeclare("", durable: false, exclusive: true).queue
        for i in 0..<20 { try channel.basicPublish("\(i)", exchange: "", routingKey: queue) }
        try await channel.basicPublish("20", exchange: "", routingKey: queue).wait()
        let firstSeen = AsyncStream<Void>.makeStream()
        let iterating = Task {
            var seen = 0
            // The sequence lives only in this task: when the task ends, so does the consumer.
            for try await d in try await channel.basicConsume(queue: queue) {
                seen += 1
                try d.ack()
                firstSeen.continuation.yield()
                try await Task.sleep(for: .seconds(60))  // cancelled here
            }
            return seen
        }
        var it = firstSeen.stream.makeAsyncIterator()
        _ = await it.next()
        iterating.cancel()
        _ = try? await iterating.value
        // The consumer is cancelled at the broker and its 20 unseen deliveries are back in the queue.
        try await within(.seconds(10), "20 messages back in the queue") {
            while try await channel.queueDeclare(queue, passive: true).messageCount != 20 {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(try await channel.queueDeclare(queue, passive: true).consumerCount == 0)
    }

    @Test func cancellingATaskWaitingForADeliveryCancelsTheConsumer() async throws {
        let connection = try await connect()
        defer { Task { await connection.close() } }
        let channel = try await connection.openChannel()
        let queue = try await channel.queueDeclare("", durable: false, exclusive: true).queue
        let consumer = try await channel.basicConsume(queue: queue)
        #expect(try await channel.queueDeclare(queue, passive: true).consumerCount == 1)
        let waiting = Task {
            var n = 0
            for try await _ in consumer { n += 1 }
            return n
        }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        #expect(try await waiting.value == 0)  // the sequence ends
        try await within(.seconds(10), "the consumer is cancelled at the broker") {
            while try await channel.queueDeclare(queue, passive: true).consumerCount != 0 {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    @Test func manyChannelsPublishAndConsumeConcurrently() async throws {
        let connection = try await connect("many-channels")
        defer { Task { await connection.close() } }
        let perChannel = 500
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    let channel = try await connection.openChannel()
                    try await channel.confirmSelect()
                    let queue = try await channel.queueDeclare("", durable: false, exclusive: true).queue
                    let consumer = try await channel.basicConsume(queue: queue)
                    var confirmations: [PublishConfirmation] = []
                    for i in 0..<perChannel {
                        confirmations.append(try channel.basicPublish("\(i)", exchange: "", routingKey: queue))
                    }
                    for c in confirmations { try await c.wait() }
                    var received = 0
                    for try await d in consumer {
                        #expect(String(decoding: d.body, as: UTF8.self) == "\(received)")
                        received += 1
                        try d.ack(multiple: true)
                        if received == perChannel { break }
                    }
                    try await channel.close()
                    return received
                }
            }
            var total = 0
            for try await n in group { total += n }
            #expect(total == 8 * perChannel)
        }
    }
}
