/// A message delivered to a consumer, with manual acknowledgement.
///
/// Acknowledge every delivery exactly once, with ``ack(multiple:)``, ``nack(multiple:requeue:)``
/// or ``reject(requeue:)``. A delivery that was never acknowledged goes back to its queue when
/// its channel or connection closes, and reaches a consumer again marked ``redelivered``.
public struct AMQPDelivery: Sendable {
    /// The message body; empty when ``bodyDiscarded``.
    public let body: [UInt8]
    /// The body's size as the broker announced it, in bytes.
    public let bodySize: Int
    /// The body was larger than the consumer's `maximumBodyBytes` and was dropped as it arrived,
    /// never held in memory: refuse the delivery (``reject(requeue:)`` with `false` dead-letters it
    /// at the broker, body intact).
    public let bodyDiscarded: Bool
    public let properties: BasicProperties
    /// The channel-scoped tag that acknowledgements name.
    public let deliveryTag: UInt64
    /// `true` when the broker delivered this message before and it was not acknowledged.
    public let redelivered: Bool
    public let exchange: String
    public let routingKey: String
    public let consumerTag: String
    /// The channel the delivery arrived on.
    public let channel: AMQPChannel
    /// The connection incarnation the tag belongs to; tags die with it.
    let generation: UInt64

    /// Acknowledges this delivery (and with `multiple`, every earlier one on the channel).
    ///
    /// The acknowledgement is queued for the connection's I/O thread and sent in order with
    /// everything else on the channel; it does not wait for the socket.
    /// - Throws: ``AMQPError`` `staleDelivery` if the connection was recovered since the
    ///   delivery arrived (the broker will deliver it again), `channelClosed` if the channel is closed.
    public func ack(multiple: Bool = false) throws {
        try channel.acknowledge(.ack(multiple: multiple), deliveryTag: deliveryTag, generation: generation)
    }

    /// Negatively acknowledges this delivery (and with `multiple`, every earlier one).
    /// With `requeue: false` the broker dead-letters it when its queue has a dead-letter
    /// exchange, and drops it otherwise.
    public func nack(multiple: Bool = false, requeue: Bool = true) throws {
        try channel.acknowledge(.nack(multiple: multiple, requeue: requeue), deliveryTag: deliveryTag, generation: generation)
    }

    /// Rejects this delivery: requeued, or dead-lettered (dropped without a dead-letter exchange).
    public func reject(requeue: Bool = true) throws {
        try channel.acknowledge(.reject(requeue: requeue), deliveryTag: deliveryTag, generation: generation)
    }
}

/// The deliveries of one consumer, in the order the broker sent them.
///
/// Iterate it from one task. Cancelling that task while it waits for a delivery, or dropping
/// the sequence and its iterator, cancels the consumer at the broker, and the deliveries it
/// buffered go back to the queue.
///
/// ```swift
/// let consumer = try await channel.basicConsume(queue: "orders")
/// for try await delivery in consumer {
///     handle(delivery.body)
///     try delivery.ack()
/// }
/// ```
/// The sequence survives connection recovery (the consumer is resumed with the same tag). It
/// ends when the consumer is cancelled by ``AMQPChannel/basicCancel(_:)`` or the channel is
/// closed by this client, and throws ``AMQPError`` when the broker cancels the consumer
/// (`consumerCancelled`), the broker closes the channel, or the connection is lost for good.
public struct AMQPConsumer: AsyncSequence, Sendable {
    public typealias Element = AMQPDelivery
    /// The consumer tag, to cancel it with.
    public let tag: String
    let lifetime: Lifetime

    init(tag: String, buffer: DeliveryBuffer) {
        self.tag = tag
        self.lifetime = Lifetime(buffer: buffer)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let lifetime: Lifetime

        /// The next delivery; `nil` when the consumer ended.
        public mutating func next() async throws -> AMQPDelivery? {
            try await lifetime.buffer.next()
        }

        /// Waits for the next delivery, then takes, without waiting, up to `max` in all of those
        /// already received: a batch to process together (and acknowledge with one `multiple`
        /// ack). Empty when the consumer ended.
        public mutating func next(upTo max: Int) async throws -> [AMQPDelivery] {
            try await lifetime.buffer.nextBatch(max: max)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(lifetime: lifetime)
    }

    /// Shared by the sequence and its iterators: when the last of them is gone, no one can see
    /// another delivery, so the consumer is cancelled and what it buffered goes back to the queue.
    final class Lifetime: Sendable {
        let buffer: DeliveryBuffer
        init(buffer: DeliveryBuffer) { self.buffer = buffer }
        deinit { buffer.abandon() }
    }
}
