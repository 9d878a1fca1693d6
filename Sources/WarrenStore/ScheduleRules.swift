/// The rules every store keeps for schedules, so that the backends agree.
public enum ScheduleRules {
    /// What creating `new` finds when `existing` is stored under its id: the stored one for the
    /// same definition (a repeated create), a conflict for another.
    public static func create(_ new: ScheduleRecord, existing: ScheduleRecord?) throws -> (schedule: ScheduleRecord, created: Bool) {
        guard let existing else { return (new, true) }
        guard existing.definition == new.definition else {
            throw StoreError(.alreadyExists, "schedule '\(new.id)' exists with another definition (\(existing.definition.cron), "
                + "\(existing.definition.function)); delete it first, or use another id")
        }
        return (existing, false)
    }

    public static func notFound(_ id: String) -> StoreError {
        StoreError(.notFound, "no schedule with id '\(id)'")
    }

    /// Whether a fired tick timer still stands for the schedule (it was not paused, deleted or
    /// moved since the timer was set).
    public static func ticks(_ s: ScheduleRecord?, due: Int64) -> ScheduleRecord? {
        guard let s, !s.paused, s.nextTick == due else { return nil }
        return s
    }
}
