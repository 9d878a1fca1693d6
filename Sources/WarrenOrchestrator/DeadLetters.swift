import AMQP
import Crypto
import Foundation
import Logging
import Synchronization
import WarrenContract

/// `<prefix>.dead` for an operator (`warren dead list|replay|purge`, `GET /dead`, `POST
/// /dead/replay|purge`): what landed there, why, and, after a fix, sending it again to where it
/// was going, or dropping it.
///
/// The queue stays the source of truth (nothing is copied elsewhere). Each call opens its own
/// connection, consumes up to `limit` messages from the head of the queue without acknowledging
/// them, acts on those the selector picks (a replay publishes each with a confirm before it acks
/// it; a purge acks it), and closes its channel, which returns every other one to the queue in its
/// place. One call runs at a time.
struct DeadLetters: Sendable {
    let config: OrchestratorConfiguration
    let logger: Logger

    /// Headers Warren or the broker added when the message was dead-lettered: dropped on replay.
    static let addedHeaders: Set<String> = [
        ContractHeader.error, ContractHeader.sender, ContractHeader.exchange, ContractHeader.deadOn,
        "x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
        "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason",
    ]

    /// The longest wait for the messages the queue said it holds (another consumer may take some).
    static let collectFor: Duration = .seconds(3)
    static let maximumLimit = 10_000

    /// A dead letter as the API lists it.
    struct Letter: Encodable, Sendable {
        /// The first 12 hex digits of a digest of its routing key, reason and body: stable across
        /// listings, the same for identical messages.
        var id: String
        var exchange: String
        var routingKey: String
        var kind: String?
        var reason: String
        var sender: String?
        /// When it was dead-lettered (epoch milliseconds), when known.
        var deadOn: Int64?
        var bytes: Int
        /// The body's first 200 characters (as UTF-8, bytes that are not shown as �).
        var preview: String
    }

    /// What an operator picks: `all`, `id:<hex>` (or the hex alone), `key:<glob>` (`*` matches any
    /// run of characters), `reason:<text>` (contained in the reason).
    enum Selector: Sendable, Equatable {
        case all
        case id(String)
        case routingKey(String)
        case reason(String)

        init(_ text: String) throws(HTTPProblem) {
            let t = text.trimmingCharacters(in: .whitespaces)
            if t == "all" { self = .all; return }
            if let colon = t.firstIndex(of: ":") {
                let (kind, value) = (t[..<colon].lowercased(), String(t[t.index(after: colon)...]))
                guard !value.isEmpty else { throw HTTPProblem(.badRequest, "invalidArgument", "the selector '\(t)' has nothing after its ':'") }
                switch kind {
                case "id": self = .id(value.lowercased()); return
                case "key": self = .routingKey(value); return
                case "reason": self = .reason(value); return
                default: break
                }
            } else if t.count >= 4, t.allSatisfy(\.isHexDigit) {
                self = .id(t.lowercased())
                return
            }
            throw HTTPProblem(.badRequest, "invalidArgument",
                              "the selector '\(t.prefix(60))' must be all, id:<hex> (as `warren dead list` shows), key:<routing key, * for any run> or reason:<text>")
        }

        func matches(_ l: Letter) -> Bool {
            switch self {
            case .all: true
            case .id(let prefix): l.id.hasPrefix(prefix)
            case .routingKey(let glob): Self.glob(glob, l.routingKey)
            case .reason(let text): l.reason.localizedCaseInsensitiveContains(text)
            }
        }

        static func glob(_ pattern: String, _ s: String) -> Bool {
            let parts = pattern.split(separator: "*", omittingEmptySubsequences: false).map(String.init)
            guard parts.count > 1 else { return pattern == s }
            guard s.hasPrefix(parts[0]) else { return false }
            var rest = Substring(s.dropFirst(parts[0].count))
            for part in parts.dropFirst().dropLast() where !part.isEmpty {
                guard let r = rest.range(of: part) else { return false }
                rest = rest[r.upperBound...]
            }
            return rest.hasSuffix(parts.last!)
        }
    }

    struct Outcome: Encodable, Sendable {
        /// How many the queue held when the call began, and how many of them it looked at.
        var total: Int
        var examined: Int
        var letters: [Letter]
        var replayed: Int?
        var purged: Int?
    }

    enum Action { case list, replay, purge }

    private static let serial = AsyncSerial()

    func perform(_ action: Action, selector: Selector = .all, limit: Int) async throws -> Outcome {
        try await Self.serial.run { try await run(action, selector: selector, limit: limit) }
    }

    private func run(_ action: Action, selector: Selector, limit: Int) async throws -> Outcome {
        let connection = try await AMQPConnection.connect(url: config.amqpURL, name: "warren-dead-letters", logger: logger)
        do {
            let outcome = try await run(action, selector: selector, limit: limit, on: connection)
            await connection.close()
            return outcome
        } catch {
            await connection.close()
            throw error
        }
    }

