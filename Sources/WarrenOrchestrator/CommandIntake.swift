import AMQP
import Logging
import Synchronization
import WarrenContract
import WarrenKernel
import WarrenStore

/// How the orchestrator takes commands off its queue so that **every input fails alone**.
///
/// Deliveries are applied a batch per transaction (one commit, one `multiple` ack). When that
/// transaction fails for anything but the storage (a database error, an encoding error, a bug), the
/// batch is applied again one command per transaction: the good ones commit, and the one that
/// fails goes to `<prefix>.dead` with its reason in `x-warren-error` (and an `error` reply when it
/// named `reply_to`). A body over the limit is refused from its content header, never buffered.
///
/// A *redelivered* command (the orchestrator stopped before acking it, perhaps because of it) is
/// applied alone, after counting the attempt in the store: one that has already been tried
/// ``OrchestratorConfiguration/maximumAttempts`` times is dead-lettered instead of tried again, so
/// no message can stop the orchestrator in a loop.
///
/// A storage fault (a full disk, an I/O error, a read-only file) is no command's fault: the
/// deliveries not yet applied go back to the queue, and the caller stops consuming until the store
/// takes writes again (``StorageFault``).
final class CommandIntake: Sendable {
    let config: OrchestratorConfiguration
    let kernel: Kernel
    let relay: OutboxRelay
    let logger: Logger
    /// Commands given back because of a storage fault: their redelivery is not an attempt that
    /// stopped the orchestrator, so it is not counted.
    private let givenBack = Mutex(Set<String>())

    init(config: OrchestratorConfiguration, relay: OutboxRelay, logger: Logger) {
        self.config = config
        self.kernel = Kernel(config.kernel)
        self.relay = relay
        self.logger = logger
    }

    /// The storage refused a write; nothing of the failed transaction was applied.
    struct StorageFault: Error, CustomStringConvertible {
        let error: StoreError
        var description: String { error.message }
    }

    /// One delivery, decoded (or why it could not be), and its attempt key when redelivered.
    struct Work: Sendable {
        let incoming: Incoming
        let message: Result<Command, ContractError>
        let attemptKey: String?
    }

    /// The delivery fields a command's application needs, copied so the write closure can be `Sendable`.
    struct Incoming: Sendable {
        let delivery: AMQPDelivery
        /// Who sent it: where to answer (only a reply queue: a command naming any other queue is
        /// refused before it is applied, so no caller can make the orchestrator publish into a
        /// queue of its choosing) and its broker-validated `user_id`.
        let caller: Caller
        /// Whether its `reply_to` names a reply queue (or it has none).
        let replyToIsAllowed: Bool

        init(delivery: AMQPDelivery, config: OrchestratorConfiguration) {
            self.delivery = delivery
            let r = delivery.properties.replyTo ?? ""
            replyToIsAllowed = r.isEmpty || config.isReplyQueue(r)
            caller = Caller(replyTo: replyToIsAllowed && !r.isEmpty ? r : nil, correlationID: delivery.properties.correlationID,
                            user: delivery.properties.userID.flatMap { $0.isEmpty ? nil : $0 })
        }
    }

    /// Applies a batch of deliveries and acknowledges each; throws ``StorageFault`` after giving
    /// back (requeueing) what it did not apply.
    func handle(_ batch: [AMQPDelivery]) async throws {
        let now = Orchestrator.nowMillis()
        var segment: [Work] = []
        var segmentBytes = 0
        do {
            for d in batch {
                if segmentBytes + d.body.count > config.maximumBatchBytes {
                    // One transaction holds at most this many bytes of commands.
                    try await applyTogether(segment, now: now)
                    segment.removeAll()
                    segmentBytes = 0
                }
                if d.bodyDiscarded {
                    try await refuseOversized(d)
                } else if d.redelivered {
                    try await applyTogether(segment, now: now)
                    segment.removeAll()
                    segmentBytes = 0
                    try await applyRedelivered(d, now: now)
                } else {
                    segment.append(decode(d, now: now, attemptKey: nil))
                    segmentBytes += d.body.count
                }
            }
            try await applyTogether(segment, now: now)
        } catch let fault as StorageFault {
            // What was applied is acked; the rest goes back, to come again once the store is well.
            givenBack.withLock { set in for d in batch { set.insert(Self.attemptKey(d)) } }
            do { try batch.last?.nack(multiple: true, requeue: true) } catch {}
            throw fault
        }
    }

