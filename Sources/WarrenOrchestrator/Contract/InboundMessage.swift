import Foundation
import WarrenStore

/// Why a message cannot be applied; travels in the `x-warren-error` header of its dead letter.
struct ContractError: Error, Equatable {
    var reason: String
}

/// What an inbound message asks for, decoded and validated against the message contract
/// (docs/messages.md). The routing key names the kind; an AMQP `type`, when present, must agree.
enum InboundMessage: Equatable {
    case createPromise(CreatePromise)
    case settlePromise(SettlePromise)
    /// `workflow.start`: a root promise with a task for `group`, whose param holds the function
    /// and its arguments.
    case startWorkflow(CreatePromise, function: String)
    /// `task.claim`: a worker takes the version of a task its execute message named (after a
    /// redelivered execute, a new version first).
    case claimTask(id: String, version: Int64, worker: String, redelivered: Bool)
    /// `task.suspend`: the worker waits for these promises and lets the task go.
    case suspendTask(id: String, version: Int64, worker: String, awaiting: [String])
    /// `task.complete`: the worker settles the task's promise with the function's outcome.
    case completeTask(id: String, version: Int64, worker: String, settle: SettlePromise)

    /// The kinds the orchestrator consumes, by routing key.
    static let kinds = ["promise.create", "promise.resolve", "promise.reject", "promise.cancel", "workflow.start",
                        "task.claim", "task.suspend", "task.complete"]

    /// Decodes a message body; `now` and `defaultTimeout` (milliseconds) turn durations into
    /// epoch milliseconds.
    static func decode(routingKey: String, type: String?, body: [UInt8], now: Int64, defaultTimeout: Int64,
                       maximumBodyBytes: Int) throws(ContractError) -> InboundMessage {
        guard kinds.contains(routingKey) else {
            throw ContractError(reason: "unknown kind '\(routingKey.prefix(100))': the routing key must be one of \(kinds.joined(separator: ", "))")
        }
        if let type, !type.isEmpty, type != routingKey {
            throw ContractError(reason: "the type property '\(type.prefix(100))' disagrees with the routing key '\(routingKey)'")
        }
        guard body.count <= maximumBodyBytes else {
            throw ContractError(reason: "the message is \(body.count) bytes; the limit is \(maximumBodyBytes)")
        }
        let fields: [String: JSONValue]
        do {
            guard let object = try JSONDecoder().decode(JSONValue.self, from: Data(body)).objectValue else {
                throw ContractError(reason: "the body must be a JSON object")
            }
            fields = object
        } catch let e as ContractError {
            throw e
        } catch {
            throw ContractError(reason: "the body is not valid JSON: \(String(describing: error).prefix(200))")
        }
        let id = try string(fields, "id", required: true)!
        switch routingKey {
        case "promise.create":
            return .createPromise(CreatePromise(
                id: id, idempotencyKey: try string(fields, "idempotencyKey"), strict: try bool(fields, "strict"),
                param: try value(fields, "param"), timeout: try timeout(fields, now: now, default: defaultTimeout),
                tags: try tags(fields)))
        case "workflow.start":
            let function = try string(fields, "function", required: true)!
            let group = try string(fields, "group", required: true)!
            let args = fields["args"] ?? .array([])
            guard case .array = args else { throw ContractError(reason: "'args' must be a JSON array") }
            let param = JSONValue.object(["function": .string(function), "args": args])
            var tags = try tags(fields)
            tags["warren:function"] = function
            return .startWorkflow(CreatePromise(
                id: id, idempotencyKey: id, param: PromiseValue(data: param.jsonText),
                timeout: try timeout(fields, now: now, default: defaultTimeout), tags: tags, taskGroup: group), function: function)
        case "task.claim":
            return .claimTask(id: id, version: try version(fields), worker: try string(fields, "worker", required: true)!,
                              redelivered: try bool(fields, "redelivered"))
        case "task.suspend":
            guard case .array(let items)? = fields["awaiting"], !items.isEmpty else {
                throw ContractError(reason: "'awaiting' must be a non-empty array of promise ids")
            }
            var awaiting: [String] = []
            for item in items {
                guard case .string(let s) = item else { throw ContractError(reason: "'awaiting' must hold promise ids (strings)") }
                awaiting.append(s)
            }
            return .suspendTask(id: id, version: try version(fields), worker: try string(fields, "worker", required: true)!, awaiting: awaiting)
        case "task.complete":
            let state = try string(fields, "state") ?? "resolved"
            guard state == "resolved" || state == "rejected" else {
                throw ContractError(reason: "'state' must be \"resolved\" or \"rejected\"")
            }
            return .completeTask(id: id, version: try version(fields), worker: try string(fields, "worker", required: true)!,
                                 settle: SettlePromise(id: id, completion: state == "resolved" ? .resolve : .reject,
                                                       idempotencyKey: "complete:\(id)", value: try value(fields, "value")))
        default:
            let completion: PromiseRules.Completion = routingKey == "promise.resolve" ? .resolve : routingKey == "promise.reject" ? .reject : .cancel
            return .settlePromise(SettlePromise(
                id: id, completion: completion, idempotencyKey: try string(fields, "idempotencyKey"),
                strict: try bool(fields, "strict"), value: try value(fields, "value")))
        }
    }

