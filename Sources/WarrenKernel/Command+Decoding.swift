import WarrenContract
import WarrenStore

/// Decoding AMQP bodies into commands: the message contract of docs/messages.md.
extension Command {
    /// An event that settles the promise its header names with its body: JSON as it is, other
    /// text as a JSON string, the content type kept in the value's headers.
    public static func decodeEvent(promiseID: String, settle: String?, routingKey: String, contentType: String?, body: [UInt8],
                            maximumBodyBytes: Int) throws(ContractError) -> Command {
        guard body.count <= maximumBodyBytes else {
            throw ContractError(reason: "the message is \(body.count) bytes; the limit is \(maximumBodyBytes)")
        }
        let completion: PromiseRules.Completion
        switch settle?.lowercased() ?? (routingKey == "promise.reject" ? "reject" : "resolve") {
        case "resolve": completion = .resolve
        case "reject": completion = .reject
        default: throw ContractError(reason: "the header \(ContractHeader.settle) must be resolve or reject, not '\(settle!.prefix(30))'")
        }
        guard let text = String(validating: body, as: UTF8.self) else {
            throw ContractError(reason: "an event that settles a promise must have a UTF-8 body (JSON or text)")
        }
        let type = contentType?.lowercased() ?? ""
        let data: String
        if type.isEmpty || type.hasPrefix("application/json") || type.hasSuffix("+json") {
            do {
                data = try JSONValue.parse(body).jsonText
            } catch {
                guard !type.isEmpty else { data = JSONValue.string(text).jsonText; return event(promiseID, completion, data, contentType) }
                throw ContractError(reason: "the body is not valid JSON although its content type is \(type): \(error)")
            }
        } else {
            data = JSONValue.string(text).jsonText
        }
        return event(promiseID, completion, data, contentType)
    }

    private static func event(_ id: String, _ completion: PromiseRules.Completion, _ data: String, _ contentType: String?) -> Command {
        var headers: [String: String] = [:]
        if let contentType, !contentType.isEmpty { headers["content-type"] = contentType }
        return .settlePromise(SettlePromise(id: id, completion: completion, value: PromiseValue(headers: headers, data: data)))
    }