    private func decode(_ d: AMQPDelivery, now: Int64, attemptKey: String?) -> Work {
        let message: Result<Command, ContractError>
        let incoming = Incoming(delivery: d, config: config)
        do throws(ContractError) {
            guard incoming.replyToIsAllowed else {
                throw ContractError(reason: "reply_to '\(String(d.properties.replyTo?.prefix(80) ?? ""))' is not a reply queue: replies go only to "
                    + "queues named \(config.prefix).reply.…, to amq.rabbitmq.reply-to or to a server-named amq.gen-… queue")
            }
            let headers = d.properties.headers ?? [:]
            // The header names a promise on an event from the team's own exchanges, or on
            // promise.resolve|reject; never on another of Warren's kinds (a worker that may send
            // task.* must not settle promises by adding the header to a report).
            let mayNamePromise = d.exchange != config.exchange || d.routingKey == MessageKind.resolvePromise.rawValue
                || d.routingKey == MessageKind.rejectPromise.rawValue
            if mayNamePromise, let id = headers[ContractHeader.promiseID]?.stringValue {
                // An event of the team's own (or a resolve) naming its promise in a header: its body is the value.
                message = .success(try Command.decodeEvent(promiseID: id, settle: headers[ContractHeader.settle]?.stringValue,
                                                                  routingKey: d.routingKey, contentType: d.properties.contentType, body: d.body,
                                                                  maximumBodyBytes: config.maximumBodyBytes))
            } else if d.exchange != config.exchange && !d.exchange.isEmpty && MessageKind(command: d.routingKey) == nil {
                throw ContractError(reason: "an event routed to Warren from the exchange '\(d.exchange.prefix(100))' must name the promise it "
                    + "settles in the header \(ContractHeader.promiseID)")
            } else {
                message = .success(try Command.decode(routingKey: d.routingKey, type: d.properties.type, body: d.body, now: now,
                                                             defaultTimeout: config.defaultTimeout, maximumBodyBytes: config.maximumBodyBytes))
            }
        } catch {
            message = .failure(error)
        }
        return Work(incoming: incoming, message: message, attemptKey: attemptKey)
    }

    /// Applies `work` in one transaction and acks it; when that fails for a command's sake,
    /// applies each alone and dead-letters the ones that fail.
    private func applyTogether(_ work: [Work], now: Int64) async throws {
        guard let last = work.last else { return }
        let (config, kernel, logger) = (config, kernel, logger)
        do {
            try await write { tx in
                for w in work { try Self.apply(w, kernel: kernel, tx: tx, now: now, config: config, logger: logger) }
                let keys = work.compactMap(\.attemptKey)
                if !keys.isEmpty { try tx.forgetAttempts(messages: keys) }
            }
        } catch let fault as StorageFault {
            throw fault
        } catch {
            guard work.count > 1 else {
                try await deadLetter(last, reason: "applying it failed: \(error)")
                return
            }
            logger.warning("a batch failed; applying its commands one by one", metadata: ["commands": "\(work.count)", "error": "\(error)"])
            for w in work { try await applyTogether([w], now: now) }
            return
        }
        acknowledge(last.incoming.delivery, multiple: true)
    }

    /// A redelivered command: counted, then applied alone, or dead-lettered once it has been
    /// tried too often.
    private func applyRedelivered(_ d: AMQPDelivery, now: Int64) async throws {
        let key = Self.attemptKey(d)
        let attempts = try await countAttempt(key, now: now)
        let work = decode(d, now: now, attemptKey: key)
        if attempts > config.maximumAttempts {
            try await deadLetter(work, reason: "it was delivered \(attempts) times and the orchestrator stopped before "
                + "finishing it each time; it is set aside so that it cannot stop the orchestrator again")
        } else {
            try await applyTogether([work], now: now)
        }
    }

    /// This delivery's attempt number: counted in the store, unless the command was given back
    /// for the storage's sake (no attempt of its own).
    private func countAttempt(_ key: String, now: Int64) async throws -> Int {
        if givenBack.withLock({ $0.remove(key) != nil }) { return 0 }
        do {
            return try await write { tx in try tx.countAttempt(message: key, now: now) }
        } catch let fault as StorageFault {
            throw fault
        } catch {
            // Counting failed for another reason: apply it anyway (alone, it fails alone).
            logger.warning("counting a redelivery failed", metadata: ["error": "\(error)"])
            return 1
        }
    }

