/// An exchange as declared, to declare again after recovery.
struct ExchangeDeclaration: Sendable {
    var name: String
    var type: String
    var durable: Bool
    var autoDelete: Bool
    var `internal`: Bool
    var arguments: FieldTable
}

/// A queue as declared, to declare again after recovery.
struct QueueDeclaration: Sendable {
    var name: String
    var durable: Bool
    var exclusive: Bool
    var autoDelete: Bool
    var arguments: FieldTable
}

struct QueueBinding: Sendable, Equatable {
    var queue: String
    var exchange: String
    var routingKey: String
    var arguments: FieldTable
}

struct ExchangeBinding: Sendable, Equatable {
    var destination: String
    var source: String
    var routingKey: String
    var arguments: FieldTable
}

/// What this connection declared, in order, so that recovery can declare it again: exclusive
/// and auto-delete queues vanish with the connection, and a broker restarted without its data
/// has nothing. Queues with broker-chosen names are not recorded: their names change.
struct Topology {
    private(set) var exchanges: [ExchangeDeclaration] = []
    private(set) var queues: [QueueDeclaration] = []
    private(set) var bindings: [QueueBinding] = []
    private(set) var exchangeBindings: [ExchangeBinding] = []

    mutating func record(_ b: ExchangeBinding) {
        if !exchangeBindings.contains(b) { exchangeBindings.append(b) }
    }

    mutating func forget(_ b: ExchangeBinding) {
        exchangeBindings.removeAll { $0 == b }
    }

    mutating func record(_ e: ExchangeDeclaration) {
        exchanges.removeAll { $0.name == e.name }
        exchanges.append(e)
    }

    mutating func record(_ q: QueueDeclaration) {
        queues.removeAll { $0.name == q.name }
        queues.append(q)
    }

    mutating func record(_ b: QueueBinding) {
        if !bindings.contains(b) { bindings.append(b) }
    }

    mutating func forget(_ b: QueueBinding) {
        bindings.removeAll { $0 == b }
    }

    mutating func forgetExchange(_ name: String) {
        exchanges.removeAll { $0.name == name }
        bindings.removeAll { $0.exchange == name }
        exchangeBindings.removeAll { $0.source == name || $0.destination == name }
    }

    mutating func forgetQueue(_ name: String) {
        queues.removeAll { $0.name == name }
        bindings.removeAll { $0.queue == name }
    }
}
