import Synchronization

/// A store that keeps everything in memory: the same protocol, rules and answers as
/// ``SQLiteStore``, with nothing on disk. For tests of the kernel and of anything built on the
/// protocol (the same specification-table and property tests run against both), never for a
/// deployment: everything is gone with the process.
///
/// A write runs on a copy of the state and replaces it when the body returns; a throwing body
/// leaves the state as it was (a rollback). Writes are serialised; reads see the last commit.
public final class MemoryStore: PromiseStore {
    public let limits: StoreLimits
    private let state = Mutex(MemoryState())

    public init(limits: StoreLimits = .default) {
        self.limits = limits
    }

    public func write<T: Sendable>(_ body: @escaping @Sendable (any StoreTransaction) throws -> T) async throws -> T {
        try await writeReturningOutbox(body).value
    }

    public func writeReturningOutbox<T: Sendable>(_ body: @escaping @Sendable (any StoreTransaction) throws -> T) async throws
        -> (value: T, outbox: [OutboxMessage])
    {
        try state.withLock { committed in
            let tx = MemoryTransaction(state: committed, limits: limits)
            let value = try body(tx)
            committed = tx.state
            return (value, tx.written)
        }
    }

    /// ``write(_:)`` on the calling thread, for tests.
    public func writeSync<T>(_ body: (any StoreTransaction) throws -> T) throws -> T {
        try state.withLock { committed in
            let tx = MemoryTransaction(state: committed, limits: limits)
            let value = try body(tx)
            committed = tx.state
            return value
        }
    }

    public func read<T: Sendable>(_ body: @escaping @Sendable (any StoreReader) throws -> T) async throws -> T {
        let snapshot = state.withLock { $0 }
        return try body(MemoryTransaction(state: snapshot, limits: limits))
    }
}

/// Everything a ``MemoryStore`` holds: the tables of the SQLite schema, as values.
struct MemoryState: Sendable {
    struct TaskRow: Sendable {
        var task: TaskRecord
        var awaiting: [String] = []
        var leaseUntil: Int64? = nil
    }
    struct Timer: Hashable, Comparable, Sendable {
        var due: Int64
        var id: String
        var kind: Int
        static func < (a: Timer, b: Timer) -> Bool { (a.due, a.id, a.kind) < (b.due, b.id, b.kind) }
    }
    struct OutboxRow: Sendable {
        var message: OutboxMessage
        var failure: (reason: String, on: Int64)? = nil
    }

    /// As stored: a pending promise past its timeout reads as timed out (``PromiseRules/effective(_:now:)``).
    var promises: [String: PromiseRecord] = [:]
    var tasks: [String: TaskRow] = [:]
    /// Promise id → the suspended tasks that await it.
    var awaits: [String: Set<String>] = [:]
    var timers: Set<Timer> = []
    /// Promise id → who waits for its outcome, in subscription order.
    var callbacks: [String: [Subscriber]] = [:]
    /// In sequence order.
    var outbox: [OutboxRow] = []
    var lastSequence: Int64 = 0
    var attempts: [String: Int] = [:]
    var schedules: [String: ScheduleRecord] = [:]
}
