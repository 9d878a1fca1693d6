import AMQP
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Warren
import WarrenTestSupport

// MARK: The seeded schedule

/// SplitMix64: the same seed gives the same schedule on every machine.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A stable digest for values the workflows compute (the same in every process).
func digest(_ s: String) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return String(h % 1_000_000, radix: 36)
}

/// One workflow of the schedule and what a fault-free run returns.
struct Spec: Codable, Sendable {
    enum Kind: String, Codable, CaseIterable { case steps, retry, parallel, human, sleep }
    var id: String
    var kind: Kind
    var n: Int            // steps, failures before success, children, or sleep milliseconds
    var humanValue: String?
    /// For `human`: how long after the promise exists the driver resolves it, and the deadline.
    var resolveAfterMillis: Int?
    var deadlineMillis: Int?
    var duplicateResolve = false

    var function: String { "chaos-" + kind.rawValue }

    /// The result of a fault-free run; `nil` where a resolve races its deadline (either outcome
    /// is right, and the check is that the result agrees with the promise's recorded state).
    var expected: String? {
        switch kind {
        case .steps: return (0..<n).map { "s" + digest("\(id)/\($0)") }.joined(separator: ",")
        case .retry: return "r" + digest(id) + " after failures"
        case .parallel: return "sum \((0..<n).reduce(0) { $0 + ($1 + 1) * 2 })"
        case .human:
            guard let r = resolveAfterMillis, let d = deadlineMillis else { return nil }
            if r + 1500 < d { return "approved:" + (humanValue ?? "") }
            if r > d + 3000 { return "timed out" }
            return nil
        case .sleep: return "slept " + digest(id)
        }
    }
}

func makeSchedule(seed: UInt64, count: Int) -> [Spec] {
    var rng = SeededRandom(state: seed)
    return (0..<count).map { i in
        let kind = Spec.Kind.allCases[Int(rng.next() % UInt64(Spec.Kind.allCases.count))]
        var spec = Spec(id: "chaos-\(seed)-\(i)", kind: kind, n: 0)
        switch kind {
        case .steps: spec.n = 1 + Int(rng.next() % 5)
        case .retry: spec.n = 1 + Int(rng.next() % 2)
        case .parallel: spec.n = 2 + Int(rng.next() % 3)
        case .sleep: spec.n = 200 + Int(rng.next() % 2000)
        case .human:
            spec.humanValue = "ok-" + digest("\(seed)/\(i)")
            switch rng.next() % 3 {
            case 0: (spec.resolveAfterMillis, spec.deadlineMillis) = (Int(rng.next() % 1500), 60_000)  // well before
            case 1: (spec.resolveAfterMillis, spec.deadlineMillis) = (5_000, 1_000)                  // well after: times out
            default: (spec.resolveAfterMillis, spec.deadlineMillis) = (1_000, 1_000)                 // a race
            }
            spec.duplicateResolve = rng.next() % 2 == 0
        }
        return spec
    }
}
