import PostgresNIO
import WarrenStore

/// Schedules: their definitions as JSON, their state in columns, their next tick as a timer.
extension PostgresTransaction {
    static let scheduleColumns = "id, definition, paused, next_tick, last_tick, last_workflow, last_error, created_on, updated_on"

    static func schedule(from row: PostgresRow) throws -> ScheduleRecord {
        let r = row.makeRandomAccess()
        let id = try r[0].decode(String.self)
        guard let definition = ScheduleDefinition(jsonText: try r[1].decode(String.self)) else {
            throw StoreError(.storageUnavailable, "the stored definition of schedule '\(id)' cannot be read")
        }
        return ScheduleRecord(id: id, definition: definition, paused: try r[2].decode(Int16.self) != 0, nextTick: try r[3].decode(Int64?.self),
                              lastTick: try r[4].decode(Int64?.self), lastWorkflow: try r[5].decode(String?.self),
                              lastError: try r[6].decode(String?.self), createdOn: try r[7].decode(Int64.self), updatedOn: try r[8].decode(Int64.self))
    }

    func schedule(id: String) throws -> ScheduleRecord? {
        try execute("SELECT \(Self.scheduleColumns) FROM schedules WHERE id = $1", [.text(id)]).first.map(Self.schedule(from:))
    }

    func schedules(limit: Int, cursor: String?) throws -> (schedules: [ScheduleRecord], cursor: String?) {
        var rows = try execute("SELECT \(Self.scheduleColumns) FROM schedules WHERE id > $1 ORDER BY id LIMIT $2",
                               [.text(cursor ?? ""), .int(Int64(limit) + 1)]).map(Self.schedule(from:))
        var next: String? = nil
        if rows.count > limit {
            rows.removeLast()
            next = rows.last?.id
        }
        return (rows, next)
    }

    func createSchedule(_ schedule: ScheduleRecord, now: Int64) throws -> (schedule: ScheduleRecord, created: Bool) {
        let result = try ScheduleRules.create(schedule, existing: try self.schedule(id: schedule.id))
        guard result.created else { return result }
        try execute("INSERT INTO schedules (\(Self.scheduleColumns)) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)", [
            .text(schedule.id), .text(schedule.definition.jsonText), .int(schedule.paused ? 1 : 0), .int(schedule.nextTick),
            .int(schedule.lastTick), .text(schedule.lastWorkflow), .text(schedule.lastError), .int(schedule.createdOn), .int(schedule.updatedOn),
        ])
        if !schedule.paused, let due = schedule.nextTick { try addTimer(due: due, id: schedule.id, kind: .scheduleTick) }
        return result
    }

    func saveSchedule(_ schedule: ScheduleRecord) throws {
        guard let old = try self.schedule(id: schedule.id) else { throw ScheduleRules.notFound(schedule.id) }
        if let due = old.nextTick { try deleteTimer(due: due, id: old.id, kind: .scheduleTick) }
        try execute("""
            UPDATE schedules SET paused = $1, next_tick = $2, last_tick = $3, last_workflow = $4, last_error = $5, updated_on = $6 WHERE id = $7
            """, [.int(schedule.paused ? 1 : 0), .int(schedule.nextTick), .int(schedule.lastTick), .text(schedule.lastWorkflow),
                  .text(schedule.lastError), .int(schedule.updatedOn), .text(schedule.id)])
        if !schedule.paused, let due = schedule.nextTick { try addTimer(due: due, id: schedule.id, kind: .scheduleTick) }
    }

    func deleteSchedule(id: String) throws -> ScheduleRecord? {
        guard let old = try schedule(id: id) else { return nil }
        if let due = old.nextTick { try deleteTimer(due: due, id: id, kind: .scheduleTick) }
        try execute("DELETE FROM schedules WHERE id = $1", [.text(id)])
        return old
    }
}
