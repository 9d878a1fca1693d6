/// A version of a workflow function's code, as `Warren.register(_:version:_:)` names it: a
/// workflow records the version it started under, and its tasks go only to workers that serve
/// that version (docs/workflows.md#code-versions).
///
/// The first run of a workflow whose function has versions records a marker promise,
/// `<workflow>.warren:code`, resolved with `{"function":"refund","version":2}`; the orchestrator
/// routes every later execute message of that workflow to `execute.<group>,refund,v2`, which
/// only workers that serve version 2 of `refund` consume.
public struct CodeVersion: Sendable, Hashable, CustomStringConvertible {
    public let function: String
    public let version: Int

    /// The longest function name a version can be registered for, in bytes: its queue's name
    /// (`<prefix>.group.<group>,<function>,v<n>`) must fit AMQP's 255.
    public static let maximumFunctionLength = 64

    /// A version, if `function` is a name a queue can carry (letters, digits and `-_.:/@+=~`, at
    /// most ``maximumFunctionLength`` bytes) and `version` is at least 1.
    public init?(function: String, version: Int) {
        guard version >= 1, version <= Int(Int32.max), !function.isEmpty, function.utf8.count <= Self.maximumFunctionLength,
              function.utf8.allSatisfy(Self.isAllowed) else { return nil }
        self.function = function
        self.version = version
    }

    /// Why `function` and `version` make no code version, for a worker's configuration error.
    public static func problem(function: String, version: Int) -> String? {
        if version < 1 || version > Int(Int32.max) { return "a code version is a number from 1 to \(Int32.max), not \(version)" }
        if function.isEmpty { return "a versioned function needs a name" }
        if function.utf8.count > maximumFunctionLength {
            return "the function name '\(function.prefix(40))…' is \(function.utf8.count) bytes; a versioned function's name may have \(maximumFunctionLength)"
        }
        if !function.utf8.allSatisfy(isAllowed) {
            return "the function name '\(function)' of a versioned function may use only letters, digits and -_.:/@+=~"
        }
        return nil
    }

    private static func isAllowed(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: "-_.:/@+=~".utf8.contains(c)
        }
    }

    /// `refund v2`.
    public var description: String { "\(function) v\(version)" }

    /// What routing keys and queue names append: `,refund,v2`.
    var suffix: String { ",\(function),v\(version)" }

    /// The id of the marker promise that records a workflow's code version.
    public static func markerID(of workflow: String) -> String { workflow + ".warren:code" }

    /// The `warren:kind` tag of the marker.
    public static let markerKind = "code"

    /// The marker's value: `{"function":"refund","version":2}`.
    public var markerValue: String {
        "{\"function\":\(JSONValue.quote(function)),\"version\":\(version)}"
    }

    /// The code version workflow `id` recorded, if its history (the promises below it) has the marker.
    public static func recorded(by id: String, in history: [PromiseRecord]) -> CodeVersion? {
        let marker = markerID(of: id)
        return history.first(where: { $0.id == marker }).flatMap(CodeVersion.init(marker:))
    }

    /// The version a marker promise records, if it is one.
    public init?(marker: PromiseRecord) {
        guard marker.tags[PromiseRecord.kindTag] == Self.markerKind, let data = marker.value.data,
              let fields = (try? JSONValue.parse(data))?.objectValue,
              let function = fields["function"]?.stringValue, case .int(let n)? = fields["version"] else { return nil }
        self.init(function: function, version: Int(n))
    }
}
