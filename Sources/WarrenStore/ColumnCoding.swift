/// How maps and lists are kept in one text column, by every backend: JSON text (`nil` for an
/// empty map).
public enum ColumnCoding {
    public static func encodeMap(_ map: [String: String]) -> String? {
        map.isEmpty ? nil : JSONValue.object(map)
    }

    public static func decodeMap(_ text: String?) -> [String: String] {
        guard let text, case .object(let o)? = try? JSONValue.parse(text) else { return [:] }
        return o.compactMapValues(\.stringValue)
    }

    public static func encodeList(_ list: [String]) -> String? {
        JSONValue.array(list.map { .string($0) }).jsonText
    }

    public static func decodeList(_ text: String?) -> [String] {
        guard let text, case .array(let a)? = try? JSONValue.parse(text) else { return [] }
        return a.compactMap(\.stringValue)
    }
}

extension PromiseState {
    /// The compact code a backend stores.
    public var code: Int {
        switch self {
        case .pending: 0
        case .resolved: 1
        case .rejected: 2
        case .rejectedCanceled: 3
        case .rejectedTimedout: 4
        }
    }

    public init?(code: Int) {
        switch code {
        case 0: self = .pending
        case 1: self = .resolved
        case 2: self = .rejected
        case 3: self = .rejectedCanceled
        case 4: self = .rejectedTimedout
        default: return nil
        }
    }
}
