import AMQP
import Foundation
import Logging
import ServiceLifecycle

extension Warren {
    /// Serves the group's tasks until graceful shutdown: each execute message runs its workflow
    /// from the top, replaying what is recorded, to its next suspension or its end.
    public func run() async throws {
        let queue = "\(messenger.prefix).group.\(group)"
        let channel = try await messenger.connection.openChannel()
        // The same arguments as the orchestrator's declaration, so neither one's fails.
        try await channel.queueDeclare(queue, durable: true, arguments: ["x-dead-letter-exchange": .string(messenger.prefix + ".dlx")])
        try await channel.queueBind(queue, exchange: messenger.prefix, routingKey: "execute." + group)
        try await channel.basicQos(prefetchCount: UInt16(min(concurrency, 65535)))
        logger.info("worker serving", metadata: ["group": "\(group)", "worker": "\(workerID)"])
        try await cancelWhenGracefulShutdown {
            try await withThrowingDiscardingTaskGroup { tasks in
                for try await delivery in try await channel.basicConsume(queue: queue) {
                    tasks.addTask { await self.execute(delivery) }
                }
            }
        }
    }

    /// Runs one execute message. Acks it once the outcome is reported: a suspension or a
    /// completion, never holding it across a wait.
    func execute(_ delivery: AMQPDelivery) async {
        do {
            let message = try JSONDecoder().decode(Wire.Execute.self, from: Data(delivery.body))
            let claim = try JSONDecoder().decode(Wire.Claimed.self, from: Data(try await messenger.request("task.claim", Wire.object([
                ("id", Wire.quote(message.task.id)), ("version", "\(message.task.version)"), ("worker", Wire.quote(workerID)),
                ("redelivered", delivery.redelivered ? "true" : "false"),
            ])).body))
            try await runClaimed(claim)
        } catch let e as WarrenError where e.code == .unavailable {
            // The orchestrator did not answer: give the message back; it comes again, redelivered,
            // and whoever gets it takes a new version.
            logger.warning("execute message requeued", metadata: ["error": "\(e.message)"])
            try? delivery.reject(requeue: true)
            return
        } catch let e as AMQPError {
            // A step or the report may not have reached the broker: run it again from the top.
            logger.warning("execute message requeued", metadata: ["error": "\(e.message)"])
            try? delivery.reject(requeue: true)
            return
        } catch let e as WarrenError where e.code == .refused {
            logger.debug("execute message no longer counts", metadata: ["error": "\(e.message)"])
        } catch {
            // Not decodable, or the claim reply was not a claim (stale version): nothing to run.
            logger.debug("execute message dropped", metadata: ["error": "\(error)"])
        }
        do { try delivery.ack() } catch { logger.debug("ack failed; the broker redelivers", metadata: ["error": "\(error)"]) }
    }

    private func runClaimed(_ claim: Wire.Claimed) async throws {
        let task = claim.task
        let invocation = try Wire.decode(Wire.Invocation.self, from: claim.promise.param?.data)
        let ctx = Context(id: task.id, history: claim.children, messenger: messenger)
        // Every report names the task, the version it holds and this worker: the fencing.
        func report(_ kind: String, _ fields: [(String, String?)]) -> (kind: String, body: String) {
            (kind, Wire.object([("id", Wire.quote(task.id)), ("version", "\(task.version)"), ("worker", Wire.quote(workerID))] + fields))
        }
        func failure(_ message: String) throws -> (kind: String, body: String) {
            report("task.complete", [("state", "\"rejected\""), ("value", try Wire.json(["error": message]))])
        }
        let outcome: (kind: String, body: String)
        if let function = functions.withLock({ $0[invocation.function] }) {
            let argument = try invocation.args.first.map { try Wire.json($0) } ?? "null"
            do {
                outcome = report("task.complete", [("state", "\"resolved\""), ("value", try await function(ctx, argument))])
            } catch let s as Suspension {
                outcome = report("task.suspend", [("awaiting", try Wire.json(s.awaiting))])
            } catch {
                outcome = try failure("\(error)")
            }
        } else {
            outcome = try failure("no function '\(invocation.function)' is registered in group '\(group)'")
        }
        // The report follows the steps on the same channel; once it is confirmed, so are they.
        let confirmations = ctx.takeConfirmations() + [try messenger.publish(outcome.kind, outcome.body)]
        for c in confirmations { try await c.wait() }
        logger.debug(outcome.kind == "task.suspend" ? "task suspended" : "task completed",
                     metadata: ["task": "\(task.id)", "version": "\(task.version)"])
    }
}
