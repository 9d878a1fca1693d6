import Foundation

/// A promise record as the orchestrator sends it in replies, events and execute messages.
public struct PromiseSnapshot: Codable, Sendable, Equatable {
    public struct Value: Codable, Sendable, Equatable {
        public var headers: [String: String]?
        public var data: String?
    }
    public var id: String
    public var state: String
    public var param: Value?
    public var value: Value?
    public var timeout: Int64
    public var tags: [String: String]?
    /// When it was created and settled, in epoch milliseconds.
    public var createdOn: Int64?
    public var completedOn: Int64?

    public var isSettled: Bool { state != "PENDING" }

    /// The workflow a promise belongs to: its id up to the first dot.
    static func rootID(of id: String) -> String {
        id.firstIndex(of: ".").map { String(id[..<$0]) } ?? id
    }
}

/// Small helpers for the JSON bodies of the message contract.
enum Wire {
    /// The largest value a step or a workflow may return, in bytes of JSON: the orchestrator's
    /// payload limit (docs/messages.md). A larger one fails its step (or workflow) at the worker,
    /// with the sizes in the error, instead of being refused after the worker moved on.
    static let maximumValueBytes = (1 << 20) - 4096
    /// The most bytes of step outcomes one report carries; more go first in `task.progress`
    /// messages of this size, so that no message exceeds the orchestrator's command limit
    /// (1 MiB + 64 KiB).
    static let reportBudget = 1 << 20

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    /// A JSON string literal for `s`.
    static func quote(_ s: String) -> String {
        String(decoding: (try? encoder.encode(s)) ?? Data("\"\"".utf8), as: UTF8.self)
    }

    /// The JSON text of a value.
    static func json<T: Encodable>(_ value: T) throws -> String {
        do {
            return String(decoding: try encoder.encode(value), as: UTF8.self)
        } catch {
            throw WarrenError(.codec, "cannot encode \(T.self) as JSON: \(error)")
        }
    }

    /// A value from the JSON text a promise holds.
    static func decode<T: Decodable>(_ type: T.Type, from text: String?) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data((text ?? "null").utf8))
        } catch {
            throw WarrenError(.codec, "cannot decode \(T.self) from \(text?.prefix(200) ?? "null"): \(error)")
        }
    }

    /// An object from (key, raw JSON text) pairs.
    static func object(_ fields: [(String, String?)]) -> String {
        "{" + fields.compactMap { k, v in v.map { quote(k) + ": " + $0 } }.joined(separator: ", ") + "}"
    }

    struct Reply: Decodable {
        var promise: PromiseSnapshot?
        var created: Bool?
        var error: ErrorBody?
    }

    struct SearchReply: Decodable {
        var promises: [PromiseSnapshot]?
        var cursor: String?
        var error: ErrorBody?
    }

    struct ErrorBody: Decodable {
        var code: String
        var message: String
    }

    /// An execute message, or the reply to a claim: the task version to report with, its
    /// promise, and the promises below it (`nil` in an execute message of an older orchestrator,
    /// which the worker then claims).
    struct TaskMessage: Decodable {
        struct Task: Decodable { var id: String; var version: Int64; var group: String; var retry: TaskRetryInfo? }
        var task: Task
        var promise: PromiseSnapshot
        var children: [PromiseSnapshot]?
    }

    /// The param of a workflow's root promise.
    struct Invocation: Decodable {
        var function: String
        var args: [AnyJSON]
    }

    /// Any JSON value, kept to re-encode one argument as the function's input.
    struct AnyJSON: Codable {
        let value: Any?
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { value = nil }
            else if let b = try? c.decode(Bool.self) { value = b }
            else if let i = try? c.decode(Int64.self) { value = i }
            else if let d = try? c.decode(Double.self) { value = d }
            else if let s = try? c.decode(String.self) { value = s }
            else if let a = try? c.decode([AnyJSON].self) { value = a }
            else { value = try c.decode([String: AnyJSON].self) }
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch value {
            case nil: try c.encodeNil()
            case let b as Bool: try c.encode(b)
            case let i as Int64: try c.encode(i)
            case let d as Double: try c.encode(d)
            case let s as String: try c.encode(s)
            case let a as [AnyJSON]: try c.encode(a)
            case let o as [String: AnyJSON]: try c.encode(o)
            default: try c.encodeNil()
            }
        }
    }
}
