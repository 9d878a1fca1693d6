import AMQP
import Foundation
import WarrenStore

/// The messages the orchestrator sends, as outbox rows. AMQP properties other than headers travel
/// in the row's headers under `amqp.` keys; the relay turns them back into properties.
enum Outbound {
    static let correlationIDKey = "amqp.correlation_id"
    static let messageIDKey = "amqp.message_id"
    static let contentTypeKey = "amqp.content_type"
    static let errorHeader = "x-warren-error"
    static let senderHeader = "x-warren-sender"


    /// `promise.settled` on `settled.<id>`: the promise record, exactly as the HTTP API returns it.
    static func settledEvent(_ p: PromiseRecord, config: OrchestratorConfiguration) -> OutboxMessage {
        OutboxMessage(exchange: config.exchange, routingKey: "settled." + p.id, kind: "promise.settled",
                      body: Array(p.jsonText.utf8))
    }

    /// `task.execute` on `execute.<group>`: run (or replay) this task version, with its root
    /// promise and every promise below it (what a replay needs), and the failures of the step it
    /// retries, if any. Reporting for this version claims it.
    static func execute(_ task: TaskRecord, promise: PromiseRecord, children: [PromiseRecord],
                        config: OrchestratorConfiguration) -> OutboxMessage {
        OutboxMessage(exchange: config.exchange, routingKey: "execute." + task.group, kind: "task.execute",
                      body: taskMessage(task, promise: promise, children: children))
    }

    /// The body of execute messages and claim replies: the task (with the failures of the step
    /// it retries), its promise, and the promises below it.
    static func taskMessage(_ t: TaskRecord, promise: PromiseRecord, children: [PromiseRecord]) -> [UInt8] {
        var out = "{\"children\":["
        for (i, c) in children.enumerated() {
            if i > 0 { out += "," }
            c.writeJSON(into: &out)
        }
        out += "],\"promise\":"
        promise.writeJSON(into: &out)
        out += ",\"task\":{\"group\":"
        JSONValue.quote(t.group, into: &out)
        out += ",\"id\":"
        JSONValue.quote(t.id, into: &out)
        if let r = t.retry {
            out += ",\"retry\":{\"failures\":\(r.failures),\"step\":"
            JSONValue.quote(r.step, into: &out)
            out += "}"
        }
        out += ",\"version\":\(t.version)}}"
        return Array(out.utf8)
    }

    /// The settled promise, to a subscriber's address, with its correlation id.
    static func notify(_ s: Subscriber, of p: PromiseRecord) -> OutboxMessage {
        OutboxMessage(exchange: "", routingKey: s.address, kind: "promise.settled", headers: [correlationIDKey: s.correlation],
                      body: Array(p.jsonText.utf8))
    }

    /// The answer to `task.claim`: the task's version to report with, its promise, and the
    /// promises below it (settled or pending) for replay.
    static func claimed(_ task: TaskRecord, promise: PromiseRecord, children: [PromiseRecord], replyTo: String,
                        correlationID: String?) -> OutboxMessage {
        var headers: [String: String] = [:]
        if let correlationID { headers[correlationIDKey] = correlationID }
        return OutboxMessage(exchange: "", routingKey: replyTo, kind: "reply", headers: headers,
                             body: taskMessage(task, promise: promise, children: children))
    }

    /// The answer to a command that named `reply_to`: the promise, or an error.
    static func reply(to replyTo: String, correlationID: String?, promise: PromiseRecord?, created: Bool? = nil,
                      error: (code: String, message: String)? = nil) -> OutboxMessage {
        var out = "{"
        if let created { out += "\"created\":\(created)," }
        if let error {
            out += "\"error\":{\"code\":"
            JSONValue.quote(error.code, into: &out)
            out += ",\"message\":"
            JSONValue.quote(error.message, into: &out)
            out += "},"
        }
        out += "\"promise\":"
        if let promise { promise.writeJSON(into: &out) } else { out += "null" }
        out += "}"
        return OutboxMessage(exchange: "", routingKey: replyTo, kind: error == nil ? "reply" : "error",
                             headers: correlationID.map { [correlationIDKey: $0] } ?? [:], body: Array(out.utf8))
    }

    /// The answer to `promise.search`: a page of promises and the cursor of the next.
    static func searchReply(to replyTo: String, correlationID: String?, page: PromisePage) -> OutboxMessage {
        var out = "{"
        if let cursor = page.cursor { out += "\"cursor\":"; JSONValue.quote(cursor, into: &out); out += "," }
        out += "\"promises\":["
        for (i, p) in page.promises.enumerated() {
            if i > 0 { out += "," }
            p.writeJSON(into: &out)
        }
        out += "]}"
        return OutboxMessage(exchange: "", routingKey: replyTo, kind: "reply",
                             headers: correlationID.map { [correlationIDKey: $0] } ?? [:], body: Array(out.utf8))
    }

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