    private static func string(_ f: [String: JSONValue], _ key: String, required: Bool = false) throws(ContractError) -> String? {
        switch f[key] {
        case nil, .null?:
            if required { throw ContractError(reason: "the field '\(key)' is missing") }
            return nil
        case .string(let s)?: return s
        default: throw ContractError(reason: "the field '\(key)' must be a string")
        }
    }

    private static func version(_ f: [String: JSONValue]) throws(ContractError) -> Int64 {
        guard case .int(let v)? = f["version"], v > 0 else { throw ContractError(reason: "the field 'version' must be a positive integer") }
        return v
    }

    private static func bool(_ f: [String: JSONValue], _ key: String) throws(ContractError) -> Bool {
        switch f[key] {
        case nil, .null?: return false
        case .bool(let b)?: return b
        default: throw ContractError(reason: "the field '\(key)' must be true or false")
        }
    }

    /// `value` or `param`: any JSON, stored as its JSON text, with the optional `headers` beside it.
    private static func value(_ f: [String: JSONValue], _ key: String) throws(ContractError) -> PromiseValue {
        var headers: [String: String] = [:]
        if let h = f["headers"], h != .null {
            guard case .object(let o) = h else { throw ContractError(reason: "'headers' must be an object of strings") }
            for (k, v) in o {
                guard case .string(let s) = v else { throw ContractError(reason: "the header '\(k)' must be a string") }
                headers[k] = s
            }
        }
        return PromiseValue(headers: headers, data: f[key].map(\.jsonText))
    }

    private static func tags(_ f: [String: JSONValue]) throws(ContractError) -> [String: String] {
        guard let t = f["tags"], t != .null else { return [:] }
        guard case .object(let o) = t else { throw ContractError(reason: "'tags' must be an object of strings") }
        var tags: [String: String] = [:]
        for (k, v) in o {
            guard case .string(let s) = v else { throw ContractError(reason: "the tag '\(k)' must be a string") }
            tags[k] = s
        }
        return tags
    }

    /// Epoch milliseconds (a number) or a duration from now (`"500ms"`, `"90s"`, `"15m"`, `"24h"`, `"7d"`).
    static func timeout(_ f: [String: JSONValue], now: Int64, default d: Int64) throws(ContractError) -> Int64 {
        switch f["timeout"] {
        case nil, .null?: return now + d
        case .int(let ms)?:
            guard ms > 0 else { throw ContractError(reason: "the timeout \(ms) must be positive epoch milliseconds") }
            return ms
        case .string(let text)?:
            guard let duration = parseDuration(text) else {
                throw ContractError(reason: "the timeout '\(text.prefix(50))' is not a duration such as \"90s\", \"15m\", \"24h\" or \"7d\"")
            }
            return now + duration
        default:
            throw ContractError(reason: "the timeout must be epoch milliseconds or a duration string")
        }
    }

    /// Milliseconds in a duration string, or `nil`.
    static func parseDuration(_ text: String) -> Int64? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            guard let n = Int64(text.dropLast(suffix.count)), n > 0, n <= Int64.max / factor / 2 else { return nil }
            return n * factor
        }
        return nil
    }
}
