import Logging

/// A connection to a RabbitMQ broker, with its own I/O thread and automatic recovery.
///
/// ```swift
/// let connection = try await AMQPConnection.connect(url: "amqp://guest:guest@localhost:5672/%2f", name: "orders")
/// let channel = try await connection.openChannel()
/// try await channel.queueDeclare("orders", arguments: ["x-queue-type": "quorum"])
/// ```
/// When the connection drops, the client reconnects with back-off, declares again what it had
/// declared, reopens its channels and resumes their consumers; calls made meanwhile wait for
/// the new connection, while work already sent (an unconfirmed publish) fails with
/// `connectionLost` so that the caller decides whether to send it again.
///
/// Close a connection with ``close()`` when done: its I/O thread and socket live until then.
public final class AMQPConnection: Sendable {
    /// Where the connection is in its life.
    public enum State: Sendable, Equatable {
        case connecting
        case open
        /// Lost and reconnecting; calls wait.
        case recovering
        /// Closed for good, by ``close()`` or because recovery gave up.
        case closed(AMQPError)
    }

    let loop: ConnectionLoop
    /// The configuration the connection was opened with.
    public let configuration: AMQPConfiguration

    private init(loop: ConnectionLoop, configuration: AMQPConfiguration) {
        self.loop = loop
        self.configuration = configuration
    }

    /// Opens a connection and logs in.
    ///
    /// - Throws: ``AMQPError`` with a code saying what failed: `connectionRefused` (nothing
    ///   listens, or the host does not resolve), `timeout`, `tls`, `accessRefused` (credentials),
    ///   `notAllowed` (vhost).
    public static func connect(_ configuration: AMQPConfiguration,
                               logger: Logger = Logger(label: "warren.amqp")) async throws -> AMQPConnection {
        let loop = ConnectionLoop(config: configuration, logger: logger)
        try await loop.start()
        return AMQPConnection(loop: loop, configuration: configuration)
    }

    /// Opens a connection from an AMQP URI; see ``AMQPURI`` for its form.
    public static func connect(url: String, name: String? = nil,
                               logger: Logger = Logger(label: "warren.amqp")) async throws -> AMQPConnection {
        var configuration = try AMQPConfiguration(url: url)
        configuration.connectionName = name
        return try await connect(configuration, logger: logger)
    }

    /// Opens a new channel.
    public func openChannel() async throws -> AMQPChannel {
        try await loop.perform { loop throws(AMQPError) in try loop.channelOpen() }
    }

    /// Where the connection is in its life.
    public var state: State { loop.publicState }

    /// How many times the connection has been recovered since it opened.
    public var recoveryCount: Int { loop.recoveryCount }

    /// The broker this connection is on now (one of the configuration's endpoints).
    public var endpoint: AMQPEndpoint { loop.connectedEndpoint }

    /// Closes the connection: sends what is queued, closes politely, ends every consumer.
    /// Unconfirmed publishes fail. Closing twice does nothing.
    public func close() async {
        await loop.requestClose()
    }
}
