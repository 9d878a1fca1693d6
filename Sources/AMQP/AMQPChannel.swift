import Synchronization

/// An AMQP channel: declarations, publishing and consuming, multiplexed on a connection.
///
/// Every method is carried out, in call order, by the connection's I/O thread; the async ones
/// suspend until the broker answers and never block Swift's cooperative pool. When the broker
/// closes the channel (a publish to a missing exchange, a conflicting declaration), every
/// later call throws ``AMQPError/Code/channelClosed`` with the broker's reason: open a new channel.
/// When the connection is lost and recovered, the channel is reopened under the same number
/// with its prefetch, confirm mode and consumers.
public final class AMQPChannel: Sendable {
    enum Status: Sendable {
        case open(generation: UInt64)
        case closed(AMQPError)
    }

    enum Acknowledgement: Sendable {
        case ack(multiple: Bool)
        case nack(multiple: Bool, requeue: Bool)
        case reject(requeue: Bool)
    }

    /// The channel number on its connection.
    public let id: UInt16
    let loop: ConnectionLoop
    /// Mirrors the I/O thread's view, so calls on a closed channel fail at once.
    let status: Mutex<Status>

    init(id: UInt16, loop: ConnectionLoop, generation: UInt64) {
        self.id = id
        self.loop = loop
        self.status = Mutex(.open(generation: generation))
    }

    /// `nil` while the channel is usable, else why it closed.
    public var closeReason: AMQPError? {
        status.withLock { if case .closed(let e) = $0 { return e } else { return nil } }
    }

    func checkOpen() throws(AMQPError) -> UInt64 {
        let s = status.withLock { $0 }
        switch s {
        case .open(let g): return g
        case .closed(let e): throw AMQPError(.channelClosed, "channel \(id) is closed: \(e.message)", replyCode: e.replyCode)
        }
    }

    /// Runs `body` on the I/O thread with this channel's state, after checking the channel is open.
    func perform<T: Sendable>(_ what: String, _ body: @escaping @Sendable (ConnectionLoop, ChannelState) throws(AMQPError) -> T) async throws -> T {
        _ = try checkOpen()
        let id = self.id
        return try await loop.perform { loop throws(AMQPError) in
            let state = try loop.openChannelState(id, for: what)
            return try body(loop, state)
        }
    }

    // MARK: Exchanges and queues

    /// Declares an exchange (idempotent when the arguments match the existing one).
    ///
    /// - Parameters:
    ///   - type: `direct`, `fanout`, `topic`, `headers`, or a plugin's type.
    ///   - passive: only check that it exists (throws `notFound` if not); nothing is created.
    public func exchangeDeclare(_ name: String, type: String = "direct", durable: Bool = true, autoDelete: Bool = false,
                                internal: Bool = false, passive: Bool = false, arguments: FieldTable = [:]) async throws {
        try Self.checkShortString(name, "exchange name")
        let decl = ExchangeDeclaration(name: name, type: type, durable: durable, autoDelete: autoDelete,
                                       internal: `internal`, arguments: arguments)
        try await perform("exchange.declare '\(name)'") { loop, ch throws(AMQPError) in
            try loop.exchangeDeclare(decl, passive: passive, on: ch)
        }
    }

    /// Deletes an exchange.
    public func exchangeDelete(_ name: String, ifUnused: Bool = false) async throws {
        try await perform("exchange.delete '\(name)'") { loop, ch throws(AMQPError) in
            try loop.exchangeDelete(name, ifUnused: ifUnused, on: ch)
        }
    }

    /// The broker's answer to `queue.declare`.
    public struct QueueDeclareOk: Sendable, Equatable {
        public var queue: String
        public var messageCount: UInt32
        public var consumerCount: UInt32
    }

    /// Declares a queue (idempotent when the arguments match the existing one).
    ///
    /// Arguments carry queue features: `["x-queue-type": "quorum"]`,
    /// `["x-dead-letter-exchange": "dlx"]`, `["x-message-ttl": 60000]`.
    /// - Parameter passive: only check that it exists and read its counts; throws `notFound` if not.
    /// - Returns: the queue's name (the broker's choice when `name` is empty) and its counts.
    @discardableResult
    public func queueDeclare(_ name: String, durable: Bool = true, exclusive: Bool = false, autoDelete: Bool = false,
                             passive: Bool = false, arguments: FieldTable = [:]) async throws -> QueueDeclareOk {
        try Self.checkShortString(name, "queue name")
        let decl = QueueDeclaration(name: name, durable: durable, exclusive: exclusive, autoDelete: autoDelete, arguments: arguments)
        return try await perform("queue.declare '\(name)'") { loop, ch throws(AMQPError) in
            try loop.queueDeclare(decl, passive: passive, on: ch)
        }
    }

