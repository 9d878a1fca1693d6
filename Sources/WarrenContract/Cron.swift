import Foundation

/// A cron expression: when a schedule ticks (docs/workflows.md#schedules).
///
/// Five fields, `minute hour day-of-month month day-of-week`, as crontab(5) writes them, or six
/// with `second` first, as Quartz and Spring do (`*/10 * * * * *` every ten seconds). A field is
/// `*`, a value, a range `a-b`, a step `*/n`, `a-b/n` or `a/n`, or a comma list of those; months
/// and days may be named (`JAN`–`DEC`, `SUN`–`SAT`, any case) and day 7 is Sunday as well as 0.
/// `?` is `*` in the day fields. `@yearly`, `@monthly`, `@weekly`, `@daily` (`@midnight`) and
/// `@hourly` stand for their five fields. When both day fields are restricted, a day matches if
/// either matches (as cron does); otherwise the restricted one decides.
///
/// Times are wall-clock times in a time zone (UTC unless one is named): `0 9 * * MON-FRI` in
/// `Europe/Paris` ticks at nine in Paris, summer and winter. A wall time a clock change skips is
/// taken at the same distance past the change; one it repeats ticks once.
public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
    /// The expression as it was written.
    public let text: String
    private let seconds: UInt64, minutes: UInt64, hours: UInt64, days: UInt64, months: UInt64, weekdays: UInt64
    private let anyDay: Bool, anyWeekday: Bool

    public var description: String { text }

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    private static let macros = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]
    private static let monthNames = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    private static let dayNames = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

    public init(_ text: String) throws(ParseError) {
        self.text = text
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let expanded = Self.macros[trimmed.lowercased()] ?? trimmed
        if expanded.hasPrefix("@") {
            throw ParseError(message: "'\(trimmed.prefix(30))' is not a cron macro: use @yearly, @monthly, @weekly, @daily or @hourly")
        }
        var fields = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 || fields.count == 6 else {
            throw ParseError(message: "the cron expression '\(text.prefix(60))' has \(fields.count) fields; it needs five "
                + "(minute hour day-of-month month day-of-week) or six (with the second first)")
        }
        if fields.count == 5 { fields.insert("0", at: 0) }
        seconds = try Self.field(fields[0], "second", 0...59)
        minutes = try Self.field(fields[1], "minute", 0...59)
        hours = try Self.field(fields[2], "hour", 0...23)
        days = try Self.field(fields[3], "day-of-month", 1...31, wildcard: "?")
        months = try Self.field(fields[4], "month", 1...12, names: Self.monthNames, nameBase: 1)
        let weekdays = try Self.field(fields[5], "day-of-week", 0...7, names: Self.dayNames, nameBase: 0, wildcard: "?")
        self.weekdays = (weekdays | (weekdays >> 7)) & 0x7F  // 7 is Sunday too
        anyDay = fields[3] == "*" || fields[3] == "?"
        anyWeekday = fields[5] == "*" || fields[5] == "?"
    }

    /// The set of values one field allows, as bits.
    private static func field(_ text: String, _ name: String, _ range: ClosedRange<Int>, names: [String] = [], nameBase: Int = 0,
                              wildcard: String = "*") throws(ParseError) -> UInt64 {
        func value(_ s: Substring) throws(ParseError) -> Int {
            if let n = Int(s) {
                guard range.contains(n) else {
                    throw ParseError(message: "the \(name) field '\(text)': \(n) is outside \(range.lowerBound)-\(range.upperBound)")
                }
                return n
            }
            if let i = names.firstIndex(of: s.uppercased()) { return i + nameBase }
            let what = names.isEmpty ? "a number" : "a number or a name (\(names.first!)-\(names.last!))"
            throw ParseError(message: "the \(name) field '\(text)': '\(s.prefix(20))' is not \(what)")
        }
        var bits: UInt64 = 0
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw ParseError(message: "the \(name) field '\(text)' has an empty item") }
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw ParseError(message: "the \(name) field '\(text)': '\(item)' has more than one '/'") }
            var step = 1
            if parts.count == 2 {
                guard let n = Int(parts[1]), n >= 1, n <= range.upperBound + 1 else {
                    throw ParseError(message: "the \(name) field '\(text)': the step '\(parts[1].prefix(20))' must be a number from 1 to \(range.upperBound + 1)")
                }
                step = n
            }
            var low = range.lowerBound, high = range.upperBound
            if parts[0] == "*" || parts[0] == Substring(wildcard) {
                // the whole range
            } else if let dash = parts[0].firstIndex(of: "-") {
                low = try value(parts[0][..<dash])
                high = try value(parts[0][parts[0].index(after: dash)...])
                guard low <= high else {
                    throw ParseError(message: "the \(name) field '\(text)': the range '\(parts[0])' runs backwards; write it as two ranges")
                }
            } else {
                low = try value(parts[0])
                // `a/n` runs from a to the end of the range; a lone value is itself.
                if parts.count == 1 { high = low }
            }
            for v in stride(from: low, through: high, by: step) { bits |= 1 << UInt64(v) }
        }
        return bits
    }

    /// The first tick strictly after `instant` (epoch milliseconds), in `timeZone`; `nil` if the
    /// expression never matches within nine years (`0 0 30 2 *`: February has no 30th).
    public func next(after instant: Int64, in timeZone: TimeZone = Self.utc) -> Int64? {
        let after = instant.floorDivided(by: 1000)  // seconds; ticks fall on whole seconds
        func offset(_ t: Int64) -> Int64 { Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(t)))) }
        var wall = after + offset(after)
        // Wall times only move forward; a few steps pass those a clock change repeated (already
        // passed in their first occurrence).
        for _ in 0..<8 {
            guard let next = nextWall(after: wall) else { return nil }
            wall = next
            // The instant of the wall time under the offset in force a day before and a day after
            // (clocks change at most once a day): the earlier that reads back as this wall time; in
            // a gap a change skipped, none does, and the offset before places it past the change.
            let before = wall - offset(wall - 86_400), later = wall - offset(wall + 86_400)
            let valid = [before, later].filter { $0 + offset($0) == wall }
            let tick = valid.min() ?? before
            if tick > after { return tick * 1000 }
        }
        return nil
    }

    public static let utc = TimeZone(identifier: "UTC")!

    /// The first matching wall time (seconds, as if UTC) strictly after `wall`.
    private func nextWall(after wall: Int64) -> Int64? {
        var t = CivilTime(wall + 1)
        let lastYear = t.year + 9
        while t.year <= lastYear {
            if months & (1 << UInt64(t.month)) == 0 {
                t = CivilTime(year: t.month == 12 ? t.year + 1 : t.year, month: t.month % 12 + 1, day: 1)
                continue
            }
            if !dayMatches(t) {
                t = CivilTime(t.midnight + 86_400)
                continue
            }
            if hours & (1 << UInt64(t.hour)) == 0 {
                t = CivilTime(t.midnight + Int64(t.hour + 1) * 3600)
                continue
            }
            if minutes & (1 << UInt64(t.minute)) == 0 {
                t = CivilTime(t.midnight + Int64(t.hour) * 3600 + Int64(t.minute + 1) * 60)
                continue
            }
            if seconds & (1 << UInt64(t.second)) == 0 {
                t = CivilTime(t.seconds + 1)
                continue
            }
            return t.seconds
        }
        return nil
    }

    private func dayMatches(_ t: CivilTime) -> Bool {
        let day = days & (1 << UInt64(t.day)) != 0
        let weekday = weekdays & (1 << UInt64(t.weekday)) != 0
        switch (anyDay, anyWeekday) {
        case (true, true): return true
        case (false, true): return day
        case (true, false): return weekday
        case (false, false): return day || weekday
        }
    }
}