    /// Decodes a message body; `now` and `defaultTimeout` (milliseconds) turn durations into
    /// epoch milliseconds.
    public static func decode(routingKey: String, type: String?, body: [UInt8], now: Int64, defaultTimeout: Int64,
                       maximumBodyBytes: Int) throws(ContractError) -> Command {
        guard let kind = MessageKind(command: routingKey) else {
            throw ContractError(reason: "unknown kind '\(routingKey.prefix(100))': the routing key must be one of "
                + MessageKind.commands.map(\.rawValue).joined(separator: ", "))
        }
        if let type, !type.isEmpty, type != routingKey {
            throw ContractError(reason: "the type property '\(type.prefix(100))' disagrees with the routing key '\(routingKey)'")
        }
        guard body.count <= maximumBodyBytes else {
            throw ContractError(reason: "the message is \(body.count) bytes; the limit is \(maximumBodyBytes)")
        }
        let parsed: JSONValue
        do {
            parsed = try JSONValue.parse(body)
        } catch {
            throw ContractError(reason: "the body is not valid JSON: \(error)")
        }
        guard let fields = parsed.objectValue else { throw ContractError(reason: "the body must be a JSON object") }
        if kind == .listSchedules {
            return .listSchedules(limit: try limit(fields), cursor: try string(fields, "cursor"))
        }
        let id = try string(fields, "id", required: true)!
        switch kind {
        case .createPromise:
            return .createPromise(CreatePromise(
                id: id, idempotencyKey: try string(fields, "idempotencyKey"), strict: try bool(fields, "strict"),
                param: try value(fields, "param"), timeout: try timeout(fields, now: now, default: defaultTimeout),
                tags: try tags(fields)))
        case .startWorkflow:
            let function = try string(fields, "function", required: true)!
            let group = try string(fields, "group", required: true)!
            let args = fields["args"] ?? .array([])
            guard case .array = args else { throw ContractError(reason: "'args' must be a JSON array") }
            let param = JSONValue.object(["function": .string(function), "args": args])
            var tags = try tags(fields)
            tags["warren:function"] = function
            return .startWorkflow(CreatePromise(
                id: id, idempotencyKey: id, param: PromiseValue(data: param.jsonText),
                timeout: try timeout(fields, now: now, default: defaultTimeout), tags: tags, taskGroup: group), function: function,
                subscribe: try bool(fields, "subscribe"))
        case .getPromise:
            return .getPromise(id: id)
        case .subscribe:
            return .subscribe(id: id)
        case .searchPromises:
            var states: Set<PromiseState>? = nil
            if let state = try string(fields, "state") {
                // As the specification's search: `rejected` covers every way of being rejected.
                switch state.lowercased() {
                case "pending": states = [.pending]
                case "resolved": states = [.resolved]
                case "rejected": states = [.rejected, .rejectedCanceled, .rejectedTimedout]
                default: throw ContractError(reason: "the state '\(state.prefix(30))' must be pending, resolved or rejected")
                }
            }
            let search = PromiseSearch(id: id, states: states, tags: try tags(fields), limit: try limit(fields))
            guard let cursor = try string(fields, "cursor") else { return .searchPromises(search) }
            // A cursor carries its search (``PromiseSearch/cursor(after:)``): its next page.
            do {
                return .searchPromises(try search.continuing(cursor))
            } catch {
                throw ContractError(reason: error.message)
            }
        case .claimTask:
            return .claimTask(id: id, version: try version(fields), worker: try string(fields, "worker", required: true)!,
                              redelivered: try bool(fields, "redelivered"))
        case .suspendTask:
            guard case .array(let items)? = fields["awaiting"], !items.isEmpty else {
                throw ContractError(reason: "'awaiting' must be a non-empty array of promise ids")
            }
            var awaiting: [String] = []
            for item in items {
                guard case .string(let s) = item else { throw ContractError(reason: "'awaiting' must hold promise ids (strings)") }
                awaiting.append(s)
            }
            return .suspendTask(id: id, version: try version(fields), worker: try string(fields, "worker", required: true)!, awaiting: awaiting,
                                steps: try steps(fields))
        case .progress:
            var lease: Int64? = nil
            switch fields["lease"] {
            case nil, .null?: break
            case .int(let ms)? where (1...86_400_000).contains(ms): lease = ms
            default: throw ContractError(reason: "the field 'lease' must be milliseconds from 1 to 86400000")
            }
            return .recordProgress(id: id, version: try version(fields), worker: try string(fields, "worker", required: true)!,
                                   steps: try steps(fields), lease: lease)
        case .retryTask:
            guard case .int(let delay)? = fields["delay"], delay >= 0 else {
                throw ContractError(reason: "the field 'delay' must be milliseconds (a number, 0 or more)")
            }
            return .retryTask(id: id, version: try version(fields), worker: try string(fields, "worker", required: true)!,
                              delay: min(delay, 366 * 86_400_000), failedStep: try string(fields, "step"), steps: try steps(fields))
        case .completeTask:
            let state = try string(fields, "state") ?? "resolved"
            guard state == "resolved" || state == "rejected" else {
                throw ContractError(reason: "'state' must be \"resolved\" or \"rejected\"")
            }
            return .completeTask(id: id, version: try version(fields), worker: try string(fields, "worker", required: true)!,
                                 settle: SettlePromise(id: id, completion: state == "resolved" ? .resolve : .reject,
                                                       idempotencyKey: "complete:\(id)", value: try value(fields, "value")),
                                 steps: try steps(fields))
        case .blockTask:
            guard let reason = try string(fields, "reason"), !reason.isEmpty else {
                throw ContractError(reason: "the field 'reason' must say why the task cannot go on (a non-empty string)")
            }
            return .blockTask(id: id, version: try version(fields), worker: try string(fields, "worker", required: true)!,
                              reason: String(reason.prefix(TaskRules.maximumReasonCharacters)))
        case .cancelWorkflow:
            return .cancelWorkflow(id: id, reason: try string(fields, "reason").map { String($0.prefix(TaskRules.maximumReasonCharacters)) })
        case .retryWorkflow:
            return .retryWorkflow(id: id)
        case .failWorkflow:
            let reason = try string(fields, "reason") ?? "no reason given"
            return .failWorkflow(id: id, reason: String(reason.prefix(TaskRules.maximumReasonCharacters)))
        case .createSchedule:
            return .createSchedule(id: id, try schedule(fields, defaultTimeout: defaultTimeout))
        case .getSchedule: return .getSchedule(id: id)
        case .pauseSchedule: return .pauseSchedule(id: id)
        case .resumeSchedule: return .resumeSchedule(id: id)
        case .deleteSchedule: return .deleteSchedule(id: id)
        case .listSchedules: return .listSchedules(limit: try limit(fields), cursor: try string(fields, "cursor"))
        case .resolvePromise, .rejectPromise, .cancelPromise:
            let completion: PromiseRules.Completion = kind == .resolvePromise ? .resolve : kind == .rejectPromise ? .reject : .cancel
            return .settlePromise(SettlePromise(
                id: id, completion: completion, idempotencyKey: try string(fields, "idempotencyKey"),
                strict: try bool(fields, "strict"), value: try value(fields, "value")))
        case .execute, .settled, .reply, .error:
            throw ContractError(reason: "'\(routingKey)' is a kind the orchestrator sends, not one it takes")
        }
    }

