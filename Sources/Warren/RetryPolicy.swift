import Foundation

public struct RetryPolicy: Sendable {
    /// Attempts in all, the first included (1: never retried).
    public var maximumAttempts: Int
    /// The wait after the first failure.
    public var initialDelay: Duration
    /// Each further wait is this many times the one before.
    public var backoffCoefficient: Double
    /// No wait is longer.
    public var maximumDelay: Duration
    /// Whether an error may be retried; by default every error but a ``NonRetryableError``.
    public var isRetryable: @Sendable (any Error) -> Bool

    public init(maximumAttempts: Int = 5, initialDelay: Duration = .seconds(1), backoffCoefficient: Double = 2,
                maximumDelay: Duration = .seconds(60), isRetryable: @escaping @Sendable (any Error) -> Bool = { !($0 is any NonRetryableError) }) {
        self.maximumAttempts = max(1, maximumAttempts)
        self.initialDelay = initialDelay
        self.backoffCoefficient = max(1, backoffCoefficient)
        self.maximumDelay = maximumDelay
        self.isRetryable = isRetryable
    }

    /// Five attempts, waiting 1 s, 2 s, 4 s, 8 s between them.
    public static let `default` = RetryPolicy()
    /// One attempt: a failure reaches the workflow at once.
    public static let never = RetryPolicy(maximumAttempts: 1)

    func shouldRetry(_ error: any Error, afterFailures failures: Int) -> Bool {
        failures < maximumAttempts && isRetryable(error)
    }

    /// The wait before the next attempt, in milliseconds.
    func delay(afterFailures failures: Int) -> Int64 {
        let initial = Double(initialDelay.components.seconds) * 1000 + Double(initialDelay.components.attoseconds) / 1e15
        let cap = Double(maximumDelay.components.seconds) * 1000 + Double(maximumDelay.components.attoseconds) / 1e15
        return Int64(min(cap, initial * pow(backoffCoefficient, Double(max(0, failures - 1)))))
    }
}

/// An error that a step's retry policy never retries (by default): the workflow sees it at once.
public protocol NonRetryableError: Error {}

/// Sends `task.progress` for the task version a worker runs.

struct ProgressReporter: Sendable {
    let taskID: String
    let version: Int64
    let worker: String
    let transport: any Transport

    func send(_ steps: [String]) throws -> any Receipt {
        try transport.send(.progress, Wire.object([
            ("id", Wire.quote(taskID)), ("version", "\(version)"), ("worker", Wire.quote(worker)),
            ("steps", "[" + steps.joined(separator: ",") + "]"),
        ]))
    }

    /// Sends `steps` in as many messages as keep each within ``Wire/reportBudget``, in order.
    func sendInChunks(_ steps: [String]) throws -> [any Receipt] {
        var sent: [any Receipt] = []
        var chunk: [String] = []
        var bytes = 0
        for step in steps {
            if !chunk.isEmpty, bytes + step.utf8.count + 1 > Wire.reportBudget {
                sent.append(try send(chunk))
                chunk.removeAll()
                bytes = 0
            }
            chunk.append(step)
            bytes += step.utf8.count + 1
        }
        if !chunk.isEmpty { sent.append(try send(chunk)) }
        return sent
    }
}

/// The failures of the step a task retries, from its execute message.
struct TaskRetryInfo: Decodable, Sendable {
    var step: String
    var failures: Int
}

/// Thrown through the workflow's code when a step failed and will be retried after `delay`.
struct RetryRequest: Error {
    var step: String
    var delay: Int64
}
