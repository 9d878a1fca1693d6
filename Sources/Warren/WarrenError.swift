/// An error from Warren's worker SDK or client.
public struct WarrenError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        public var description: String { raw }
        /// A replay took another path than the recorded history.
        public static let nondeterminism = Code(raw: "nondeterminism")
        /// The workflow or step failed; the message carries its error.
        public static let failed = Code(raw: "failed")
        /// The orchestrator refused a command (its code and message are in the message).
        public static let refused = Code(raw: "refused")
        /// The orchestrator did not answer (it or the broker is away); the command may be retried.
        public static let unavailable = Code(raw: "unavailable")
        /// A value could not be encoded or decoded as JSON.
        public static let codec = Code(raw: "codec")
        /// The promise timed out.
        public static let timedOut = Code(raw: "timedOut")
        /// The promise was canceled.
        public static let canceled = Code(raw: "canceled")
        /// Warren is not configured for what was asked (approval links without a key).
        public static let configuration = Code(raw: "configuration")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "WarrenError.\(code): \(message)" }
}

/// Thrown through the workflow's code when it awaits a promise that is still pending: the worker
/// catches it, records the suspension, and forgets the workflow. Do not catch it in workflow code.
struct Suspension: Error {
    var awaiting: [String]
}

/// The run ended with `continueAsNew`: run `run` starts next.
struct ContinuedAsNew: Error {
    var run: Int
}
