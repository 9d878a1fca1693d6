/// The state of a durable promise, as the Durable Promise Specification names it.
public enum PromiseState: String, Codable, Sendable, CaseIterable {
    case pending = "PENDING"
    case resolved = "RESOLVED"
    case rejected = "REJECTED"
    case rejectedCanceled = "REJECTED_CANCELED"
    case rejectedTimedout = "REJECTED_TIMEDOUT"

    /// `true` for every state but ``pending``.
    public var isSettled: Bool { self != .pending }
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
    public var isEmpty: Bool { headers.isEmpty && data == nil }
    /// The bytes it holds (data and headers), as the payload limits count them.
    public var byteCount: Int { (data?.utf8.count ?? 0) + headers.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count } }
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

    /// The root of an id: the id up to its first `.` (itself for a root).
    public static func rootID(of id: String) -> String {
        guard let dot = id.firstIndex(of: ".") else { return id }
        return String(id[..<dot])
    }

    /// The tag a workflow's calls record their kind in (`run:<name>`, `promise`, `sleep`, …).
    public static let kindTag = "warren:kind"
}

// MARK: The wire shape

extension PromiseRecord {
    /// The record as JSON, as events, replies and execute messages carry it (the same fields as
    /// its `Codable` form, keys sorted, absent values left out), written without Foundation.
    public var jsonText: String {
        var out = ""
        writeJSON(into: &out)
        return out
    }

    public func writeJSON(into out: inout String) {
        out += "{"
        if let c = completedOn { out += "\"completedOn\":\(c)," }
        out += "\"createdOn\":\(createdOn),\"id\":"
        JSONValue.quote(id, into: &out)
        if let k = idempotencyKeyForComplete { out += ",\"idempotencyKeyForComplete\":"; JSONValue.quote(k, into: &out) }
        if let k = idempotencyKeyForCreate { out += ",\"idempotencyKeyForCreate\":"; JSONValue.quote(k, into: &out) }
        out += ",\"param\":"
        param.writeJSON(into: &out)
        out += ",\"state\":\"\(state.rawValue)\",\"tags\":"
        out += JSONValue.object(tags)
        out += ",\"timeout\":\(timeout),\"value\":"
        value.writeJSON(into: &out)
        out += "}"
    }
}

extension PromiseValue {
    public func writeJSON(into out: inout String) {
        if let data {
            out += "{\"data\":"
            JSONValue.quote(data, into: &out)
            out += ",\"headers\":" + JSONValue.object(headers) + "}"
        } else {
            out += "{\"headers\":" + JSONValue.object(headers) + "}"
        }
    }
}

extension PromiseRecord {
    /// `true` once it is resolved, rejected, canceled or timed out.
    public var isSettled: Bool { state.isSettled }
}