    /// Binds a queue to an exchange with a routing key (a pattern on topic exchanges).
    public func queueBind(_ queue: String, exchange: String, routingKey: String, arguments: FieldTable = [:]) async throws {
        try Self.checkShortString(queue, "queue name")
        try Self.checkShortString(routingKey, "routing key")
        let binding = QueueBinding(queue: queue, exchange: exchange, routingKey: routingKey, arguments: arguments)
        try await perform("queue.bind '\(queue)' to '\(exchange)'") { loop, ch throws(AMQPError) in
            try loop.queueBind(binding, on: ch)
        }
    }

    /// Binds exchange `destination` to exchange `source`: what `source` routes with `routingKey`
    /// goes on to `destination` (RabbitMQ's exchange-to-exchange bindings).
    public func exchangeBind(destination: String, source: String, routingKey: String, arguments: FieldTable = [:]) async throws {
        try Self.checkShortString(destination, "exchange name")
        try Self.checkShortString(source, "exchange name")
        try Self.checkShortString(routingKey, "routing key")
        let binding = ExchangeBinding(destination: destination, source: source, routingKey: routingKey, arguments: arguments)
        try await perform("exchange.bind '\(destination)' to '\(source)'") { loop, ch throws(AMQPError) in
            try loop.exchangeBind(binding, on: ch)
        }
    }

    /// Removes an exchange-to-exchange binding.
    public func exchangeUnbind(destination: String, source: String, routingKey: String, arguments: FieldTable = [:]) async throws {
        let binding = ExchangeBinding(destination: destination, source: source, routingKey: routingKey, arguments: arguments)
        try await perform("exchange.unbind '\(destination)' from '\(source)'") { loop, ch throws(AMQPError) in
            try loop.exchangeUnbind(binding, on: ch)
        }
    }

    /// Removes a binding.
    public func queueUnbind(_ queue: String, exchange: String, routingKey: String, arguments: FieldTable = [:]) async throws {
        let binding = QueueBinding(queue: queue, exchange: exchange, routingKey: routingKey, arguments: arguments)
        try await perform("queue.unbind '\(queue)' from '\(exchange)'") { loop, ch throws(AMQPError) in
            try loop.queueUnbind(binding, on: ch)
        }
    }

    /// Deletes a queue and returns how many messages it held.
    @discardableResult
    public func queueDelete(_ name: String, ifUnused: Bool = false, ifEmpty: Bool = false) async throws -> UInt32 {
        try await perform("queue.delete '\(name)'") { loop, ch throws(AMQPError) in
            try loop.queueDelete(name, ifUnused: ifUnused, ifEmpty: ifEmpty, on: ch)
        }
    }

    /// Removes every ready message from a queue and returns how many there were.
    @discardableResult
    public func queuePurge(_ name: String) async throws -> UInt32 {
        try await perform("queue.purge '\(name)'") { loop, ch throws(AMQPError) in
            try loop.queuePurge(name, on: ch)
        }
    }

    // MARK: Quality of service and confirms

    /// Limits how many deliveries the broker sends before they are acknowledged.
    /// - Parameter global: share the limit across the channel's consumers (RabbitMQ's meaning).
    public func basicQos(prefetchCount: UInt16, global: Bool = false) async throws {
        try await perform("basic.qos") { loop, ch throws(AMQPError) in
            try loop.basicQos(prefetchCount: prefetchCount, global: global, on: ch)
        }
    }

    /// Puts the channel in confirm mode: the broker acknowledges every published message, and
    /// each ``PublishConfirmation`` reports that outcome.
    public func confirmSelect() async throws {
        try await perform("confirm.select") { loop, ch throws(AMQPError) in
            try loop.confirmSelect(on: ch)
        }
    }

    // MARK: Publishing