    private func run(_ action: Action, selector: Selector, limit: Int, on connection: AMQPConnection) async throws -> Outcome {
        let channel = try await connection.openChannel()
        let queue = config.topology.deadQueueName
        let total = Int(try await channel.queueDeclare(queue, passive: true).messageCount)
        var outcome = Outcome(total: total, examined: 0, letters: [])
        let wanted = min(total, limit)
        guard wanted > 0 else { return outcome }
        if action == .replay { try await channel.confirmSelect() }
        try await channel.basicQos(prefetchCount: UInt16(min(wanted, Int(UInt16.max))))
        let consumer = try await channel.basicConsume(queue: queue)
        // Another consumer of the queue may take some of them: stop waiting after a while.
        let stop = Task {
            try? await Task.sleep(for: Self.collectFor)
            try? await channel.basicCancel(consumer.tag)
        }
        var held: [AMQPDelivery] = []
        var iterator = consumer.makeAsyncIterator()
        while held.count < wanted {
            let batch = try await iterator.next(upTo: wanted - held.count)
            if batch.isEmpty { break }
            held += batch
        }
        stop.cancel()
        outcome.examined = held.count
        var done = 0
        for d in held {
            let letter = Self.letter(d, prefix: config.topology.exchange)
            guard selector.matches(letter) else { continue }
            outcome.letters.append(letter)
            switch action {
            case .list:
                continue
            case .replay:
                try await channel.basicPublish(d.body, exchange: letter.exchange, routingKey: d.routingKey, properties: Self.replayed(d.properties)).wait()
                try d.ack()
                done += 1
            case .purge:
                try d.ack()
                done += 1
            }
        }
        if action == .replay { outcome.replayed = done }
        if action == .purge { outcome.purged = done }
        if done > 0 { logger.notice("dead letters \(action == .replay ? "replayed" : "purged")", metadata: ["count": "\(done)"]) }
        // What was not acknowledged goes back to the queue, in its place.
        try? await channel.close()
        return outcome
    }

    static func letter(_ d: AMQPDelivery, prefix: String) -> Letter {
        let h = d.properties.headers ?? [:]
        var reason = h[ContractHeader.error]?.stringValue
        var exchange = h[ContractHeader.exchange]?.stringValue
        var deadOn = h[ContractHeader.deadOn]?.stringValue.flatMap { Int64($0) }
        // Dead-lettered by the broker (a queue's x-dead-letter-exchange): its x-death entry says
        // from where, why and when.
        if case .array(let deaths)? = h["x-death"], case .table(let first)? = deaths.first {
            let why = first["reason"]?.stringValue ?? "dead-lettered"
            let from = first["queue"]?.stringValue.map { " from \($0)" } ?? ""
            reason = reason ?? "the broker dead-lettered it\(from): \(why)"
            exchange = exchange ?? first["exchange"]?.stringValue
            if deadOn == nil, case .timestamp(let seconds)? = first["time"] { deadOn = Int64(seconds) * 1000 }
        }
        let reasonText = reason ?? "no reason recorded"
        var digest = SHA256()
        digest.update(data: Array(d.routingKey.utf8) + [0] + Array(reasonText.utf8) + [0])
        digest.update(data: d.body)
        let id = digest.finalize().prefix(6).map { String(format: "%02x", $0) }.joined()
        return Letter(id: id, exchange: exchange ?? prefix, routingKey: d.routingKey, kind: d.properties.type, reason: reasonText,
                      sender: h[ContractHeader.sender]?.stringValue, deadOn: deadOn, bytes: d.body.count,
                      preview: String(String(decoding: d.body.prefix(800), as: UTF8.self).prefix(200)))
    }

    /// The properties a replay sends: the original ones, without what dead-lettering added, and
    /// without `reply_to` and `user_id` (nobody waits for the answer; the broker sets no user).
    static func replayed(_ p: BasicProperties) -> BasicProperties {
        var p = p
        p.headers = p.headers?.filter { !addedHeaders.contains($0.key) }
        if p.headers?.isEmpty == true { p.headers = nil }
        p.replyTo = nil
        p.userID = nil
        p.deliveryMode = .persistent
        return p
    }
}

/// Runs one body at a time, in arrival order.
final class AsyncSerial: Sendable {
    private let tail = Mutex<Task<Void, Never>?>(nil)

    func run<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let (previous, mine): (Task<Void, Never>?, Task<Result<T, any Error>, Never>) = tail.withLock { tail in
            let previous = tail
            let mine = Task { () -> Result<T, any Error> in
                await previous?.value
                do { return .success(try await body()) } catch { return .failure(error) }
            }
            tail = Task { _ = await mine.value }
            return (previous, mine)
        }
        _ = previous
        return try await mine.value.get()
    }
}