    /// A schedule's definition: `cron`, `function` and `group`, and optionally `timeZone` (IANA),
    /// `args` (a JSON array), `timeout` (each workflow's, a duration), `tags` and `missedTicks`
    /// (`once` or `skip`). The expression is checked where the schedule is created.
    public static func schedule(_ f: [String: JSONValue], defaultTimeout: Int64) throws(ContractError) -> ScheduleDefinition {
        let args = f["args"] ?? .array([])
        guard case .array = args else { throw ContractError(reason: "'args' must be a JSON array") }
        var timeout = defaultTimeout
        switch f["timeout"] {
        case nil, .null?: break
        case .string(let text)?:
            guard let ms = Durations.milliseconds(in: text) else { throw ContractError(reason: "the timeout '\(text.prefix(50))' is not \(Durations.example)") }
            timeout = ms
        default: throw ContractError(reason: "a schedule's 'timeout' is each workflow's, from its tick: \(Durations.example)")
        }
        var missed = ScheduleDefinition.MissedTicks.once
        if let m = try string(f, "missedTicks") {
            guard let policy = ScheduleDefinition.MissedTicks(rawValue: m.lowercased()) else {
                throw ContractError(reason: "'missedTicks' must be once or skip, not '\(m.prefix(30))'")
            }
            missed = policy
        }
        let zone = try string(f, "timeZone")
        return ScheduleDefinition(cron: try string(f, "cron", required: true)!, timeZone: zone == "UTC" ? nil : zone,
                                  function: try string(f, "function", required: true)!, group: try string(f, "group", required: true)!,
                                  args: args.jsonText, timeout: timeout, tags: try tags(f), missed: missed)
    }

    private static func limit(_ f: [String: JSONValue]) throws(ContractError) -> Int {
        switch f["limit"] {
        case nil, .null?: return 100
        case .int(let n)? where (1...Int64(PromiseSearch.maximumLimit)).contains(n): return Int(n)
        default: throw ContractError(reason: "the field 'limit' must be a number from 1 to \(PromiseSearch.maximumLimit)")
        }
    }

    /// `steps`: the outcomes of the steps a worker ran, `[{"id", "state": "resolved"|"rejected", "value", "tags"}]`.
    private static func steps(_ f: [String: JSONValue]) throws(ContractError) -> [StepOutcome] {
        guard let list = f["steps"], list != .null else { return [] }
        guard case .array(let items) = list else { throw ContractError(reason: "'steps' must be an array of step outcomes") }
        var steps: [StepOutcome] = []
        steps.reserveCapacity(items.count)
        for item in items {
            guard case .object(let o) = item else { throw ContractError(reason: "each step must be an object with 'id', 'state' and 'value'") }
            let state = try string(o, "state") ?? "resolved"
            guard state == "resolved" || state == "rejected" else {
                throw ContractError(reason: "a step's 'state' must be \"resolved\" or \"rejected\"")
            }
            steps.append(StepOutcome(id: try string(o, "id", required: true)!, completion: state == "resolved" ? .resolve : .reject,
                                     value: try value(o, "value"), tags: try tags(o)))
        }
        return steps
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
            guard let duration = Durations.milliseconds(in: text) else {
                throw ContractError(reason: "the timeout '\(text.prefix(50))' is not \(Durations.example)")
            }
            return now + duration
        default:
            throw ContractError(reason: "the timeout must be epoch milliseconds or a duration string")
        }
    }
}
