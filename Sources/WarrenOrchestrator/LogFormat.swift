import Foundation
import Logging
import WarrenContract

/// How `warren serve` writes its log (`--log-format`): text for people, or one JSON object per
/// line for log shippers. Both go through ``Redacting``: no credential in a URL reaches the log.
public enum LogFormat: String, Sendable, CaseIterable {
    case text, json

    /// A handler for `label` in this format, at `level`, on standard error.
    public func handler(label: String, level: Logger.Level) -> any LogHandler {
        switch self {
        case .text:
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return Redacting(h)
        case .json:
            var h = JSONLogHandler(label: label)
            h.logLevel = level
            return Redacting(h)
        }
    }
}

/// One JSON object per line: `time` (ISO 8601, milliseconds, UTC), `level`, `label`, `message`,
/// and the metadata's fields beside them (a field named like one of those is prefixed `meta.`).
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public var metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider
    let label: String
    private static let lock = NSLock()

    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { _, new in new } }
        if let m = event.metadata { fields.merge(m) { _, new in new } }
        var out = "{\"time\":"
        JSONValue.quote(Self.timestamp(), into: &out)
        out += ",\"level\":"
        JSONValue.quote(event.level.rawValue, into: &out)
        out += ",\"label\":"
        JSONValue.quote(label, into: &out)
        out += ",\"message\":"
        JSONValue.quote(event.message.description, into: &out)
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            out += ","
            JSONValue.quote(["time", "level", "label", "message"].contains(key) ? "meta." + key : key, into: &out)
            out += ":"
            Self.write(value, into: &out)
        }
        out += "}\n"
        Self.lock.lock()
        FileHandle.standardError.write(Data(out.utf8))
        Self.lock.unlock()
    }

    static func write(_ value: Logger.Metadata.Value, into out: inout String) {
        switch value {
        case .string(let s): JSONValue.quote(s, into: &out)
        case .stringConvertible(let c): JSONValue.quote(c.description, into: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                write(item, into: &out)
            }
            out += "]"
        case .dictionary(let d):
            out += "{"
            for (i, (k, v)) in d.sorted(by: { $0.key < $1.key }).enumerated() {
                if i > 0 { out += "," }
                JSONValue.quote(k, into: &out)
                out += ":"
                write(v, into: &out)
            }
            out += "}"
        }
    }

    private static func timestamp() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date())
    }
}

/// Takes the password out of every URL in a log line's message and metadata
/// (`amqp://warren:secret@host` → `amqp://warren:***@host`), whatever logged it.
public struct Redacting<Inner: LogHandler>: LogHandler {
    var inner: Inner

    public init(_ inner: Inner) { self.inner = inner }

    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }
    public var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }
    public var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        var e = event
        e.message = Logger.Message(stringLiteral: Self.redact(event.message.description))
        e.metadata = event.metadata?.mapValues(Self.redact)
        inner.log(event: e)
    }

    static func redact(_ v: Logger.Metadata.Value) -> Logger.Metadata.Value {
        switch v {
        case .string(let s): .string(redact(s))
        case .stringConvertible(let c): .string(redact(c.description))
        case .array(let a): .array(a.map(redact))
        case .dictionary(let d): .dictionary(d.mapValues(redact))
        }
    }

    /// `scheme://user:password@` → `scheme://user:***@`, everywhere in `text`.
    public static func redact(_ text: String) -> String {
        guard text.contains("://"), text.contains("@") else { return text }
        var out = ""
        var rest = Substring(text)
        while let scheme = rest.range(of: "://") {
            out += rest[..<scheme.upperBound]
            rest = rest[scheme.upperBound...]
            // The authority ends at the first '/', '?', '#' or whitespace; its userinfo at its last '@'.
            let end = rest.firstIndex(where: { "/?# \t\n\"'".contains($0) }) ?? rest.endIndex
            let authority = rest[..<end]
            if let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") {
                out += authority[...colon] + "***" + authority[at...]
            } else {
                out += authority
            }
            rest = rest[end...]
        }
        return out + rest
    }
}
