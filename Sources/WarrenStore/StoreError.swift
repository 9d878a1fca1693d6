/// Why a store command failed, with a stable code and a message that says what to do.
public struct StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        public var description: String { raw }

        /// A promise id, tag, header or key is empty, too long or has a character not allowed.
        public static let invalidID = Code(raw: "invalidID")
        /// Another argument is invalid (a timeout in the past, a negative limit...).
        public static let invalidArgument = Code(raw: "invalidArgument")
        /// A payload (param or value) is larger than the configured limit.
        public static let payloadTooLarge = Code(raw: "payloadTooLarge")
        /// No promise (or task) with that id.
        public static let notFound = Code(raw: "notFound")
        /// Create: a promise with that id exists and the idempotency key does not deduplicate.
        public static let alreadyExists = Code(raw: "alreadyExists")
        /// Resolve, reject or cancel: the promise is settled and the key does not deduplicate.
        public static let alreadySettled = Code(raw: "alreadySettled")
        /// A task report for a version that is no longer current, or from another worker.
        public static let staleTask = Code(raw: "staleTask")
        /// The promise belongs to a workflow's machinery (its result, a step, a timer): only the
        /// orchestrator settles it.
        public static let internalPromise = Code(raw: "internalPromise")
        /// The sender may not do this: its broker user is not one allowed for the workflow's
        /// group (`--group-users`).
        public static let forbidden = Code(raw: "forbidden")
        /// The task is not in a state that allows the operation.
        public static let invalidTaskState = Code(raw: "invalidTaskState")
        /// The database file was written by a newer Warren, or cannot be opened.
        public static let incompatibleDatabase = Code(raw: "incompatibleDatabase")
        /// SQLite refused a statement for what it holds (a pattern too complex, a value too big):
        /// the command's fault, not the storage's.
        public static let databaseError = Code(raw: "databaseError")
        /// The storage cannot take writes now (a full disk, an I/O error, a read-only or
        /// unreadable file, a lock held too long): no command's fault. Retry later; nothing of
        /// the failed transaction was applied.
        public static let storageUnavailable = Code(raw: "storageUnavailable")
    }

    public var code: Code
    public var message: String
    /// For `alreadyExists` and `alreadySettled`: the promise as it is.
    public var promise: PromiseRecord?

    public init(_ code: Code, _ message: String, promise: PromiseRecord? = nil) {
        self.code = code
        self.message = message
        self.promise = promise
    }

    public var description: String { "StoreError.\(code): \(message)" }
}