    /// Sends a command to `<prefix>.dead` with `reason` (and an `error` reply to its caller) and acks it.
    private func deadLetter(_ w: Work, reason: String) async throws {
        let config = self.config
        logger.warning("command dead-lettered", metadata: ["routingKey": "\(w.incoming.delivery.routingKey)", "reason": "\(reason)"])
        do {
            try await write { tx in
                try tx.enqueue(Outbound.deadLetter(w.incoming.delivery, reason: reason, config: config))
                if let replyTo = w.incoming.caller.replyTo {
                    try tx.enqueue(Messages(topology: config.topology).reply(to: replyTo, correlationID: w.incoming.caller.correlationID,
                                                                             promise: nil, error: ("invalidCommand", reason)))
                }
                if let key = w.attemptKey { try tx.forgetAttempts(messages: [key]) }
            }
        } catch let fault as StorageFault {
            throw fault
        } catch {
            // Even the dead letter could not be written: the broker dead-letters it, body intact.
            logger.error("writing a dead letter failed; the broker dead-letters the command", metadata: ["error": "\(error)"])
            do { try w.incoming.delivery.reject(requeue: false) } catch {}
            return
        }
        acknowledge(w.incoming.delivery, multiple: false)
    }

    /// A body over the limit, judged from its content header: the broker dead-letters it (the
    /// orchestrator's queue has a dead-letter exchange); its caller gets an `error` reply.
    private func refuseOversized(_ d: AMQPDelivery) async throws {
        let reason = "the message is \(d.bodySize) bytes; the limit is \(config.maximumBodyBytes)"
        logger.warning("command refused from its header", metadata: ["routingKey": "\(d.routingKey)", "reason": "\(reason)"])
        if let replyTo = d.properties.replyTo, !replyTo.isEmpty, config.isReplyQueue(replyTo) {
            let reply = Messages(topology: config.topology).reply(to: replyTo, correlationID: d.properties.correlationID, promise: nil,
                                                                  error: ("payloadTooLarge", reason))
            do {
                _ = try await write { tx in try tx.enqueue(reply) }
            } catch let fault as StorageFault {
                throw fault
            } catch {
                logger.warning("answering a refused command failed", metadata: ["error": "\(error)"])
            }
        }
        do { try d.reject(requeue: false) } catch {}
    }

    private func acknowledge(_ d: AMQPDelivery, multiple: Bool) {
        do {
            try d.ack(multiple: multiple)
        } catch let e as AMQPError where e.code == .staleDelivery {
            logger.info("deliveries came from a lost connection; the broker redelivers them, and they apply idempotently")
        } catch {
            logger.info("an ack failed; the broker redelivers", metadata: ["error": "\(error)"])
        }
    }

    /// Runs a write through the relay; storage faults become ``StorageFault``.
    private func write<T: Sendable>(_ body: @escaping @Sendable (any StoreTransaction) throws -> T) async throws -> T {
        do {
            return try await relay.write(body)
        } catch let e as StoreError where e.code == .storageUnavailable {
            throw StorageFault(error: e)
        }
    }

    /// What identifies a command across deliveries: its `message_id`, else a digest of its
    /// routing key and body.
    static func attemptKey(_ d: AMQPDelivery) -> String {
        if let id = d.properties.messageID, !id.isEmpty, id.utf8.count <= 200 { return "id:" + id }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a, 64 bits
        for byte in d.routingKey.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        for byte in d.body { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return "fnv:\(d.body.count):" + String(hash, radix: 16)
    }

    /// Applies one decoded command through the kernel and writes what it causes (or dead-letters
    /// an undecodable one, answering its caller).
    static func apply(_ w: Work, kernel: Kernel, tx: any StoreTransaction, now: Int64, config: OrchestratorConfiguration, logger: Logger) throws {
        let effects: Effects
        switch w.message {
        case .failure(let e):
            var refused = Effects()
            if let replyTo = w.incoming.caller.replyTo {
                refused.messages.append(Messages(topology: config.topology).reply(to: replyTo, correlationID: w.incoming.caller.correlationID,
                                                                                  promise: nil, error: ("invalidCommand", e.reason)))
            }
            refused.deadLetter = e.reason
            effects = refused
        case .success(let command):
            effects = try kernel.apply(command, from: w.incoming.caller, tx: tx, now: now)
        }
        if let reason = effects.deadLetter { try tx.enqueue(Outbound.deadLetter(w.incoming.delivery, reason: reason, config: config)) }
        if let reason = effects.ignored { logger.debug("command refused", metadata: ["error": "\(reason)"]) }
        try tx.enqueue(effects)
    }
}
