/// An error from the AMQP layer: what happened, in words a person can act on, with a stable code.
///
/// Errors the broker sends (a `channel.close` or `connection.close`) carry its reply code and
/// text, for example `404 NOT_FOUND - no exchange 'orders' in vhost '/'`.
public struct AMQPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure this is. Compare with the static members: `error.code == .notFound`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        public var description: String { raw }

        /// The AMQP URI cannot be parsed or holds an invalid value.
        public static let invalidURI = Code(raw: "invalidURI")
        /// A setting or argument is out of range.
        public static let invalidArgument = Code(raw: "invalidArgument")
        /// The TCP (or TLS) connection could not be opened.
        public static let connectionRefused = Code(raw: "connectionRefused")
        /// Connecting, or a broker reply, took longer than its timeout.
        public static let timeout = Code(raw: "timeout")
        /// The TLS handshake or certificate check failed.
        public static let tls = Code(raw: "tls")
        /// The broker refused the credentials (reply code 403 during login).
        public static let accessRefused = Code(raw: "accessRefused")
        /// The virtual host does not exist or the user may not use it (reply code 530).
        public static let notAllowed = Code(raw: "notAllowed")
        /// An entity (exchange, queue) does not exist (reply code 404).
        public static let notFound = Code(raw: "notFound")
        /// A declaration conflicts with an existing entity, or a precondition failed (406).
        public static let preconditionFailed = Code(raw: "preconditionFailed")
        /// The entity is exclusively used by another connection (405).
        public static let resourceLocked = Code(raw: "resourceLocked")
        /// The channel was closed, by the broker or by this client; open a new one.
        public static let channelClosed = Code(raw: "channelClosed")
        /// The connection was closed by this client.
        public static let connectionClosed = Code(raw: "connectionClosed")
        /// The connection to the broker was lost. Work sent but not confirmed may or may not
        /// have reached the broker; publish it again (consumers must be idempotent).
        public static let connectionLost = Code(raw: "connectionLost")
        /// The broker refused a published message (`basic.nack`).
        public static let nacked = Code(raw: "nacked")
        /// A mandatory message could not be routed to any queue (`basic.return`).
        public static let unroutable = Code(raw: "unroutable")
        /// The delivery came from an earlier connection or channel; it cannot be acknowledged
        /// any more and the broker will deliver it again.
        public static let staleDelivery = Code(raw: "staleDelivery")
        /// The broker cancelled the consumer (its queue was deleted, for example).
        public static let consumerCancelled = Code(raw: "consumerCancelled")
        /// The broker sent something this client does not understand.
        public static let protocolError = Code(raw: "protocolError")
        /// Any other broker-side failure, with the broker's reply code.
        public static let brokerError = Code(raw: "brokerError")
    }

    /// The kind of failure.
    public var code: Code
    /// A readable explanation of what happened and, where it helps, what to do.
    public var message: String
    /// The AMQP reply code when the broker closed a channel or the connection.
    public var replyCode: UInt16?

    /// Creates an error.
    public init(_ code: Code, _ message: String, replyCode: UInt16? = nil) {
        self.code = code
        self.message = message
        self.replyCode = replyCode
    }

    public var description: String { "AMQPError.\(code): \(message)" }

    /// The error for a broker's `channel.close` or `connection.close` with this reply.
    static func fromBroker(replyCode: UInt16, replyText: String, scope: String) -> AMQPError {
        let code: Code
        switch replyCode {
        case 403: code = .accessRefused
        case 404: code = .notFound
        case 405: code = .resourceLocked
        case 406: code = .preconditionFailed
        case 530: code = .notAllowed
        default: code = .brokerError
        }
        return AMQPError(code, "the broker closed the \(scope): \(replyCode) \(replyText)", replyCode: replyCode)
    }
}
