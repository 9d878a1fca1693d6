import PropertyBased
import Testing
@testable import WarrenStore

/// Random sequences of commands against the SQLite store and a tiny in-memory model that keeps
/// records in a dictionary and applies the specification's rules; both must agree on every
/// result and every read, and the first outcome must always win.
@Suite("Promise state machine, property-based")
struct PropertyTests {
    /// The in-memory model: a dictionary of records.
    struct Model {
        var promises: [String: PromiseRecord] = [:]

        func get(_ id: String, now: Int64) -> PromiseRecord? {
            promises[id].map { PromiseRules.effective($0, now: now) }
        }

        mutating func create(_ r: CreatePromise, now: Int64) -> Outcome {
            switch PromiseRules.create(r, existing: get(r.id, now: now), now: now) {
            case .created(let p): promises[p.id] = p; return .changed(true)
            case .deduplicated: return .changed(false)
            case .alreadyExists: return .refused(.alreadyExists)
            }
        }

        mutating func settle(_ r: SettlePromise, now: Int64) -> Outcome {
            guard let existing = get(r.id, now: now) else { return .refused(.notFound) }
            switch PromiseRules.settle(r, existing: existing, now: now) {
            case .settled(let p): promises[p.id] = p; return .changed(true)
            case .deduplicated: return .changed(false)
            case .alreadySettled: return .refused(.alreadySettled)
            }
        }

        mutating func fireTimers(now: Int64) {
            for (id, p) in promises where p.state == .pending && p.timeout <= now {
                promises[id] = PromiseRules.effective(p, now: now)
            }
        }
    }

    /// One step, decoded from a random number.
    enum Step: CustomStringConvertible {
        case create(id: String, key: String?, strict: Bool, timeoutIn: Int64, timer: Bool)
        case settle(id: String, PromiseRules.Completion, key: String?, strict: Bool)
        case advance(Int64, fire: Bool)

        init(_ n: Int) {
            let ids = ["p", "q", "r"], keys: [String?] = [nil, "k1", "k2"]
            let id = ids[(n / 5) % 3], key = keys[(n / 15) % 3], strict = (n / 45) % 2 == 1
            switch n % 5 {
            case 0: self = .create(id: id, key: key, strict: strict, timeoutIn: Int64((n / 90) % 3) * 40 + 10, timer: (n / 270) % 4 == 0)
            case 1: self = .settle(id: id, .resolve, key: key, strict: strict)
            case 2: self = .settle(id: id, .reject, key: key, strict: strict)
            case 3: self = .settle(id: id, .cancel, key: key, strict: strict)
            default: self = .advance(Int64((n / 5) % 4) * 15, fire: (n / 20) % 2 == 0)
            }
        }

        var description: String {
            switch self {
            case let .create(id, key, strict, t, timer): "create(\(id), \(key ?? "⊥"), \(strict), +\(t)\(timer ? ", timer" : ""))"
            case let .settle(id, c, key, strict): "\(c)(\(id), \(key ?? "⊥"), \(strict))"
            case let .advance(d, fire): "advance(\(d)\(fire ? ", fire" : ""))"
            }
        }
    }

    @Test(arguments: Backend.allCases)
    func storeAgreesWithTheModelAndTheFirstOutcomeWins(_ backend: Backend) async throws {
        await propertyCheck(count: 60, input: Gen.int(in: 0...100_000).array(of: 1...60)) { numbers in
            let temp = try TempStore(backend)
            defer { temp.remove() }
            let store = temp.store
            var model = Model()
            var now = t0
            var firstOutcome: [String: PromiseRecord] = [:]
            for (i, step) in numbers.map(Step.init).enumerated() {
                let context = "step \(i): \(step)"
                switch step {
                case let .create(id, key, strict, timeoutIn, timer):
                    let request = CreatePromise(id: id, idempotencyKey: key, strict: strict, timeout: now + timeoutIn,
                                                tags: timer ? [PromiseRecord.timerTag: "true"] : [:])
                    let expected = model.create(request, now: now)
                    let actual: Outcome
                    do { actual = .changed(try store.writeSync { tx in try tx.createPromise(request, now: now) }.created) }
                    catch let e as StoreError { actual = .refused(e.code) }
                    #expect(actual == expected, "\(context)")
                case let .settle(id, completion, key, strict):
                    let request = SettlePromise(id: id, completion: completion, idempotencyKey: key, strict: strict,
                                                value: PromiseValue(data: "\(i)"))
                    let expected = model.settle(request, now: now)
                    let actual: Outcome
                    do { actual = .changed(try store.writeSync { tx in try tx.settlePromise(request, now: now) }.settled) }
                    catch let e as StoreError { actual = .refused(e.code) }
                    #expect(actual == expected, "\(context)")
                case let .advance(delta, fire):
                    now += delta
                    if fire {
                        _ = try store.writeSync { tx in try tx.fireTimers(now: now, limit: 100) }
                        model.fireTimers(now: now)
                    }
                }
                for id in ["p", "q", "r"] {
                    let stored = try store.get(id, now: now)
                    #expect(stored == model.get(id, now: now), "\(context): \(id)")
                    // Once settled, a promise never changes again.
                    if let first = firstOutcome[id] {
                        #expect(stored == first, "\(context): \(id) changed after it settled")
                    } else if let stored, stored.state.isSettled {
                        firstOutcome[id] = stored
                    }
                }
            }
        }
    }
}

/// What a command did: changed the store (or deduplicated), or was refused with a code.
enum Outcome: Equatable {
    case changed(Bool)
    case refused(StoreError.Code)
}
