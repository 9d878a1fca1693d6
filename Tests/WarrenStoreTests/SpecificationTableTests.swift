import Testing
@testable import WarrenStore

/// Rows of the Durable Promise Specification's idempotence table (its Readme), run against the
/// SQLite store, numbered as in the specification: every starting state, every action, with and
/// without idempotency keys, strict and not, including promises that timed out lazily.
@Suite("Durable Promise Specification table")
struct SpecificationTableTests {
    enum Start: CustomStringConvertible {
        case initial
        case pending(ikc: String?)
        case settled(PromiseRules.Completion, ikc: String?, iku: String?)
        case timedout(ikc: String?)

        var description: String {
            switch self {
            case .initial: "Init"
            case .pending(let k): "Pending(\(k ?? "⊥"))"
            case .settled(let c, let k, let u): "\(c.state.rawValue)(\(k ?? "⊥"), \(u ?? "⊥"))"
            case .timedout(let k): "Timedout(\(k ?? "⊥"))"
            }
        }
    }

    enum Action: CustomStringConvertible {
        case create(key: String?, strict: Bool)
        case settle(PromiseRules.Completion, key: String?, strict: Bool)

        var description: String {
            switch self {
            case .create(let k, let s): "Create(\(k ?? "⊥"), \(s ? "T" : "F"))"
            case .settle(let c, let k, let s): "\(c.rawValue)(\(k ?? "⊥"), \(s ? "T" : "F"))"
            }
        }
    }

    enum Expected: Equatable { case ok, deduplicated, ko(StoreError.Code) }

    struct Row: CustomTestStringConvertible, Sendable {
        let number: Int
        let start: Start
        let action: Action
        let expected: Expected
        var testDescription: String { "row \(number): \(start) + \(action)" }
    }

    static let ikc = "ikc", iku = "iku", other = "other"

    static let rows: [Row] = [
        Row(number: 1, start: .initial, action: .create(key: nil, strict: true), expected: .ok),
        Row(number: 4, start: .initial, action: .create(key: ikc, strict: false), expected: .ok),
        Row(number: 5, start: .initial, action: .settle(.resolve, key: nil, strict: true), expected: .ko(.notFound)),
        Row(number: 12, start: .initial, action: .settle(.reject, key: iku, strict: false), expected: .ko(.notFound)),
        Row(number: 16, start: .initial, action: .settle(.cancel, key: iku, strict: false), expected: .ko(.notFound)),
        Row(number: 17, start: .pending(ikc: nil), action: .create(key: nil, strict: true), expected: .ko(.alreadyExists)),
        Row(number: 20, start: .pending(ikc: nil), action: .create(key: ikc, strict: false), expected: .ko(.alreadyExists)),
        Row(number: 21, start: .pending(ikc: nil), action: .settle(.resolve, key: nil, strict: true), expected: .ok),
        Row(number: 28, start: .pending(ikc: nil), action: .settle(.reject, key: iku, strict: false), expected: .ok),
        Row(number: 31, start: .pending(ikc: nil), action: .settle(.cancel, key: iku, strict: true), expected: .ok),
        Row(number: 33, start: .pending(ikc: ikc), action: .create(key: nil, strict: true), expected: .ko(.alreadyExists)),
        Row(number: 35, start: .pending(ikc: ikc), action: .create(key: ikc, strict: true), expected: .deduplicated),
        Row(number: 36, start: .pending(ikc: ikc), action: .create(key: ikc, strict: false), expected: .deduplicated),
        Row(number: 37, start: .pending(ikc: ikc), action: .create(key: other, strict: true), expected: .ko(.alreadyExists)),
        Row(number: 41, start: .pending(ikc: ikc), action: .settle(.resolve, key: iku, strict: true), expected: .ok),
        Row(number: 51, start: .settled(.resolve, ikc: nil, iku: nil), action: .create(key: nil, strict: true), expected: .ko(.alreadyExists)),
        Row(number: 55, start: .settled(.resolve, ikc: nil, iku: nil), action: .settle(.resolve, key: nil, strict: true), expected: .ko(.alreadySettled)),
        Row(number: 58, start: .settled(.resolve, ikc: nil, iku: nil), action: .settle(.resolve, key: iku, strict: false), expected: .ko(.alreadySettled)),
        Row(number: 72, start: .settled(.resolve, ikc: nil, iku: iku), action: .settle(.resolve, key: nil, strict: false), expected: .ko(.alreadySettled)),
        Row(number: 73, start: .settled(.resolve, ikc: nil, iku: iku), action: .settle(.resolve, key: iku, strict: true), expected: .deduplicated),
        Row(number: 74, start: .settled(.resolve, ikc: nil, iku: iku), action: .settle(.resolve, key: iku, strict: false), expected: .deduplicated),
        Row(number: 75, start: .settled(.resolve, ikc: nil, iku: iku), action: .settle(.resolve, key: other, strict: true), expected: .ko(.alreadySettled)),
        Row(number: 79, start: .settled(.resolve, ikc: nil, iku: iku), action: .settle(.reject, key: iku, strict: true), expected: .ko(.alreadySettled)),
        Row(number: 80, start: .settled(.resolve, ikc: nil, iku: iku), action: .settle(.reject, key: iku, strict: false), expected: .deduplicated),
        Row(number: 85, start: .settled(.resolve, ikc: nil, iku: iku), action: .settle(.cancel, key: iku, strict: true), expected: .ko(.alreadySettled)),
        Row(number: 86, start: .settled(.resolve, ikc: nil, iku: iku), action: .settle(.cancel, key: iku, strict: false), expected: .deduplicated),
        Row(number: 91, start: .settled(.resolve, ikc: ikc, iku: nil), action: .create(key: ikc, strict: true), expected: .ko(.alreadyExists)),
        Row(number: 92, start: .settled(.resolve, ikc: ikc, iku: nil), action: .create(key: ikc, strict: false), expected: .deduplicated),
        Row(number: 94, start: .settled(.resolve, ikc: ikc, iku: nil), action: .create(key: other, strict: false), expected: .ko(.alreadyExists)),
        Row(number: 97, start: .settled(.resolve, ikc: ikc, iku: nil), action: .settle(.resolve, key: iku, strict: true), expected: .ko(.alreadySettled)),
        Row(number: 159, start: .settled(.reject, ikc: nil, iku: iku), action: .settle(.reject, key: iku, strict: true), expected: .deduplicated),
        Row(number: 153, start: .settled(.reject, ikc: nil, iku: iku), action: .settle(.resolve, key: iku, strict: true), expected: .ko(.alreadySettled)),
        Row(number: 154, start: .settled(.reject, ikc: nil, iku: iku), action: .settle(.resolve, key: iku, strict: false), expected: .deduplicated),
        Row(number: 239, start: .settled(.cancel, ikc: nil, iku: iku), action: .settle(.reject, key: iku, strict: true), expected: .ko(.alreadySettled)),
        Row(number: 240, start: .settled(.cancel, ikc: nil, iku: iku), action: .settle(.reject, key: iku, strict: false), expected: .deduplicated),
        Row(number: 245, start: .settled(.cancel, ikc: nil, iku: iku), action: .settle(.cancel, key: iku, strict: true), expected: .deduplicated),
        Row(number: 251, start: .settled(.cancel, ikc: ikc, iku: nil), action: .create(key: ikc, strict: true), expected: .ko(.alreadyExists)),
        Row(number: 252, start: .settled(.cancel, ikc: ikc, iku: nil), action: .create(key: ikc, strict: false), expected: .deduplicated),
        Row(number: 276, start: .settled(.cancel, ikc: ikc, iku: iku), action: .settle(.resolve, key: iku, strict: false), expected: .deduplicated),
        Row(number: 287, start: .settled(.cancel, ikc: ikc, iku: iku), action: .settle(.cancel, key: iku, strict: true), expected: .deduplicated),
        Row(number: 291, start: .timedout(ikc: nil), action: .create(key: nil, strict: true), expected: .ko(.alreadyExists)),
        Row(number: 295, start: .timedout(ikc: nil), action: .settle(.resolve, key: nil, strict: true), expected: .ko(.alreadySettled)),
        Row(number: 296, start: .timedout(ikc: nil), action: .settle(.resolve, key: nil, strict: false), expected: .deduplicated),
        Row(number: 302, start: .timedout(ikc: nil), action: .settle(.reject, key: iku, strict: false), expected: .deduplicated),
        Row(number: 305, start: .timedout(ikc: nil), action: .settle(.cancel, key: iku, strict: true), expected: .ko(.alreadySettled)),
        Row(number: 309, start: .timedout(ikc: ikc), action: .create(key: ikc, strict: true), expected: .ko(.alreadyExists)),
        Row(number: 310, start: .timedout(ikc: ikc), action: .create(key: ikc, strict: false), expected: .deduplicated),
        Row(number: 324, start: .timedout(ikc: ikc), action: .settle(.cancel, key: iku, strict: false), expected: .deduplicated),
    ]

