/// The state of a durable promise, as the Durable Promise Specification names it.
public enum PromiseState: String, Codable, Sendable, CaseIterable {
    case pending = "PENDING"
    case resolved = "RESOLVED"
    case rejected = "REJECTED"
    case rejectedCanceled = "REJECTED_CANCELED"
    case rejectedTimedout = "REJECTED_TIMEDOUT"

    /// `true` for every state but ``pending``.
    public var isSettled: Bool { self != .pending }

    /// The compact code stored in SQLite.
    var code: Int {
        switch self {
        case .pending: 0
        case .resolved: 1
        case .rejected: 2
        case .rejectedCanceled: 3
        case .rejectedTimedout: 4
        }
    }

    init?(code: Int) {
        switch code {
        case 0: self = .pending
        case 1: self = .resolved
        case 2: self = .rejected
        case 3: self = .rejectedCanceled
        case 4: self = .rejectedTimedout
        default: return nil
        }
    }
}

/// A promise's `param` or `value`: string headers and data, which Warren stores as JSON text.
public struct PromiseValue: Codable, Sendable, Equatable {
    public var headers: [String: String]
    public var data: String?

    public init(headers: [String: String] = [:], data: String? = nil) {
        self.headers = headers
        self.data = data
    }

    public static let empty = PromiseValue()
    var isEmpty: Bool { headers.isEmpty && data == nil }
    var byteCount: Int { (data?.utf8.count ?? 0) + headers.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count } }
}

/// A durable promise: the record of the Durable Promise Specification.
///
/// Times are milliseconds since the Unix epoch. `timeout` is when a pending promise times out.
public struct PromiseRecord: Codable, Sendable, Equatable {
    public var id: String
    public var state: PromiseState
    public var param: PromiseValue
    public var value: PromiseValue
    public var timeout: Int64
    public var idempotencyKeyForCreate: String?
    public var idempotencyKeyForComplete: String?
    public var createdOn: Int64
    public var completedOn: Int64?
    public var tags: [String: String]

    public init(id: String, state: PromiseState = .pending, param: PromiseValue = .empty, value: PromiseValue = .empty,
                timeout: Int64, idempotencyKeyForCreate: String? = nil, idempotencyKeyForComplete: String? = nil,
                createdOn: Int64, completedOn: Int64? = nil, tags: [String: String] = [:]) {
        self.id = id
        self.state = state
        self.param = param
        self.value = value
        self.timeout = timeout
        self.idempotencyKeyForCreate = idempotencyKeyForCreate
        self.idempotencyKeyForComplete = idempotencyKeyForComplete
        self.createdOn = createdOn
        self.completedOn = completedOn
        self.tags = tags
    }

    /// The tag that makes a promise a timer (`ctx.sleep`): it resolves, instead of timing out,
    /// when its timeout passes.
    public static let timerTag = "warren:timer"

    /// `true` for a timer promise.
    public var isTimer: Bool { tags[Self.timerTag] == "true" }

    /// The root of the call tree this promise belongs to: the id up to its first `.`.
    /// Children of a workflow have ids `<root>.<n>`, grandchildren `<root>.<n>.<m>`.
    public var rootID: String { PromiseRecord.rootID(of: id) }

    static func rootID(of id: String) -> String {
        guard let dot = id.firstIndex(of: ".") else { return id }
        return String(id[..<dot])
    }
}
