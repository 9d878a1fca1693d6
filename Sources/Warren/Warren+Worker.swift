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

    /// Runs one execute message. Acks it once the outcome is reported: a suspension, a retry or
    /// a completion, never holding it across a wait.
    ///
    /// The execute message carries the task's version and everything below its promise, so a
    /// first delivery runs at once and its report is its claim. A redelivered one may have
    /// reached another worker first: it is claimed (the orchestrator raises the version, fencing
    /// the other worker off) and run with what the claim's reply holds.
    func execute(_ delivery: AMQPDelivery) async {
        do {
            var message = try JSONDecoder().decode(Wire.TaskMessage.self, from: Data(delivery.body))
            if delivery.redelivered || message.children == nil {
                message = try JSONDecoder().decode(Wire.TaskMessage.self, from: Data(try await messenger.request("task.claim", Wire.object([
                    ("id", Wire.quote(message.task.id)), ("version", "\(message.task.version)"), ("worker", Wire.quote(workerID)),
                    ("redelivered", delivery.redelivered ? "true" : "false"),
                ])).body))
            }
            try await runTask(message)
        } catch let e as WarrenError where e.code == .unavailable {
            // The orchestrator did not answer: give the message back; it comes again, redelivered,
            // and whoever gets it takes a new version.
            logger.warning("execute message requeued", metadata: ["error": "\(e.message)"])
            try? delivery.reject(requeue: true)
            return
        } catch let e as AMQPError {
            // The report may not have reached the broker: run it again from the top.
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

    private func runTask(_ message: Wire.TaskMessage) async throws {
        let task = message.task
        let invocation = try Wire.decode(Wire.Invocation.self, from: message.promise.param?.data)
        let ctx = Context(id: task.id, history: message.children ?? [], retry: task.retry, messenger: messenger,
                          progress: ProgressReporter(taskID: task.id, version: task.version, worker: workerID, messenger: messenger))
        var outcome: (kind: String, fields: [(String, String?)])
        if let function = functions.withLock({ $0[invocation.function] }) {
            let argument = try invocation.args.first.map { try Wire.json($0) } ?? "null"
            do {
                outcome = ("task.complete", [("state", "\"resolved\""), ("value", try await function(ctx, argument))])
            } catch {
                outcome = ("task.complete", [("state", "\"rejected\""), ("value", try Wire.json(["error": "\(error)"]))])
            }
            // A parent finishes what it started before it reports.
            await ctx.finishSteps()
        } else {
            outcome = ("task.complete", [("state", "\"rejected\""),
                                         ("value", try Wire.json(["error": "no function '\(invocation.function)' is registered in group '\(group)'"]))])
        }
        let report = ctx.takeReport()
        // A suspension or a retry stops the run even if the workflow's code caught it; a
        // workflow that returned with children still running waits for them before it completes
        // (a replay then returns the same outcome).
        switch report.interrupt {
        case let s as Suspension: outcome = ("task.suspend", [("awaiting", try Wire.json(s.awaiting))])
        case let r as RetryRequest: outcome = ("task.retry", [("step", Wire.quote(r.step)), ("delay", "\(r.delay)")])
        default: if !report.children.isEmpty { outcome = ("task.suspend", [("awaiting", try Wire.json(report.children))]) }
        }
        // One message: the steps' outcomes and the report, with the fencing (task, version, worker).
        let body = Wire.object([("id", Wire.quote(task.id)), ("version", "\(task.version)"), ("worker", Wire.quote(workerID))]
            + outcome.fields + [("steps", report.steps.isEmpty ? nil : "[" + report.steps.joined(separator: ",") + "]")])
        let confirmation = try messenger.publish(outcome.kind, body)
        for sent in report.progressSent { try await sent.wait() }
        try await confirmation.wait()
        logger.debug(outcome.kind == "task.suspend" ? "task suspended" : outcome.kind == "task.retry" ? "task retries a step" : "task completed",
                     metadata: ["task": "\(task.id)", "version": "\(task.version)"])
    }
}