    @Test(arguments: rows, Backend.allCases)
    func row(_ row: Row, _ backend: Backend) throws {
        let temp = try TempStore(backend)
        defer { temp.remove() }
        let store = temp.store
        let id = "p"
        var now = t0
        // Bring the promise into the row's starting state.
        switch row.start {
        case .initial: break
        case .pending(let ikc):
            _ = try store.create(id, key: ikc, now: now)
        case .settled(let completion, let ikc, let iku):
            _ = try store.create(id, key: ikc, now: now)
            _ = try store.settle(id, completion, key: iku, now: now + 1)
        case .timedout(let ikc):
            _ = try store.create(id, key: ikc, timeout: t0 + 10, now: now)
            now = t0 + 20  // past the timeout; no timer has fired: the timeout is read lazily
            #expect(try store.get(id, now: now)?.state == .rejectedTimedout)
        }
        let before = try store.get(id, now: now + 5)
        let result: Result<(PromiseRecord, Bool), StoreError>
        do {
            switch row.action {
            case .create(let key, let strict):
                let r = try store.create(id, key: key, strict: strict, now: now + 5)
                result = .success((r.promise, r.created))
            case .settle(let completion, let key, let strict):
                let r = try store.settle(id, completion, key: key, strict: strict, now: now + 5)
                result = .success((r.promise, r.settled))
            }
        } catch let e as StoreError {
            result = .failure(e)
        }
        switch (row.expected, result) {
        case (.ok, .success(let (promise, changed))):
            #expect(changed, "row \(row.number): expected a change")
            if case .settle(let c, let key, _) = row.action {
                #expect(promise.state == c.state)
                #expect(promise.idempotencyKeyForComplete == key)
            } else {
                #expect(promise.state == .pending)
            }
        case (.deduplicated, .success(let (promise, changed))):
            #expect(!changed, "row \(row.number): expected a deduplication")
            #expect(promise == before, "row \(row.number): a deduplicated request returns the promise unchanged")
        case (.ko(let code), .failure(let e)):
            #expect(e.code == code, "row \(row.number): \(e)")
        default:
            Issue.record("row \(row.number): expected \(row.expected), got \(result)")
        }
        // KO and deduplicated rows leave the promise as it was.
        if row.expected != .ok { #expect(try store.get(id, now: now + 5) == before) }
    }
}
