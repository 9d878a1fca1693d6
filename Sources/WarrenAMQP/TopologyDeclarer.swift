import AMQP
import Logging
import WarrenContract

/// Declares Warren's topology on a broker, as the orchestrator and the workers both do: a queue
/// someone declared first with other arguments (another type, a length limit) is used as it is,
/// with a warning that says what differs and how to make them agree, instead of a channel error.
public enum TopologyDeclarer {
    /// Declares `queue` and its bindings. On an inequivalent declaration (which closes the
    /// channel) it checks on a new channel that the queue exists, warns, and binds it; returns the
    /// channel to go on with.
    public static func declare(_ queue: Topology.Queue, on channel: AMQPChannel, connection: AMQPConnection, topology: Topology,
                               logger: Logger) async throws -> AMQPChannel {
        var channel = channel
        do {
            try await channel.queueDeclare(queue.name, durable: true, arguments: fieldTable(queue.arguments))
        } catch let e as AMQPError where e.code == .preconditionFailed {
            channel = try await connection.openChannel()
            try await channel.queueDeclare(queue.name, passive: true)
            logger.warning("\(topology.explainMismatch(queue: queue.name, brokerMessage: e.message))")
        }
        for b in queue.bindings { try await channel.queueBind(queue.name, exchange: b.exchange, routingKey: b.routingKey) }
        return channel
    }

    /// What of `exchanges` and `queues` the broker lacks (checked passively, each on a channel of
    /// its own, since a failed check closes it), named for an operator.
    public static func missing(_ exchanges: [Topology.Exchange], _ queues: [Topology.Queue], connection: AMQPConnection) async throws -> [String] {
        var missing: [String] = []
        for e in exchanges {
            let ch = try await connection.openChannel()
            do {
                try await ch.exchangeDeclare(e.name, type: e.type, durable: true, passive: true)
                try? await ch.close()
            } catch let error as AMQPError where error.code == .notFound {
                missing.append("exchange '\(e.name)'")
            }
        }
        for q in queues {
            let ch = try await connection.openChannel()
            do {
                try await ch.queueDeclare(q.name, passive: true)
                try? await ch.close()
            } catch let error as AMQPError where error.code == .notFound {
                missing.append("queue '\(q.name)'")
            }
        }
        return missing
    }

    /// A topology's arguments as an AMQP field table.
    public static func fieldTable(_ arguments: [String: Topology.Argument]) -> FieldTable {
        arguments.mapValues {
            switch $0 {
            case .string(let s): .string(s)
            case .int(let n): .int64(n)
            }
        }
    }
}
