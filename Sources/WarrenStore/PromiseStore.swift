@_exported import WarrenContract

/// Where the orchestrator keeps durable state: promises, tasks, timers and the outbox.
///
/// The orchestrator talks to the store only through this protocol, so that another backend (a
/// PostgreSQL store for teams that run several orchestrators) can be added without touching it.
/// ``SQLiteStore`` is the embedded default.
///
/// Every change happens inside ``write(_:)``: one transaction, committed when the closure
/// returns, rolled back when it throws. Outbox messages written there commit with the change
/// that causes them.
public protocol PromiseStore: Sendable {
    /// The limits commands are validated against.
    var limits: StoreLimits { get }

    /// Runs `body` in one write transaction and commits it.
    func write<T: Sendable>(_ body: @escaping @Sendable (any StoreTransaction) throws -> T) async throws -> T

    /// ``write(_:)`` that also returns the outbox messages the transaction wrote, with their
    /// sequence numbers, in order: a relay can publish them at once without reading them back.
    func writeReturningOutbox<T: Sendable>(_ body: @escaping @Sendable (any StoreTransaction) throws -> T) async throws
        -> (value: T, outbox: [OutboxMessage])

    /// Runs `body` on a consistent snapshot, concurrently with writes.
    func read<T: Sendable>(_ body: @escaping @Sendable (any StoreReader) throws -> T) async throws -> T

    /// A small write, to see whether the storage takes writes again after a fault.
    func probeWrite() async throws
}

extension PromiseStore {
    public func probeWrite() async throws {
        _ = try await write { tx in try tx.nextTimerDue() }
    }
}

/// What can be read from the store.
public protocol StoreReader {
    /// The promise with `id` as it reads at `now` (a pending promise past its timeout reads as
    /// timed out), or `nil`.
    func promise(id: String, now: Int64) throws -> PromiseRecord?
    /// One page of promises matching `search`, in id order.
    func search(_ search: PromiseSearch, now: Int64) throws -> PromisePage
    func task(id: String) throws -> TaskRecord?
    /// The promises a suspended task waits for.
    func awaitedPromises(taskID: String) throws -> [String]
    /// One page of tasks, in id order, optionally in some states only; `cursor` is the last id
    /// of the previous page.
    func tasks(states: Set<TaskRecord.State>?, limit: Int, cursor: String?) throws -> (tasks: [TaskRecord], cursor: String?)
    /// Outbox messages in commit order, after `sequence`, without those set aside.
    func outbox(after sequence: Int64, limit: Int) throws -> [OutboxMessage]
    /// The outbox messages set aside because the broker refused them, oldest first.
    func failedOutbox(limit: Int) throws -> [FailedOutboxMessage]
    /// The schedule with `id`, or `nil`.
    func schedule(id: String) throws -> ScheduleRecord?
    /// One page of schedules, in id order; `cursor` is the last id of the previous page.
    func schedules(limit: Int, cursor: String?) throws -> (schedules: [ScheduleRecord], cursor: String?)
}