    /// Publishes a message and returns at once with its confirmation to await.
    ///
    /// Many publishes can be in flight; their confirms are matched as they arrive, honouring
    /// the broker's `multiple` flag. With `mandatory`, a message no queue receives comes back
    /// and its confirmation throws `unroutable`.
    /// ```swift
    /// try await channel.confirmSelect()
    /// let confirmation = try channel.basicPublish(Array("hi".utf8), exchange: "", routingKey: "greetings",
    ///                                             properties: .init(deliveryMode: .persistent))
    /// try await confirmation.wait()
    /// ```
    /// - Throws: `channelClosed` at once when the channel is already closed; otherwise errors
    ///   come from the confirmation.
    @discardableResult
    public func basicPublish(_ body: [UInt8], exchange: String, routingKey: String, mandatory: Bool = false,
                             properties: BasicProperties = BasicProperties()) throws -> PublishConfirmation {
        _ = try checkOpen()
        try Self.checkShortString(exchange, "exchange name")
        try Self.checkShortString(routingKey, "routing key")
        let confirmation = PublishConfirmation()
        let message = OutgoingMessage(body: body, exchange: exchange, routingKey: routingKey,
                                      mandatory: mandatory, properties: properties)
        let id = self.id
        if !loop.submit({ loop in loop.basicPublish(message, channel: id, confirmation: confirmation) }) {
            confirmation.complete(loop.terminalError)
        }
        return confirmation
    }

    /// Publishes a UTF-8 string; see ``basicPublish(_:exchange:routingKey:mandatory:properties:)``.
    @discardableResult
    public func basicPublish(_ text: String, exchange: String, routingKey: String, mandatory: Bool = false,
                             properties: BasicProperties = BasicProperties()) throws -> PublishConfirmation {
        try basicPublish(Array(text.utf8), exchange: exchange, routingKey: routingKey, mandatory: mandatory, properties: properties)
    }

    // MARK: Consuming

    /// Starts a consumer on `queue` and returns its deliveries as an async sequence.
    ///
    /// Deliveries need manual acknowledgement unless `noAck` is set. Set ``basicQos(prefetchCount:global:)``
    /// first to bound how many deliveries are in flight (and buffered in the sequence).
    /// - Parameters:
    ///   - consumerTag: empty for a tag chosen by the broker.
    ///   - maximumBodyBytes: a body larger than this is judged from its content header and never
    ///     buffered: the delivery arrives with an empty body and ``AMQPDelivery/bodyDiscarded``.
    public func basicConsume(queue: String, consumerTag: String = "", noAck: Bool = false, exclusive: Bool = false,
                             arguments: FieldTable = [:], maximumBodyBytes: Int? = nil) async throws -> AMQPConsumer {
        let buffer = DeliveryBuffer()
        let spec = ConsumerSpec(queue: queue, tag: consumerTag, noAck: noAck, exclusive: exclusive, arguments: arguments,
                                maximumBodyBytes: maximumBodyBytes)
        let tag = try await perform("basic.consume on '\(queue)'") { loop, ch throws(AMQPError) in
            try loop.basicConsume(spec, buffer: buffer, on: ch)
        }
        return AMQPConsumer(tag: tag, buffer: buffer)
    }

    /// Cancels a consumer: its sequence ends after the deliveries already received.
    /// Deliveries it holds unacknowledged stay so until acknowledged or the channel closes.
    public func basicCancel(_ consumerTag: String) async throws {
        try await perform("basic.cancel '\(consumerTag)'") { loop, ch throws(AMQPError) in
            try loop.basicCancel(consumerTag, on: ch)
        }
    }

    func acknowledge(_ kind: Acknowledgement, deliveryTag: UInt64, generation: UInt64) throws {
        let current = try checkOpen()
        guard current == generation else {
            throw AMQPError(.staleDelivery, "delivery \(deliveryTag) arrived on an earlier connection to the broker; "
                + "it cannot be acknowledged any more and will be delivered again")
        }
        let id = self.id
        if !loop.submit({ loop in loop.acknowledge(kind, deliveryTag: deliveryTag, generation: generation, channel: id) }) {
            throw loop.terminalError
        }
    }

    /// AMQP carries names and routing keys as short strings: 255 bytes at most. Checked before
    /// anything is sent, so a long one fails alone instead of breaking the connection.
    public static let maximumShortStringBytes = 255

    static func checkShortString(_ s: String, _ what: String) throws(AMQPError) {
        if s.utf8.count > maximumShortStringBytes {
            throw AMQPError(.invalidArgument, "the \(what) '\(s.prefix(40))…' is \(s.utf8.count) bytes; AMQP allows \(maximumShortStringBytes)")
        }
    }

    // MARK: Closing

    /// Closes the channel. Unconfirmed publishes fail with `channelClosed`; consumers end.
    /// Closing a closed channel does nothing.
    public func close() async throws {
        if closeReason != nil { return }
        let id = self.id
        try await loop.perform { loop throws(AMQPError) in loop.channelClose(id) }
    }
}
