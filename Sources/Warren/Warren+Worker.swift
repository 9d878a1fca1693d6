import AMQP
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import WarrenAMQP

extension Warren {
    /// Serves the group's tasks until graceful shutdown: each execute message runs its workflow
    /// from the top, replaying what is recorded, to its next suspension or its end.
    ///
    /// It consumes the group's queue (new workflows, and those of functions without versions) and,
    /// for every version registered with ``register(_:version:_:)``, that version's queue, on one
    /// channel; `concurrency` bounds the deliveries in flight of each queue.
    ///
    /// The worker outlives its channel: when the broker closes it (a `consumer_timeout`, an
    /// operator) or cancels a consumer (a queue deleted), it opens a new one and consumes
    /// again. Runs in flight on the old channel finish; their execute messages come back to some
    /// worker, which takes the task under a new version, so each completes once.
    public func run() async throws {
        let codes = try codeVersions()
        logger.info("worker serving", metadata: ["group": "\(group)", "worker": "\(workerID)",
                                                 "versions": "\(codes.map(\.description).joined(separator: ", "))"])
        let keeper = Task { await self.leases.run(self) }
        defer { keeper.cancel() }
        try await cancelWhenGracefulShutdown {
            try await withThrowingDiscardingTaskGroup { tasks in
                var delay = 100
                while true {
                    do {
                        let channel = try await self.openConsumingChannel(codes)
                        delay = 100
                        if codes.isEmpty {
                            for try await delivery in try await channel.basicConsume(queue: self.groupQueue) {
                                tasks.addTask { await self.execute(delivery) }
                            }
                        } else {
                            for try await delivery in try await self.deliveries(on: channel, from: [nil] + codes) {
                                tasks.addTask { await self.execute(delivery) }
                            }
                        }
                        return  // cancelled: graceful shutdown
                    } catch let e as AMQPError where e.code == .channelClosed || e.code == .consumerCancelled || e.code == .preconditionFailed
                        || e.code == .notFound
                    {
                        self.logger.warning("the worker's channel closed; consuming again on a new one", metadata: ["error": "\(e.message)"])
                        try await Task.sleep(for: .milliseconds(delay))
                        delay = min(delay * 2, 5000)
                    }
                }
            }
        }
    }

    var groupQueue: String { topology.groupQueueName(group) }

    /// The deliveries of the queues of `codes` (`nil`: the group's own queue), consumed on
    /// `channel`, as one sequence; it ends with the first consumer that ends or fails.
    private func deliveries(on channel: AMQPChannel, from codes: [CodeVersion?]) async throws -> AsyncThrowingStream<AMQPDelivery, any Error> {
        var consumers: [AMQPConsumer] = []
        for code in codes { consumers.append(try await channel.basicConsume(queue: topology.groupQueueName(group, code: code))) }
        return AsyncThrowingStream { continuation in
            let pumps = consumers.map { consumer in
                Task {
                    do {
                        for try await d in consumer { continuation.yield(d) }
                        continuation.finish()
                    } catch { continuation.finish(throwing: error) }
                }
            }
            continuation.onTermination = { _ in for p in pumps { p.cancel() } }
        }
    }

    /// A channel for consuming the group's queue and the queues of `codes`: each declared with the
    /// orchestrator's arguments (or, when someone declared it first with others, used as it is,
    /// with a warning saying what differs) and bound; with `declare: .verify` only checked; with
    /// `.none` taken as it is.
    private func openConsumingChannel(_ codes: [CodeVersion]) async throws -> AMQPChannel {
        var channel = try await messenger.connection.openChannel()
        let queues = [topology.groupQueue(group)] + codes.map { topology.groupQueue(group, code: $0) }
        switch declare {
        case .all:
            for queue in queues {
                channel = try await TopologyDeclarer.declare(queue, on: channel, connection: messenger.connection, topology: topology, logger: logger)
            }
        case .verify:
            let missing = try await TopologyDeclarer.missing([], queues, connection: messenger.connection)
            guard missing.isEmpty else {
                throw WarrenError(.configuration, "declare: .verify: the broker has no \(missing.joined(separator: ", ")); create it bound "
                    + "to '\(topology.exchange)' with its execute routing key (warren topology export --group \(group)"
                    + codes.map { " --code \(group),\($0.function),v\($0.version)" }.joined() + "), or declare: .all")
            }
        case .none:
            break
        }
        try await channel.basicQos(prefetchCount: UInt16(min(concurrency, 65535)))
        return channel
    }

