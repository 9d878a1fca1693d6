import GRDB

/// Schedules: their definitions as JSON, their state in columns, their next tick as a timer.
extension SQLiteTransaction {
    static let scheduleColumns = "id, definition, paused, next_tick, last_tick, last_workflow, last_error, created_on, updated_on"

    static func schedule(from row: Row) throws -> ScheduleRecord {
        let id: String = row[0]
        guard let definition = ScheduleDefinition(jsonText: row[1]) else {
            throw StoreError(.storageUnavailable, "the stored definition of schedule '\(id)' cannot be read")
        }
        return ScheduleRecord(id: id, definition: definition, paused: row[2], nextTick: row[3], lastTick: row[4], lastWorkflow: row[5],
                              lastError: row[6], createdOn: row[7], updatedOn: row[8])
    }

    func schedule(id: String) throws -> ScheduleRecord? {
        try Row.fetchOne(db.cachedStatement(sql: "SELECT \(Self.scheduleColumns) FROM schedules WHERE id = ?"), arguments: [id])
            .map(Self.schedule(from:))
    }

    func schedules(limit: Int, cursor: String?) throws -> (schedules: [ScheduleRecord], cursor: String?) {
        var rows = try Row.fetchAll(db, sql: "SELECT \(Self.scheduleColumns) FROM schedules WHERE id > ? ORDER BY id LIMIT ?",
                                    arguments: [cursor ?? "", limit + 1]).map(Self.schedule(from:))
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
        try db.execute(sql: "INSERT INTO schedules (\(Self.scheduleColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", arguments: [
            schedule.id, schedule.definition.jsonText, schedule.paused, schedule.nextTick, schedule.lastTick, schedule.lastWorkflow,
            schedule.lastError, schedule.createdOn, schedule.updatedOn,
        ])
        if !schedule.paused, let due = schedule.nextTick { try addTimer(due: due, id: schedule.id, kind: .scheduleTick) }
        return result
    }

    func saveSchedule(_ schedule: ScheduleRecord) throws {
        guard let old = try self.schedule(id: schedule.id) else { throw ScheduleRules.notFound(schedule.id) }
        try deleteTickTimer(old)
        try db.execute(sql: """
            UPDATE schedules SET paused = ?, next_tick = ?, last_tick = ?, last_workflow = ?, last_error = ?, updated_on = ? WHERE id = ?
            """, arguments: [schedule.paused, schedule.nextTick, schedule.lastTick, schedule.lastWorkflow, schedule.lastError,
                             schedule.updatedOn, schedule.id])
        if !schedule.paused, let due = schedule.nextTick { try addTimer(due: due, id: schedule.id, kind: .scheduleTick) }
    }

    func deleteSchedule(id: String) throws -> ScheduleRecord? {
        guard let old = try schedule(id: id) else { return nil }
        try deleteTickTimer(old)
        try db.execute(sql: "DELETE FROM schedules WHERE id = ?", arguments: [id])
        return old
    }

    private func deleteTickTimer(_ s: ScheduleRecord) throws {
        guard let due = s.nextTick else { return }
        try db.execute(sql: "DELETE FROM timers WHERE due = ? AND id = ? AND kind = ?", arguments: [due, s.id, TimerKind.scheduleTick.rawValue])
    }
}