/// A wall-clock time, in seconds since 1970 as if it were UTC, and its calendar fields (the
/// proleptic Gregorian calendar; Howard Hinnant's days-from-civil).
struct CivilTime {
    let seconds: Int64
    let year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int
    /// 0 is Sunday.
    let weekday: Int

    var midnight: Int64 { seconds - Int64(hour * 3600 + minute * 60 + second) }

    init(_ seconds: Int64) {
        self.seconds = seconds
        let days = seconds.floorDivided(by: 86_400)
        let rest = Int(seconds - days * 86_400)
        (hour, minute, second) = (rest / 3600, rest % 3600 / 60, rest % 60)
        weekday = Int((days + 4).floorModulo(7))  // 1970-01-01 was a Thursday
        let z = days + 719_468
        let era = z.floorDivided(by: 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        day = Int(doy - (153 * mp + 2) / 5 + 1)
        month = Int(mp < 10 ? mp + 3 : mp - 9)
        year = Int(yoe + era * 400 + (month <= 2 ? 1 : 0))
    }

    init(year: Int, month: Int, day: Int) {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = y.floorDivided(by: 400)
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        self.init((era * 146_097 + doe - 719_468) * 86_400)
    }
}

extension Int64 {
    func floorDivided(by d: Int64) -> Int64 {
        let q = self / d
        return (self % d != 0 && (self < 0) != (d < 0)) ? q - 1 : q
    }

    func floorModulo(_ d: Int64) -> Int64 { self - floorDivided(by: d) * d }
}
