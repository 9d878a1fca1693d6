import Foundation
import WarrenContract

/// Small helpers for the JSON bodies of the message contract.
package enum Wire {
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
    package static func quote(_ s: String) -> String { JSONValue.quote(s) }

    /// The JSON text of a value.
    package static func json<T: Encodable>(_ value: T) throws -> String {
        do {
            return String(decoding: try encoder.encode(value), as: UTF8.self)
        } catch {
            throw WarrenError(.codec, "cannot encode \(T.self) as JSON: \(error)")
        }
    }

    /// A value from the JSON text a promise holds.
    package static func decode<T: Decodable>(_ type: T.Type, from text: String?) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data((text ?? "null").utf8))
        } catch {
            throw WarrenError(.codec, "cannot decode \(T.self) from \(text?.prefix(200) ?? "null"): \(error)")
        }
    }

    /// An object from (key, raw JSON text) pairs.
    package static func object(_ fields: [(String, String?)]) -> String {
        "{" + fields.compactMap { k, v in v.map { quote(k) + ": " + $0 } }.joined(separator: ", ") + "}"
    }

    struct Reply: Decodable {
        var promise: PromiseRecord?
        var created: Bool?
        var error: ErrorBody?
    }

    struct SearchReply: Decodable {
        var promises: [PromiseRecord]?
        var cursor: String?
        var error: ErrorBody?
    }

    struct ErrorBody: Decodable {
        var code: String
        var message: String
    }

    /// An execute message, or the reply to a claim: the task version to report with, its
    /// promise, and the promises below it.
    struct TaskMessage: Decodable {
        struct Task: Decodable { var id: String; var version: Int64; var group: String; var retry: TaskRetryInfo? }
        var task: Task
        var promise: PromiseRecord
        var children: [PromiseRecord]
    }

    /// The param of a workflow's root promise.
    struct Invocation: Decodable {
        var function: String
        var args: [JSONValue]
    }

    /// The promise an answer to `kind` holds, or its refusal as an error.
    package static func promiseReply(to kind: MessageKind, _ body: [UInt8]) throws -> (promise: PromiseRecord, created: Bool) {
        let reply = try JSONDecoder().decode(Reply.self, from: Data(body))
        if let error = reply.error { throw WarrenError(.refused, "\(kind): \(error.code): \(error.message)") }
        guard let promise = reply.promise else { throw WarrenError(.refused, "\(kind): the reply holds no promise") }
        return (promise, reply.created ?? false)
    }

    /// The body of `workflow.start`.
    package static func startBody<A: Encodable>(_ id: String, _ function: String, _ argument: A, group: String,
                                                timeout: Duration) throws -> String {
        try Warren.startBody(id, function, argument, target: group, timeout: timeout, subscribe: false)
    }

    /// The value a settled promise holds, as `R`, or the error it was settled with.
    package static func outcome<R: Decodable>(of p: PromiseRecord, as: R.Type) throws -> R {
        try Context.outcome(of: p, as: R.self)
    }
}
