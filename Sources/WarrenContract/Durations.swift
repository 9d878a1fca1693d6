/// Durations as the message contract, the CLI and the configuration write them: a positive
/// whole number and a unit, `500ms`, `90s`, `15m`, `24h`, `7d`.
public enum Durations {
    /// The milliseconds in `text`, or `nil` if it is not such a duration (or is too long to add
    /// to an epoch time without overflow).
    public static func milliseconds(in text: String) -> Int64? {
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            guard let n = Int64(text.dropLast(suffix.count)), n > 0, n <= Int64.max / factor / 2 else { return nil }
            return n * factor
        }
        return nil
    }

    /// The duration string of `milliseconds`, in the largest unit that divides it (`90000` is `90s`).
    public static func text(milliseconds: Int64) -> String {
        for (suffix, factor) in units.reversed() where milliseconds % factor == 0 && milliseconds >= factor {
            return "\(milliseconds / factor)\(suffix)"
        }
        return "\(milliseconds)ms"
    }

    /// Longest suffix first where one ends another (`ms` before `s`).
    private static let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]

    /// What a bad duration is told it should look like.
    public static let example = "a duration such as \"90s\", \"15m\", \"24h\" or \"7d\""
}