    /// Runs one execute message. Acks it once the outcome is reported: a suspension, a retry or
    /// a completion, never holding it across a wait.
    ///
    /// The execute message carries the task's version and everything below its promise, so a
    /// first delivery runs at once and its report is its claim. A redelivered one may have
    /// reached another worker first: it is claimed (the orchestrator raises the version, fencing
    /// the other worker off) and run with what the claim's reply holds.
    ///
    /// A run still going after `leaseAfter` takes a lease on its task (`task.progress` with
    /// `lease`), acks the delivery, and renews the lease until it reports: the broker's
    /// `consumer_timeout` never sees a long step, and if this worker dies the orchestrator hands
    /// the task out again when the lease lapses.
    func execute(_ delivery: AMQPDelivery) async {
        let held = DeliveryHold(delivery)
        if let trusted = orchestratorUser, delivery.properties.userID != trusted {
            // Not from the orchestrator: anyone who may publish on `execute.<group>` could
            // otherwise make this worker run any function with any history. The broker
            // dead-letters it (the group's queue has Warren's dead-letter exchange).
            logger.error("execute message refused: it does not come from the orchestrator's broker user", metadata: [
                "user_id": "\(delivery.properties.userID ?? "(none)")", "expected": "\(trusted)",
                "fix": "set WARREN_ORCHESTRATOR_USER to the user warren serve logs in as (or '*' to run anyone's)",
            ])
            held.settle { try $0.reject(requeue: false) }
            return
        }
        let publishing = messenger.channel
        do {
            var message = try JSONDecoder().decode(Wire.TaskMessage.self, from: Data(delivery.body))
            if delivery.redelivered {
                message = try JSONDecoder().decode(Wire.TaskMessage.self, from: Data(try await messenger.request(.claimTask, Wire.object([
                    ("id", Wire.quote(message.task.id)), ("version", "\(message.task.version)"), ("worker", Wire.quote(workerID)),
                    ("redelivered", delivery.redelivered ? "true" : "false"),
                ])).body))
            }
            let watched = leases.begin(taskID: message.task.id, version: message.task.version, held: held)
            defer { leases.end(watched) }
            try await runner.run(message)
        } catch let e as WarrenError where e.code == .unavailable {
            // The orchestrator did not answer: give the message back; it comes again, redelivered,
            // and whoever gets it takes a new version.
            logger.warning("execute message requeued", metadata: ["error": "\(e.message)"])
            held.settle { try $0.reject(requeue: true) }
            return
        } catch let e as AMQPError {
            // The report may not have reached the broker: run it again from the top (on a new
            // channel if the broker nacked it or closed the channel).
            if e.code == .nacked || e.code == .channelClosed { await messenger.renewChannel(ifStill: publishing) }
            logger.warning("execute message requeued", metadata: ["error": "\(e.message)"])
            held.settle { try $0.reject(requeue: true) }
            return
        } catch let e as WarrenError where e.code == .refused {
            logger.debug("execute message no longer counts", metadata: ["error": "\(e.message)"])
        } catch {
            // Not decodable, or the claim reply was not a claim (stale version): nothing to run.
            logger.debug("execute message dropped", metadata: ["error": "\(error)"])
        }
        held.settle { try $0.ack() }
    }
}

/// The runs of a worker that may outlast `leaseAfter`, watched by one loop (not a task per run:
/// a run costs an insert and a removal). A run still going after `leaseAfter` takes a lease on
/// its task (`task.progress` with `lease`) and lets go of its delivery once that is confirmed;
/// the loop renews the lease every third of its length until the run reports.
final class LeaseKeeper: Sendable {
    private struct Run {
        let taskID: String
        let version: Int64
        let held: DeliveryHold
        let started: ContinuousClock.Instant
        var renewed: ContinuousClock.Instant?
    }
    private let runs = Mutex<(next: Int, all: [Int: Run])>((0, [:]))

    func begin(taskID: String, version: Int64, held: DeliveryHold) -> Int {
        runs.withLock { r in
            r.next += 1
            r.all[r.next] = Run(taskID: taskID, version: version, held: held, started: .now)
            return r.next
        }
    }

    func end(_ id: Int) { _ = runs.withLock { $0.all.removeValue(forKey: id) } }

    /// Takes and renews leases until cancelled.
    func run(_ warren: Warren) async {
        let (leaseAfter, lease) = (warren.leaseAfter, warren.lease)
        let millis = lease.components.seconds * 1000 + lease.components.attoseconds / 1_000_000_000_000_000
        let tick = max(min(leaseAfter, lease / 3) / 4, .milliseconds(25))
        while !Task.isCancelled {
            do { try await Task.sleep(for: tick) } catch { return }
            let now = ContinuousClock.now
            let due: [(Int, Run)] = runs.withLock { r in
                r.all.filter { _, run in
                    run.renewed.map { now - $0 >= lease / 3 } ?? (now - run.started >= leaseAfter)
                }.map { ($0.key, $0.value) }
            }
            for (id, run) in due {
                let body = Wire.object([("id", Wire.quote(run.taskID)), ("version", "\(run.version)"),
                                        ("worker", Wire.quote(warren.workerID)), ("lease", "\(millis)")])
                do {
                    try await warren.messenger.publish(.progress, body).wait()
                } catch {
                    warren.logger.warning("taking or renewing a lease failed; trying again", metadata: ["task": "\(run.taskID)", "error": "\(error)"])
                    continue
                }
                if run.renewed == nil {
                    run.held.settle { try $0.ack() }
                    warren.logger.info("a long run holds its task with a lease and let go of its execute message",
                                       metadata: ["task": "\(run.taskID)", "version": "\(run.version)", "lease ms": "\(millis)"])
                }
                runs.withLock { r in r.all[id]?.renewed = now }
            }
        }
    }
}

/// An execute delivery acknowledged exactly once, by the run's end or by its lease, whichever
/// comes first (a second acknowledgement of a tag would close the channel).
final class DeliveryHold: Sendable {
    private let delivery: Mutex<AMQPDelivery?>

    init(_ delivery: AMQPDelivery) { self.delivery = Mutex(delivery) }

    func settle(_ acknowledge: (AMQPDelivery) throws -> Void) {
        guard let d = delivery.withLock({ d in defer { d = nil }; return d }) else { return }
        do { try acknowledge(d) } catch {}  // a closed channel: the broker redelivers, and a new version fences this run
    }
}
