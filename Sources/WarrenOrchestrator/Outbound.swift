import AMQP
import WarrenContract
import WarrenKernel
import WarrenStore

/// Where outbox rows meet AMQP: a dead letter made from a delivery, and a row's properties.
/// The kernel makes every other message (``Messages``).
enum Outbound {
    static let correlationIDKey = Messages.correlationIDKey
    static let messageIDKey = Messages.messageIDKey
    static let contentTypeKey = Messages.contentTypeKey
    static let errorHeader = ContractHeader.error
    static let senderHeader = ContractHeader.sender


    /// The original message with the reason it could not be applied, for `<prefix>.dead`.
    static func deadLetter(_ d: AMQPDelivery, reason: String, config: OrchestratorConfiguration) -> OutboxMessage {
        var headers: [String: String] = [errorHeader: reason]
        for (k, v) in d.properties.headers ?? [:] { if let s = v.stringValue, k != errorHeader { headers[k] = s } }
        if let id = d.properties.messageID { headers[messageIDKey] = id }
        if let c = d.properties.correlationID { headers[correlationIDKey] = c }
        if let t = d.properties.contentType { headers[contentTypeKey] = t }
        // The sender's user_id cannot travel as the property (the broker takes only the
        // orchestrator's own there): it is kept for the operator in a header.
        if let user = d.properties.userID, !user.isEmpty { headers[senderHeader] = user }
        headers[ContractHeader.exchange] = d.exchange
        headers[ContractHeader.deadOn] = "\(Orchestrator.nowMillis())"
        return OutboxMessage(exchange: config.deadLetterExchange, routingKey: d.routingKey,
                             kind: d.properties.type ?? d.routingKey, headers: headers, body: d.body)
    }

    /// The AMQP properties of an outbox row, sent as `userID` (the orchestrator's broker user,
    /// which the broker checks against the connection's: workers use it to tell real execute
    /// messages from forged ones).
    static func properties(of m: OutboxMessage, userID: String? = nil) -> BasicProperties {
        var headers: FieldTable = [:]
        for (k, v) in m.headers where !k.hasPrefix("amqp.") { headers[k] = .string(v) }
        return BasicProperties(
            contentType: m.headers[contentTypeKey] ?? "application/json", headers: headers.isEmpty ? nil : headers,
            deliveryMode: .persistent, correlationID: m.headers[correlationIDKey],
            messageID: m.headers[messageIDKey] ?? "warren-\(m.sequence)", type: m.kind, userID: userID)
    }
}
