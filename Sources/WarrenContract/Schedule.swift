import Foundation

/// A schedule: the orchestrator starts a workflow of `function` at each tick of `cron`
/// (docs/workflows.md#schedules). What it starts is an ordinary workflow whose id is the
/// schedule's and the tick's (``ScheduleRecord/workflowID(schedule:tick:)``), so a tick can
/// never start two.
public struct ScheduleDefinition: Sendable, Equatable {
    /// What a tick missed while the orchestrator was down (a tick started later than the orchestrator's
    /// `--schedule-tolerance` after it was due) does.
    public enum MissedTicks: String, Sendable, CaseIterable {
        /// The latest missed tick starts its workflow once; earlier ones start nothing.
        case once
        /// Missed ticks start nothing; the schedule goes on from the next tick.
        case skip
    }

    /// The expression, as written (``CronExpression``).
    public var cron: String
    /// The IANA time zone the expression reads in (`Europe/Paris`); UTC when `nil`.
    public var timeZone: String?
    public var function: String
    public var group: String
    /// The workflow's arguments: a JSON array, as text.
    public var args: String
    /// Each workflow's timeout, from its tick (milliseconds).
    public var timeout: Int64
    /// Tags each workflow's root promise carries (with `warren:schedule`).
    public var tags: [String: String]
    public var missed: MissedTicks

    public init(cron: String, timeZone: String? = nil, function: String, group: String, args: String = "[]", timeout: Int64,
                tags: [String: String] = [:], missed: MissedTicks = .once) {
        self.cron = cron
        self.timeZone = timeZone
        self.function = function
        self.group = group
        self.args = args
        self.timeout = timeout
        self.tags = tags
        self.missed = missed
    }

    /// The expression and time zone, checked: why not, as a sentence, when they cannot tick.
    public func parsed() throws(CronExpression.ParseError) -> (cron: CronExpression, timeZone: TimeZone) {
        let expression = try CronExpression(cron)
        let zone: TimeZone
        if let name = timeZone {
            guard let z = TimeZone(identifier: name) else {
                throw CronExpression.ParseError(message: "'\(name.prefix(60))' is not a time zone: name one as the IANA database does (Europe/Paris, America/New_York, UTC)")
            }
            zone = z
        } else {
            zone = CronExpression.utc
        }
        return (expression, zone)
    }

    /// The definition as the store keeps it and the API shows it (without the schedule's state).
    public var fields: [String: JSONValue] {
        var f: [String: JSONValue] = [
            "cron": .string(cron), "timeZone": .string(timeZone ?? "UTC"), "function": .string(function), "group": .string(group),
            "args": (try? JSONValue.parse(args)) ?? .array([]), "timeout": .int(timeout), "missedTicks": .string(missed.rawValue),
        ]
        if !tags.isEmpty { f["tags"] = .object(tags.mapValues { .string($0) }) }
        return f
    }

    /// The definition from ``fields`` (as the store wrote them); `nil` if they are not one.
    public init?(fields f: [String: JSONValue]) {
        guard let cron = f["cron"]?.stringValue, let function = f["function"]?.stringValue, let group = f["group"]?.stringValue,
              case .int(let timeout)? = f["timeout"], let missed = f["missedTicks"]?.stringValue.flatMap(MissedTicks.init(rawValue:))
        else { return nil }
        let zone = f["timeZone"]?.stringValue
        var tags: [String: String] = [:]
        for (k, v) in f["tags"]?.objectValue ?? [:] { tags[k] = v.stringValue }
        self.init(cron: cron, timeZone: zone == "UTC" ? nil : zone, function: function, group: group, args: f["args"]?.jsonText ?? "[]",
                  timeout: timeout, tags: tags, missed: missed)
    }

    /// ``fields`` as JSON text, for a store's column.
    public var jsonText: String { JSONValue.object(fields).jsonText }

    public init?(jsonText: String) {
        guard let f = (try? JSONValue.parse(jsonText))?.objectValue else { return nil }
        self.init(fields: f)
    }
}

/// A schedule as stored: its definition and where it stands.
public struct ScheduleRecord: Sendable, Equatable {
    public var id: String
    public var definition: ScheduleDefinition
    /// A paused schedule does not tick; ticks while it is paused start nothing.
    public var paused: Bool
    /// When it ticks next (epoch milliseconds); `nil` while paused or when the expression has no
    /// further tick.
    public var nextTick: Int64?
    /// The last tick that started a workflow, and that workflow's id.
    public var lastTick: Int64?
    public var lastWorkflow: String?
    /// Why the last tick started nothing (the workflow's id was taken by another function), if it did not.
    public var lastError: String?
    public var createdOn: Int64
    public var updatedOn: Int64

    public init(id: String, definition: ScheduleDefinition, paused: Bool = false, nextTick: Int64?, lastTick: Int64? = nil,
                lastWorkflow: String? = nil, lastError: String? = nil, createdOn: Int64, updatedOn: Int64) {
        self.id = id
        self.definition = definition
        self.paused = paused
        self.nextTick = nextTick
        self.lastTick = lastTick
        self.lastWorkflow = lastWorkflow
        self.lastError = lastError
        self.createdOn = createdOn
        self.updatedOn = updatedOn
    }

    /// The longest schedule id, in bytes: its workflows' ids (`<id>:20261207T090000Z`) must be
    /// promise ids.
    public static let maximumIDLength = 200

    /// The workflow a tick starts: `<schedule>:<tick in UTC, yyyyMMddTHHmmssZ>`, so
    /// `daily-report:20261207T090000Z`. No dot: it is a root of its own.
    public static func workflowID(schedule: String, tick: Int64) -> String {
        let t = CivilTime(tick.floorDivided(by: 1000))
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(schedule):\(t.year)\(two(t.month))\(two(t.day))T\(two(t.hour))\(two(t.minute))\(two(t.second))Z"
    }

    /// The schedule as the HTTP API and the replies to AMQP commands show it.
    public var json: JSONValue {
        var f = definition.fields
        f["id"] = .string(id)
        f["paused"] = .bool(paused)
        f["createdOn"] = .int(createdOn)
        f["updatedOn"] = .int(updatedOn)
        if let nextTick { f["nextTick"] = .int(nextTick) }
        if let lastTick { f["lastTick"] = .int(lastTick) }
        if let lastWorkflow { f["lastWorkflow"] = .string(lastWorkflow) }
        if let lastError { f["lastError"] = .string(lastError) }
        return .object(f)
    }

    /// The schedule from its ``json`` (a reply's, the HTTP API's); `nil` if it is not one.
    public init?(json: JSONValue) {
        guard let f = json.objectValue, let id = f["id"]?.stringValue, let definition = ScheduleDefinition(fields: f),
              case .int(let createdOn)? = f["createdOn"], case .int(let updatedOn)? = f["updatedOn"] else { return nil }
        func int(_ key: String) -> Int64? { if case .int(let n)? = f[key] { n } else { nil } }
        self.init(id: id, definition: definition, paused: f["paused"]?.boolValue ?? false, nextTick: int("nextTick"), lastTick: int("lastTick"),
                  lastWorkflow: f["lastWorkflow"]?.stringValue, lastError: f["lastError"]?.stringValue, createdOn: createdOn, updatedOn: updatedOn)
    }
}
