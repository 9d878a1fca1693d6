import Foundation
import Testing
@testable import WarrenStore
import WarrenStorePostgres

/// The backends the same tests run against: the embedded SQLite store, and the in-memory one
/// the kernel's tests use (they must answer alike).
/// The backends the same tests run against: the embedded SQLite store, the PostgreSQL one (on
/// the private server Scripts/test.sh starts: `WARREN_TEST_POSTGRES_URL`), and the in-memory one
/// the kernel's tests use. They must answer alike.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres, memory
    var testDescription: String { rawValue }
}

/// What the tests need of a store: the protocol, and a write on the test's own thread.
protocol TestStore: PromiseStore {
    func writeSync<T>(_ body: (any StoreTransaction) throws -> T) throws -> T
}
extension SQLiteStore: TestStore {}
extension MemoryStore: TestStore {}
extension PostgresStore: TestStore {}

/// A store of its own for one test: a new SQLite file (removed when the test ends) or memory.
struct TempStore {
    let path: String
    let store: any TestStore
    /// The SQLite store, for tests of what only a file has (migrations, WAL, checkpoints).
    var sqlite: SQLiteStore { store as! SQLiteStore }

    init(_ backend: Backend = .sqlite, limits: StoreLimits = .default) throws {
        let dir = NSTemporaryDirectory() + "warren-store-tests"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        path = dir + "/\(UUID().uuidString).db"
        switch backend {
        case .sqlite: store = try SQLiteStore(path: path, limits: limits)
        case .memory: store = MemoryStore(limits: limits)
        case .postgres:
            guard let url = ProcessInfo.processInfo.environment["WARREN_TEST_POSTGRES_URL"] else {
                throw StoreError(.invalidArgument, "WARREN_TEST_POSTGRES_URL is not set: Scripts/test.sh starts a private PostgreSQL "
                    + "(Scripts/postgres.sh start DIR) and sets it")
            }
            // A schema of its own: the tests share one server and run in parallel.
            store = try PostgresStore(url: url + "?schema=t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""), limits: limits)
        }
    }

    func remove() {
        if let postgres = store as? PostgresStore {
            try? postgres.dropSchema()
            postgres.closeSync()
        }
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    }
}

/// A fixed clock for tests: milliseconds.
let t0: Int64 = 1_800_000_000_000
let hour: Int64 = 3_600_000

extension TestStore {
    func create(_ id: String, key: String? = nil, strict: Bool = false, timeout: Int64 = t0 + hour,
                tags: [String: String] = [:], group: String? = nil, now: Int64 = t0) throws -> CreateResult {
        try writeSync { tx in
            try tx.createPromise(CreatePromise(id: id, idempotencyKey: key, strict: strict, timeout: timeout, tags: tags, taskGroup: group), now: now)
        }
    }

    func settle(_ id: String, _ completion: PromiseRules.Completion = .resolve, key: String? = nil, strict: Bool = false,
                data: String? = nil, now: Int64 = t0 + 1) throws -> SettleResult {
        try writeSync { tx in
            try tx.settlePromise(SettlePromise(id: id, completion: completion, idempotencyKey: key, strict: strict,
                                               value: PromiseValue(data: data)), now: now)
        }
    }

    func get(_ id: String, now: Int64 = t0 + 2) throws -> PromiseRecord? {
        try writeSync { tx in try tx.promise(id: id, now: now) }
    }
}

/// Expects `body` to throw a StoreError with `code`; returns it.
@discardableResult
func expectStoreError(_ code: StoreError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> StoreError? {
    do {
        try body()
        Issue.record("expected StoreError.\(code), nothing was thrown", sourceLocation: sourceLocation)
    } catch let e as StoreError {
        #expect(e.code == code, "\(e)", sourceLocation: sourceLocation)
        return e
    } catch {
        Issue.record("expected StoreError.\(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}
