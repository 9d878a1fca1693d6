import DequeModule

/// A message on its way to `basic.publish`.
struct OutgoingMessage: Sendable {
    var body: [UInt8]
    var exchange: String
    var routingKey: String
    var mandatory: Bool
    var properties: BasicProperties
}

/// What `basic.consume` asked for; kept to resume the consumer after recovery.
struct ConsumerSpec: Sendable {
    var queue: String
    var tag: String
    var noAck: Bool
    var exclusive: Bool
    var arguments: FieldTable
    /// Bodies larger than this are not read into memory: the delivery arrives with an empty
    /// body and ``AMQPDelivery/bodyDiscarded`` set.
    var maximumBodyBytes: Int?
}

/// A consumer registered on a channel: its arguments and the buffer its deliveries go to.
final class ConsumerState {
    let spec: ConsumerSpec
    let buffer: DeliveryBuffer
    /// Deliveries read in the current pass over the socket, handed over together at its end.
    var pending: [AMQPDelivery] = []

    init(spec: ConsumerSpec, buffer: DeliveryBuffer) {
        self.spec = spec
        self.buffer = buffer
    }
}

/// A delivery or return whose content (header and body frames) is still arriving.
struct IncomingContent {
    enum Kind {
        case delivery(consumerTag: String, deliveryTag: UInt64, redelivered: Bool, exchange: String, routingKey: String)
        case returned(replyCode: UInt16, replyText: String, exchange: String, routingKey: String)
    }
    var kind: Kind
    var properties = BasicProperties()
    var bodySize = 0
    var body: [UInt8] = []
    var headerSeen = false
    /// The body is over its consumer's limit: its frames are counted, not kept.
    var discardBody = false
    var received = 0
}

/// One channel as the I/O thread sees it. Owned by that thread only.
final class ChannelState {
    let id: UInt16
    /// The public handle, whose status mirror this state keeps current.
    let handle: AMQPChannel
    var prefetch: (count: UInt16, global: Bool)?
    var confirmMode = false
    /// The delivery tag the broker gives the next publish in confirm mode.
    var nextPublishTag: UInt64 = 1
    /// Publishes awaiting `basic.ack`/`basic.nack`, in tag order.
    var unconfirmed = Deque<(tag: UInt64, confirmation: PublishConfirmation)>()
    /// A `basic.return` waiting for the confirm that follows it.
    var pendingReturn: AMQPError?
    var consumers: [String: ConsumerState] = [:]
    var incoming: IncomingContent?

    init(id: UInt16, handle: AMQPChannel) {
        self.id = id
        self.handle = handle
    }

    /// Settles confirms up to `tag` (or just `tag`), failing them with `error` if given.
    func settleConfirms(upTo tag: UInt64, multiple: Bool, error: AMQPError?) {
        // A basic.return precedes the confirm of the message it returns.
        let returned = pendingReturn
        pendingReturn = nil
        if multiple {
            while let first = unconfirmed.first, first.tag <= tag {
                unconfirmed.removeFirst()
                first.confirmation.complete(first.tag == tag ? (error ?? returned) : error)
            }
        } else if let first = unconfirmed.first, first.tag == tag {
            unconfirmed.removeFirst()
            first.confirmation.complete(error ?? returned)
        } else if let index = unconfirmed.firstIndex(where: { $0.tag == tag }) {
            unconfirmed.remove(at: index).confirmation.complete(error ?? returned)
        }
    }

    /// Fails every unconfirmed publish and forgets half-received content: used when the
    /// channel or its connection goes away.
    func failInFlight(_ error: AMQPError) {
        let pending = unconfirmed
        unconfirmed.removeAll()
        for p in pending { p.confirmation.complete(error) }
        pendingReturn = nil
        incoming = nil
        nextPublishTag = 1
    }

    /// Ends every consumer's sequence, with `error` or normally.
    func finishConsumers(_ error: AMQPError?) {
        for c in consumers.values { c.buffer.finish(error) }
        consumers.removeAll()
    }
}
