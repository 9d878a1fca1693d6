/// Limits on what the store accepts, checked before anything is written.
///
/// They follow from the message contract: every routing key Warren builds from an id or a group
/// (`settled.<id>`, `execute.<group>`, `<prefix>.group.<group>`) must fit AMQP's 255-byte short
/// string, and every message it sends must fit the broker's `max_message_size`.
public struct StoreLimits: Sendable, Equatable {
    /// The longest promise id, in bytes (`settled.` + 240 fits 255).
    public var maximumIDLength = 240
    /// The longest worker group name, in bytes (`<prefix>.group.` + 128 fits 255 for a prefix of
    /// up to 120 bytes).
    public var maximumGroupLength = 128
    /// The longest id pattern of a search, in bytes.
    public var maximumPatternLength = 255
    /// The most bytes of promises (params and values) one search page holds; a page stops early
    /// (with a cursor) rather than exceed it.
    public var maximumPageBytes = 4 << 20
    /// The largest param or value (data plus headers), in bytes.
    public var maximumPayloadBytes = 1 << 20
    /// The most tags on one promise, and the longest tag key or value.
    public var maximumTags = 64
    public var maximumTagLength = 255
    /// The longest idempotency key.
    public var maximumKeyLength = 255

    public init() {}

    public static let `default` = StoreLimits()

    /// Ids use letters, digits and `-_.:/@+=~`; a `.` separates a child from its parent.
    public static func isAllowedIDCharacter(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "-_.:/@+=~".utf8.contains(c)
        }
    }

    public func validateID(_ id: String, _ what: String = "promise id") throws(StoreError) {
        if id.isEmpty { throw StoreError(.invalidID, "the \(what) is empty") }
        if id.utf8.count > maximumIDLength {
            throw StoreError(.invalidID, "the \(what) is \(id.utf8.count) bytes long; the limit is \(maximumIDLength)")
        }
        if let bad = id.utf8.first(where: { !Self.isAllowedIDCharacter($0) }) {
            throw StoreError(.invalidID, "the \(what) '\(id.prefix(64))' has the character \(describe(bad)); "
                + "ids use letters, digits and -_.:/@+=~")
        }
        if id.hasPrefix(".") || id.hasSuffix(".") || id.contains("..") {
            throw StoreError(.invalidID, "the \(what) '\(id.prefix(64))' has an empty segment between dots")
        }
    }

    public func validateGroup(_ group: String) throws(StoreError) {
        try validateID(group, "task group")
        if group.utf8.count > maximumGroupLength {
            throw StoreError(.invalidID, "the task group is \(group.utf8.count) bytes long; the limit is \(maximumGroupLength)")
        }
    }

    /// Everything a create can be refused for before the store is read.
    public func validateCreate(_ r: CreatePromise) throws(StoreError) {
        try validateID(r.id)
        try validateKey(r.idempotencyKey, "idempotency key")
        try validatePayload(r.param, "param")
        try validateTags(r.tags)
        if let g = r.taskGroup { try validateGroup(g) }
    }

    /// Everything a settle can be refused for before the store is read.
    public func validateSettle(_ r: SettlePromise) throws(StoreError) {
        try validateID(r.id)
        try validateKey(r.idempotencyKey, "idempotency key")
        try validatePayload(r.value, "value")
    }

    public func validateSearch(_ s: PromiseSearch) throws(StoreError) {
        guard (1...PromiseSearch.maximumLimit).contains(s.limit) else {
            throw StoreError(.invalidArgument, "the search limit \(s.limit) must be from 1 to \(PromiseSearch.maximumLimit)")
        }
        guard !s.id.isEmpty, s.id.utf8.allSatisfy({ $0 == UInt8(ascii: "*") || Self.isAllowedIDCharacter($0) }) else {
            throw StoreError(.invalidID, "the id pattern '\(s.id.prefix(64))' may hold id characters and '*' only")
        }
        if s.id.utf8.count > maximumPatternLength {
            throw StoreError(.invalidArgument, "the id pattern is \(s.id.utf8.count) bytes long; the limit is \(maximumPatternLength)")
        }
        if s.tags.count > maximumTags {
            throw StoreError(.invalidArgument, "the search names \(s.tags.count) tags; the limit is \(maximumTags)")
        }
        for (k, v) in s.tags where k.utf8.count > maximumTagLength || v.utf8.count > maximumTagLength {
            throw StoreError(.invalidArgument, "the search tag '\(k.prefix(64))' is longer than \(maximumTagLength) bytes")
        }
        if let c = s.cursor, c.utf8.count > maximumIDLength {
            throw StoreError(.invalidArgument, "the cursor is \(c.utf8.count) bytes long; the limit is \(maximumIDLength)")
        }
    }

    public func validateKey(_ key: String?, _ what: String) throws(StoreError) {
        guard let key else { return }
        if key.isEmpty { throw StoreError(.invalidID, "the \(what) is empty; omit it instead") }
        if key.utf8.count > maximumKeyLength {
            throw StoreError(.invalidID, "the \(what) is \(key.utf8.count) bytes long; the limit is \(maximumKeyLength)")
        }
    }

    public func validatePayload(_ value: PromiseValue, _ what: String) throws(StoreError) {
        if value.byteCount > maximumPayloadBytes {
            throw StoreError(.payloadTooLarge, "the \(what) is \(value.byteCount) bytes; the limit is \(maximumPayloadBytes) "
                + "(store large data elsewhere and pass a reference)")
        }
    }

    public func validateTags(_ tags: [String: String]) throws(StoreError) {
        if tags.count > maximumTags {
            throw StoreError(.invalidArgument, "a promise has \(tags.count) tags; the limit is \(maximumTags)")
        }
        for (k, v) in tags {
            if k.isEmpty { throw StoreError(.invalidID, "a tag key is empty") }
            if k.utf8.count > maximumTagLength || v.utf8.count > maximumTagLength {
                throw StoreError(.invalidID, "the tag '\(k.prefix(64))' is longer than \(maximumTagLength) bytes")
            }
        }
    }

    private func describe(_ c: UInt8) -> String {
        (0x21...0x7E).contains(c) ? "'\(Character(Unicode.Scalar(c)))'" : String(format: "0x%02X", c)
    }
}

#if canImport(Foundation)
import Foundation
#endif
