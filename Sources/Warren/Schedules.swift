import Foundation
import WarrenContract

extension Warren {
    /// Schedules, over AMQP (docs/workflows.md#schedules): the orchestrator starts a workflow at
    /// each tick, as `<id>:<tick>`, so that a tick never starts two.
    public var schedules: Schedules { Schedules(messenger: messenger) }

    public struct Schedules: Sendable {
        let messenger: Messenger

        /// Creates schedule `id`: at each tick of `cron` (five fields, or six with seconds first,
        /// read in `timeZone`), `function(argument)` starts on worker group `group`. The same
        /// definition again returns the schedule; another under its id is refused.
        @discardableResult
        public func create<A: Encodable>(_ id: String, cron: String, timeZone: String? = nil, function: String, _ argument: A,
                                         group: String = "workers", timeout: Duration = .seconds(86_400),
                                         missedTicks: ScheduleDefinition.MissedTicks = .once, tags: [String: String] = [:]) async throws -> ScheduleRecord {
            try await request(.createSchedule, Wire.object([
                ("id", Wire.quote(id)), ("cron", Wire.quote(cron)), ("timeZone", timeZone.map(Wire.quote)), ("function", Wire.quote(function)),
                ("group", Wire.quote(group)), ("args", "[" + (try Wire.json(argument)) + "]"),
                ("timeout", Wire.quote("\(max(1, timeout.components.seconds))s")), ("missedTicks", Wire.quote(missedTicks.rawValue)),
                ("tags", tags.isEmpty ? nil : try Wire.json(tags)),
            ]))
        }

        /// Schedule `id` as it is now: its next tick, its last workflow.
        public func get(_ id: String) async throws -> ScheduleRecord { try await request(.getSchedule, Wire.object([("id", Wire.quote(id))])) }

        /// Stops schedule `id` ticking; ticks while it is paused start nothing.
        @discardableResult
        public func pause(_ id: String) async throws -> ScheduleRecord { try await request(.pauseSchedule, Wire.object([("id", Wire.quote(id))])) }

        /// Lets schedule `id` tick again, from its next tick after now.
        @discardableResult
        public func resume(_ id: String) async throws -> ScheduleRecord { try await request(.resumeSchedule, Wire.object([("id", Wire.quote(id))])) }

        /// Deletes schedule `id` (returned as it was); the workflows it started go on.
        @discardableResult
        public func delete(_ id: String) async throws -> ScheduleRecord { try await request(.deleteSchedule, Wire.object([("id", Wire.quote(id))])) }

        /// One page of schedules, in id order; pass the returned cursor for the next page.
        public func list(limit: Int = 100, cursor: String? = nil) async throws -> (schedules: [ScheduleRecord], cursor: String?) {
            let reply = try await reply(.listSchedules, Wire.object([("limit", "\(limit)"), ("cursor", cursor.map(Wire.quote))]))
            guard case .array(let items)? = reply["schedules"] else { throw WarrenError(.refused, "schedule.list: an answer without schedules") }
            return (items.compactMap(ScheduleRecord.init(json:)), reply["cursor"]?.stringValue)
        }

        private func request(_ kind: MessageKind, _ body: String) async throws -> ScheduleRecord {
            guard let s = try await reply(kind, body)["schedule"].flatMap(ScheduleRecord.init(json:)) else {
                throw WarrenError(.refused, "\(kind): an answer without a schedule")
            }
            return s
        }

        private func reply(_ kind: MessageKind, _ body: String) async throws -> [String: JSONValue] {
            let delivery = try await messenger.request(kind, body)
            guard let reply = (try? JSONValue.parse(delivery.body))?.objectValue else { throw WarrenError(.refused, "\(kind): an answer that is not JSON") }
            if let error = reply["error"]?.objectValue {
                let code = error["code"]?.stringValue ?? "error"
                throw WarrenError(.refused, "\(kind): \(code): \(error["message"]?.stringValue ?? "")")
            }
            return reply
        }
    }
}
