import AMQP
import Foundation
import Testing
import WarrenTestSupport

/// Bad input gives a specific, readable error within a bounded time, and never hangs or crashes.
@Suite("Errors")
struct FailureTests {
    @Test func malformedURI() async {
        let error = await expectAMQPError(.invalidURI) {
            _ = try await AMQPConnection.connect(url: "amqp://guest:guest@localhost:notaport/%2f")
        }
        #expect(error?.message.contains("port") == true)
    }

    @Test func wrongCredentials() async throws {
        let url = try await SharedBroker.url().replacingOccurrences(of: "guest:guest@", with: "guest:wrong@")
        let error = await expectAMQPError(.accessRefused) { _ = try await AMQPConnection.connect(url: url) }
        #expect(error?.message.contains("guest") == true)
    }

    @Test func wrongVhost() async throws {
        let url = try await SharedBroker.url().replacingOccurrences(of: "/%2f", with: "/no-such-vhost")
        let error = await expectAMQPError(.notAllowed) { _ = try await AMQPConnection.connect(url: url) }
        #expect(error?.message.contains("no-such-vhost") == true)
    }

    @Test func aNameOrRoutingKeyLongerThanAMQPAllowsFailsAloneAndTheConnectionGoesOn() async throws {
        let connection = try await AMQPConnection.connect(url: try await SharedBroker.url())
        defer { Task { await connection.close() } }
        let channel = try await connection.openChannel()
        try await channel.confirmSelect()
        let queue = try await channel.queueDeclare("", exclusive: true).queue
        let longKey = String(repeating: "k", count: 256)
        let publish = await expectAMQPError(.invalidArgument) { _ = try channel.basicPublish("x", exchange: "", routingKey: longKey) }
        #expect(publish?.message.contains("256 bytes") == true)
        _ = await expectAMQPError(.invalidArgument) { try await channel.queueDeclare(String(repeating: "q", count: 300)) }
        _ = await expectAMQPError(.invalidArgument) { try await channel.queueBind(queue, exchange: "amq.topic", routingKey: longKey) }
        // At the edge, 255 bytes, it is sent; the channel and the connection carry on.
        try await channel.basicPublish("x", exchange: "", routingKey: String(repeating: "k", count: 255)).wait()
        try await channel.basicPublish("after", exchange: "", routingKey: queue).wait()
        var it = try await channel.basicConsume(queue: queue, noAck: true).makeAsyncIterator()
        #expect(try await it.next().map { String(decoding: $0.body, as: UTF8.self) } == "after")
    }

    @Test func unreachablePort() async {
        let port = freePort()  // nothing listens there
        let error = await expectAMQPError(.connectionRefused, within: .seconds(5)) {
            _ = try await AMQPConnection.connect(url: "amqp://guest:guest@127.0.0.1:\(port)/%2f")
        }
        #expect(error?.message.contains("\(port)") == true)
    }

    @Test func connectTimeoutIsBounded() async {
        // A TCP listener that never answers the AMQP handshake: login must time out, not hang.
        let port = freePort()
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        listen(listener, 4)
        var config = AMQPConfiguration(host: "127.0.0.1", port: port)
        config.connectTimeout = .milliseconds(500)
        let started = ContinuousClock.now
        let silent = config
        // Bounded, not hanging: a generous bound, since the whole suite runs in parallel on two
        // cores (it once took 6.5 s in CI beside the 20 MiB tests, and 28.8 s beside the
        // PostgreSQL store's tests, which hold the cooperative pool's threads while they wait on
        // the server, and 60.9 s locally while the suite's first minute starved every test of it).
        await expectAMQPError(.timeout, within: .seconds(120)) { _ = try await AMQPConnection.connect(silent) }
        #expect(ContinuousClock.now - started < .seconds(120))
    }

    @Test func publishToMissingExchangeClosesTheChannelWithTheBrokersReason() async throws {
        let connection = try await AMQPConnection.connect(url: try await SharedBroker.url())
        defer { Task { await connection.close() } }
        let channel = try await connection.openChannel()
        try await channel.confirmSelect()
        let exchange = uniqueName("missing")
        let error = await expectAMQPError(.channelClosed) {
            try await channel.basicPublish("x", exchange: exchange, routingKey: "k").wait()
        }
        #expect(error?.replyCode == 404)
        #expect(error?.message.contains(exchange) == true)
        // Later calls on that channel fail at once with the same reason...
        #expect(channel.closeReason?.code == .notFound)
        let again = await expectAMQPError(.channelClosed) { try await channel.queueDeclare("q", passive: true) }
        #expect(again?.message.contains("NOT_FOUND") == true)
        #expect(throws: AMQPError.self) { try channel.basicPublish("y", exchange: "", routingKey: "q") }
        // ...and the connection goes on.
        let next = try await connection.openChannel()
        try await next.queueDeclare("", durable: false, exclusive: true)
    }

    @Test func closedChannelGivesAClearError() async throws {
        let connection = try await AMQPConnection.connect(url: try await SharedBroker.url())
        defer { Task { await connection.close() } }
        let channel = try await connection.openChannel()
        try await channel.close()
        let error = await expectAMQPError(.channelClosed) { try await channel.queueDeclare("", exclusive: true) }
        #expect(error?.message.contains("closed by this client") == true)
        try await channel.close()  // twice is harmless
    }

    @Test func passiveDeclareOfMissingQueueIsNotFound() async throws {
        let connection = try await AMQPConnection.connect(url: try await SharedBroker.url())
        defer { Task { await connection.close() } }
        let channel = try await connection.openChannel()
        let error = await expectAMQPError(.notFound) { try await channel.queueDeclare(uniqueName("absent"), passive: true) }
        #expect(error?.replyCode == 404)
    }

    @Test func conflictingRedeclarationIsPreconditionFailed() async throws {
        let connection = try await AMQPConnection.connect(url: try await SharedBroker.url())
        defer { Task { await connection.close() } }
        let channel = try await connection.openChannel()
        let queue = uniqueName("conflict")
        try await channel.queueDeclare(queue, durable: false, autoDelete: true)
        await expectAMQPError(.preconditionFailed) { try await channel.queueDeclare(queue, durable: true) }
    }

    @Test func callsOnAClosedConnectionFail() async throws {
        let connection = try await AMQPConnection.connect(url: try await SharedBroker.url())
        let channel = try await connection.openChannel()
        await connection.close()
        await expectAMQPError(.connectionClosed) { _ = try await connection.openChannel() }
        await expectAMQPError(.channelClosed) { try await channel.queueDeclare("", exclusive: true) }
        await connection.close()
        #expect(connection.state != .open)
    }
}
