/// The properties of a message (AMQP's `basic` content header).
///
/// Every field is optional; only those set travel on the wire.
/// ```swift
/// var props = BasicProperties(contentType: "application/json", deliveryMode: .persistent)
/// props.messageID = "m-1"
/// props.headers = ["x-attempt": 1]
/// ```
public struct BasicProperties: Sendable, Hashable {
    /// Whether the broker writes the message to disk.
    public enum DeliveryMode: UInt8, Sendable, Hashable {
        case transient = 1
        case persistent = 2
    }

    public var contentType: String?
    public var contentEncoding: String?
    public var headers: FieldTable?
    public var deliveryMode: DeliveryMode?
    /// 0 to 9; only meaningful on priority queues.
    public var priority: UInt8?
    public var correlationID: String?
    public var replyTo: String?
    /// A per-message TTL in milliseconds, as a decimal string ("60000").
    public var expiration: String?
    public var messageID: String?
    /// Seconds since the Unix epoch.
    public var timestamp: UInt64?
    public var type: String?
    /// Must equal the connection's user name if set: the broker checks it.
    public var userID: String?
    public var appID: String?
    public var clusterID: String?

    public init(contentType: String? = nil, contentEncoding: String? = nil, headers: FieldTable? = nil,
                deliveryMode: DeliveryMode? = nil, priority: UInt8? = nil, correlationID: String? = nil,
                replyTo: String? = nil, expiration: String? = nil, messageID: String? = nil,
                timestamp: UInt64? = nil, type: String? = nil, userID: String? = nil,
                appID: String? = nil, clusterID: String? = nil) {
        self.contentType = contentType
        self.contentEncoding = contentEncoding
        self.headers = headers
        self.deliveryMode = deliveryMode
        self.priority = priority
        self.correlationID = correlationID
        self.replyTo = replyTo
        self.expiration = expiration
        self.messageID = messageID
        self.timestamp = timestamp
        self.type = type
        self.userID = userID
        self.appID = appID
        self.clusterID = clusterID
    }

    /// Persistent messages with `application/json`: what Warren publishes.
    public static let persistentJSON = BasicProperties(contentType: "application/json", deliveryMode: .persistent)
}
