import WarrenContract
import WarrenStore

/// The messages the orchestrator sends, as outbox rows. AMQP properties other than headers
/// travel in the row's headers under `amqp.` keys; the relay turns them back into properties.
/// Bodies are written by hand (``PromiseRecord/writeJSON(into:)``): every execute message goes
/// through here.
public struct Messages: Sendable {
    public static let correlationIDKey = "amqp.correlation_id"
    public static let messageIDKey = "amqp.message_id"
    public static let contentTypeKey = "amqp.content_type"

    let topology: Topology

    public init(topology: Topology) {
        self.topology = topology
    }

    /// `promise.settled` on `settled.<id>`: the promise record, exactly as the HTTP API returns it.
    public func settledEvent(_ p: PromiseRecord) -> OutboxMessage {
        OutboxMessage(exchange: topology.exchange, routingKey: Topology.settledRoutingKey(p.id), kind: MessageKind.settled.rawValue,
                      body: Array(p.jsonText.utf8))
    }

    /// `task.execute` on `execute.<group>`: run (or replay) this task version, with its root
    /// promise and every promise below it (what a replay needs), and the failures of the step it
    /// retries, if any. Reporting for this version claims it.
    ///
    /// A workflow whose first run recorded a code version (``CodeVersion``) goes to
    /// `execute.<group>,<function>,v<n>`: only workers that serve that version consume it.
    public func execute(_ task: TaskRecord, promise: PromiseRecord, children: [PromiseRecord]) -> OutboxMessage {
        OutboxMessage(exchange: topology.exchange, routingKey: Topology.executeRoutingKey(task.group, code: CodeVersion.recorded(by: task.id, in: children)),
                      kind: MessageKind.execute.rawValue, body: Self.taskMessage(task, promise: promise, children: children))
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
    public func notify(_ s: Subscriber, of p: PromiseRecord) -> OutboxMessage {
        OutboxMessage(exchange: "", routingKey: s.address, kind: MessageKind.settled.rawValue, headers: [Self.correlationIDKey: s.correlation],
                      body: Array(p.jsonText.utf8))
    }

    /// The answer to `task.claim`: the task's version to report with, its promise, and the
    /// promises below it (settled or pending) for replay.
    public func claimed(_ task: TaskRecord, promise: PromiseRecord, children: [PromiseRecord], replyTo: String,
                        correlationID: String?) -> OutboxMessage {
        OutboxMessage(exchange: "", routingKey: replyTo, kind: MessageKind.reply.rawValue, headers: Self.correlated(correlationID),
                      body: Self.taskMessage(task, promise: promise, children: children))
    }

    /// The answer to a command that named `reply_to`: the promise, or an error.
    public func reply(to replyTo: String, correlationID: String?, promise: PromiseRecord?, created: Bool? = nil,
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
        return OutboxMessage(exchange: "", routingKey: replyTo, kind: (error == nil ? MessageKind.reply : .error).rawValue,
                             headers: Self.correlated(correlationID), body: Array(out.utf8))
    }

    /// An answer whose body is already written (a schedule's).
    public func reply(to replyTo: String, correlationID: String?, body: String) -> OutboxMessage {
        OutboxMessage(exchange: "", routingKey: replyTo, kind: MessageKind.reply.rawValue, headers: Self.correlated(correlationID), body: Array(body.utf8))
    }

    /// The answer to `promise.search`: a page of promises and the cursor of the next.
    public func searchReply(to replyTo: String, correlationID: String?, page: PromisePage) -> OutboxMessage {
        var out = "{"
        if let cursor = page.cursor { out += "\"cursor\":"; JSONValue.quote(cursor, into: &out); out += "," }
        out += "\"promises\":["
        for (i, p) in page.promises.enumerated() {
            if i > 0 { out += "," }
            p.writeJSON(into: &out)
        }
        out += "]}"
        return OutboxMessage(exchange: "", routingKey: replyTo, kind: MessageKind.reply.rawValue, headers: Self.correlated(correlationID),
                             body: Array(out.utf8))
    }

    private static func correlated(_ id: String?) -> [String: String] {
        id.map { [correlationIDKey: $0] } ?? [:]
    }
}