/// What a write transaction can do.
///
/// The contract every backend keeps: a method checks everything that can make it throw a
/// ``StoreError`` before it writes anything, so a refused command leaves no trace and the
/// commands after it in the same transaction go on. Any other error (I/O, a full disk) aborts
/// the whole transaction.
public protocol StoreTransaction: StoreReader {
    /// Creates a promise (and its task when `taskGroup` is set), following the specification's
    /// idempotency rules.
    func createPromise(_ request: CreatePromise, now: Int64) throws -> CreateResult
    /// Resolves, rejects or cancels a promise; returns the suspended tasks that awaited it, now
    /// pending again with a raised version.
    func settlePromise(_ request: SettlePromise, now: Int64) throws -> SettleResult
    /// Hands the task out again (a redelivered execute message): raises its version.
    func redispatchTask(id: String, now: Int64) throws -> TaskRecord
    /// A worker takes the current version of a task. Refused for another version, or when
    /// another worker holds it.
    ///
    /// Claiming is optional: a report (suspend, complete, retry) for the current version of a
    /// pending task claims it implicitly, so a worker that received the version in an execute
    /// message reports without a round trip. A redelivered execute message is claimed after
    /// ``redispatchTask(id:now:)``, so whatever another worker reports for the old version no
    /// longer counts.
    func claimTask(id: String, version: Int64, worker: String, now: Int64) throws -> TaskRecord
    /// The worker holding the task records `steps` and waits for `awaiting`. If one of them is
    /// settled already, the task is handed out again at once (`resumed`), so a resolve that raced
    /// the suspend is not lost.
    func suspendTask(id: String, version: Int64, worker: String, awaiting: [String], steps: [StepOutcome], now: Int64) throws -> SuspendResult
    /// The worker holding the task records `steps` and settles its promise: the task is completed.
    /// When the promise was canceled meanwhile (a compensating run), the steps are recorded and
    /// the task completed, and the promise keeps its first outcome.
    func completeTask(id: String, version: Int64, worker: String, settle: SettlePromise, steps: [StepOutcome], now: Int64) throws -> SettleResult
    /// The worker holding the task records `steps` and lets it go, to be handed out again at
    /// `due` (a retry back-off); `failedStep` names the step that failed, whose failures are
    /// counted in the task's ``TaskRecord/retry``.
    func retryTask(id: String, version: Int64, worker: String, due: Int64, failedStep: String?, steps: [StepOutcome], now: Int64) throws -> TaskRecord
    /// The worker holding the task reports that its run cannot go on under its code (it departed
    /// from the recorded history, or the worker has no such function): the task is blocked with
    /// `reason` and offered again at `due`. Nothing the run did is recorded.
    func blockTask(id: String, version: Int64, worker: String, reason: String, due: Int64, now: Int64) throws -> TaskRecord
    /// Hands a blocked or waiting task out again now (an operator's retry), forgetting what it awaited.
    func resumeTask(id: String, now: Int64) throws -> TaskRecord
    /// Hands a canceled workflow's completed task out once more, to compensate; at `graceUntil`
    /// its task is completed whatever the run is doing (``FiredTimer/graceEnded(_:)``).
    func compensateTask(id: String, graceUntil: Int64, now: Int64) throws -> TaskRecord
    /// The worker holding the task (or taking its current version) records `steps` while it goes
    /// on running: a long run's finished steps become durable before its report.
    func recordProgress(id: String, version: Int64, worker: String, steps: [StepOutcome], lease: Int64?, now: Int64) throws
    /// Subscribes `address` to the outcome of a promise: the promise as it is now, and, while it
    /// is pending, a subscription that the settlement returns in ``SettleResult/subscribers``.
    func subscribe(promiseID: String, address: String, correlation: String, now: Int64) throws -> PromiseRecord
    /// Fires up to `limit` timers due at `now` and returns what firing them did.
    func fireTimers(now: Int64, limit: Int) throws -> [FiredTimer]
    /// When the next timer is due, if any.
    func nextTimerDue() throws -> Int64?
    /// Creates a schedule, armed for its ``ScheduleRecord/nextTick``; the same definition under
    /// its id again finds the stored one (`created` false), another is refused (`alreadyExists`).
    func createSchedule(_ schedule: ScheduleRecord, now: Int64) throws -> (schedule: ScheduleRecord, created: Bool)
    /// Writes a schedule's state (paused, its ticks, its last error) and arms its timer for
    /// its next tick (none while paused). Refused (`notFound`) for a schedule that does not exist.
    func saveSchedule(_ schedule: ScheduleRecord) throws
    /// Deletes a schedule and its timer; returns it as it was, or `nil` if there was none. The
    /// workflows it started go on.
    func deleteSchedule(id: String) throws -> ScheduleRecord?
    /// Deletes the first timer due without firing it (one whose consequences cannot be written),
    /// and says which it was.
    func dropNextTimer() throws -> (id: String, kind: TimerKind?)?
    /// Adds a message to the outbox; returns its sequence number.
    @discardableResult func enqueue(_ message: OutboxMessage) throws -> Int64
    /// Sets an outbox message aside: the broker refused it for `reason`; the relay goes on with
    /// the messages after it.
    func setOutboxAside(sequence: Int64, reason: String, now: Int64) throws
    /// Puts messages set aside back in the outbox (all of them for `nil`); returns how many.
    func retryFailedOutbox(sequences: [Int64]?) throws -> Int
    /// Counts one more attempt at applying a redelivered command (by its message id or digest)
    /// and returns the count.
    func countAttempt(message: String, now: Int64) throws -> Int
    /// Forgets the attempts of commands that were applied or dead-lettered.
    func forgetAttempts(messages: [String]) throws
    /// Deletes outbox messages once their publish is confirmed.
    func deleteOutbox(sequences: [Int64]) throws
    /// Deletes settled workflows (a root promise and every promise below it, with their tasks)
    /// whose root settled before `completedBefore`, up to `limit` roots. Returns how many.
    func deleteSettledWorkflows(completedBefore: Int64, limit: Int) throws -> Int
}

/// The outcome of ``StoreTransaction/suspendTask(id:version:worker:awaiting:steps:now:)``.
public enum SuspendResult: Sendable, Equatable {
    /// The task waits; no worker holds it.
    case suspended(TaskRecord)
    /// An awaited promise was already settled: hand the task out again now (version raised).
    case resumed(TaskRecord)
}
