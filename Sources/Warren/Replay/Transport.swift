import AMQP
import WarrenContract

/// What a workflow's run needs from the outside world: the orchestrator's answers to the
/// commands its `ctx` calls make, and a way to send finished steps while it runs. The worker's
/// ``Messenger`` is one (over AMQP); a test gives another, and replays a recorded history with
/// no broker at all.
package protocol Transport: Sendable {
    /// Sends a command and waits for the orchestrator's answer: the promise it made or found, or
    /// its refusal as an error.
    func promiseRequest(_ kind: MessageKind, _ body: String) async throws -> (promise: PromiseRecord, created: Bool)
    /// Sends a message without waiting for its answer; the confirmation says the broker has it.
    func send(_ kind: MessageKind, _ body: String) throws -> any Receipt
}

/// That the broker took a message (a publisher confirm), awaited before the report that follows it.
package protocol Receipt: Sendable {
    func wait() async throws
}

extension PublishConfirmation: Receipt {}

extension Messenger: Transport {
    package func send(_ kind: MessageKind, _ body: String) throws -> any Receipt {
        try publish(kind, body)
    }
}
