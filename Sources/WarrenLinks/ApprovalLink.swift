import Crypto
import Foundation

/// A key that signs approval links: its id, named in every link so that keys can be rotated
/// (sign with the new one, keep accepting the old one until its links expired), and its secret.
public struct LinkKey: Sendable {
    /// The key's id: 1 to 32 of `A-Z a-z 0-9 - _`.
    public let id: String
    let secret: SymmetricKey

    /// - Throws: ``LinkError`` when the id is not 1 to 32 of `A-Z a-z 0-9 - _`, or the secret has
    ///   fewer than 16 bytes.
    public init(id: String, secret: String) throws(LinkError) {
        guard (1...32).contains(id.utf8.count), id.utf8.allSatisfy(Self.isIDByte) else {
            throw LinkError(.invalid, "a link key's id must be 1 to 32 of A-Z a-z 0-9 - _, not '\(id.prefix(40))'")
        }
        guard secret.utf8.count >= 16 else {
            throw LinkError(.invalid, "the link key '\(id)' must have a secret of at least 16 bytes (32 random bytes are best)")
        }
        self.id = id
        self.secret = SymmetricKey(data: Array(secret.utf8))
    }

    /// Keys from text: one per line (or separated by `;`), `KEY-ID SECRET`; `#` starts a comment.
    ///
    /// ```
    /// # key id   secret
    /// 2026-12    4Jc0…(32 random bytes, base64, from your secret store)
    /// 2026-09    Qm9v…
    /// ```
    public static func parse(_ text: String) throws(LinkError) -> [LinkKey] {
        var keys: [LinkKey] = []
        for (n, raw) in text.split(whereSeparator: { $0 == "\n" || $0 == ";" }).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if fields.isEmpty { continue }
            guard fields.count == 2 else {
                throw LinkError(.invalid, "link key entry \(n + 1): expected 'KEY-ID SECRET', found \(fields.count) fields")
            }
            let key = try LinkKey(id: fields[0], secret: fields[1])
            guard !keys.contains(where: { $0.id == key.id }) else { throw LinkError(.invalid, "the link key '\(key.id)' is named twice") }
            keys.append(key)
        }
        return keys
    }

    static func isIDByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == UInt8(ascii: "-") || b == UInt8(ascii: "_")
    }
}

/// Why an approval link is refused.
public struct LinkError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// Malformed: a field is missing or out of its range.
        case invalid
        /// Signed with a key the orchestrator does not hold (never, or no longer).
        case unknownKey
        /// The signature does not match: the link was altered, or forged.
        case badSignature
        /// Its time is over.
        case expired
        /// The outcome asked for is not one the link offers.
        case outcomeNotOffered
    }

    public var code: Code
    public var message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { "\(code.rawValue): \(message)" }
}

/// A signed approval link: it lets whoever holds it settle one promise, with one of the outcomes
/// it offers, until it expires. The signature (HMAC-SHA256) covers the key id, the promise id,
/// the outcomes and the expiry, so none can be changed; opening the link (`GET`) shows a
/// confirmation page and settles nothing, the page's button `POST`s.
///
/// ```
/// https://warren.example.com/approve/refund-7.1?outcomes=approved,rejected&expires=1800000000000&kid=2026-12&sig=…
/// ```
public struct ApprovalLink: Sendable, Equatable {
    /// The promise the link settles.
    public var promiseID: String
    /// What it may settle it with: each resolves the promise with the outcome's name as its value
    /// (`"approved"`), which the workflow reads.
    public var outcomes: [String]
    /// When the link stops working, in epoch milliseconds.
    public var expires: Int64
    /// The key that signed it.
    public var keyID: String
    /// The signature, base64url without padding.
    public var signature: String

    /// The most outcomes a link offers.
    public static let maximumOutcomes = 8

    /// The path of a link on the orchestrator: `/approve/<promise id>`.
    public static let pathPrefix = "/approve/"

    /// Signs a link for `promiseID`.
    /// - Throws: ``LinkError`` when an outcome is not 1 to 32 of `a-z 0-9 - _`, there are none or
    ///   more than ``maximumOutcomes``, or the id is empty.
    public static func sign(promiseID: String, outcomes: [String], expires: Int64, key: LinkKey) throws(LinkError) -> ApprovalLink {
        try check(promiseID: promiseID, outcomes: outcomes)
        let signature = base64URL(Data(HMAC<SHA256>.authenticationCode(for: message(key.id, promiseID, outcomes, expires), using: key.secret)))
        return ApprovalLink(promiseID: promiseID, outcomes: outcomes, expires: expires, keyID: key.id, signature: signature)
    }

    /// The link's URL on the orchestrator at `base` (`https://warren.example.com`).
    public func url(base: String) -> String {
        var base = base
        while base.hasSuffix("/") { base.removeLast() }
        return base + Self.pathPrefix + Self.encodePath(promiseID) + "?" + query
    }

    /// The query part: `outcomes=…&expires=…&kid=…&sig=…`.
    public var query: String {
        "outcomes=\(outcomes.joined(separator: ","))&expires=\(expires)&kid=\(keyID)&sig=\(signature)"
    }

    /// The link a request names: the promise id from its path, the rest from its query.
    public static func parse(promiseID: String, query: [String: String]) throws(LinkError) -> ApprovalLink {
        guard let outcomes = query["outcomes"], let expiresText = query["expires"], let keyID = query["kid"], let signature = query["sig"] else {
            throw LinkError(.invalid, "an approval link carries outcomes, expires, kid and sig; this one is incomplete (copy the whole link)")
        }
        guard let expires = Int64(expiresText), expires > 0 else { throw LinkError(.invalid, "the link's expiry is not a time") }
        let list = outcomes.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        try check(promiseID: promiseID, outcomes: list)
        return ApprovalLink(promiseID: promiseID, outcomes: list, expires: expires, keyID: keyID, signature: signature)
    }

    /// Checks the signature against `keys` and the expiry against `now` (epoch milliseconds).
    public func verify(keys: [LinkKey], now: Int64) throws(LinkError) {
        guard let key = keys.first(where: { $0.id == keyID }) else {
            throw LinkError(.unknownKey, "the link was signed with a key this orchestrator does not hold ('\(keyID.prefix(32))'); ask for a new link")
        }
        // Only the canonical encoding: base64's last character carries spare bits, and a link
        // with them changed is not the link that was signed.
        guard let mac = Self.decodeBase64URL(signature), Self.base64URL(mac) == signature,
              HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Self.message(keyID, promiseID, outcomes, expires), using: key.secret) else {
            throw LinkError(.badSignature, "the link's signature does not match: it was altered or not made by Warren")
        }
        guard now < expires else { throw LinkError(.expired, "the link expired at \(Self.isoDate(expires)); ask for a new link") }
    }

    /// Checks that `outcome` is one the link offers.
    public func check(outcome: String) throws(LinkError) {
        guard outcomes.contains(outcome) else {
            throw LinkError(.outcomeNotOffered, "this link offers \(outcomes.joined(separator: " or ")), not '\(outcome.prefix(40))'")
        }
    }

    // MARK: The parts

    /// What the MAC covers: NUL-separated fields (no field can hold NUL), under a version tag.
    static func message(_ keyID: String, _ promiseID: String, _ outcomes: [String], _ expires: Int64) -> Data {
        Data("warren-approval-link\u{0}v1\u{0}\(keyID)\u{0}\(promiseID)\u{0}\(outcomes.joined(separator: ","))\u{0}\(expires)".utf8)
    }

    static func check(promiseID: String, outcomes: [String]) throws(LinkError) {
        guard !promiseID.isEmpty, promiseID.utf8.count <= 255, !promiseID.utf8.contains(0) else {
            throw LinkError(.invalid, "a link names a promise id of 1 to 255 bytes")
        }
        guard (1...maximumOutcomes).contains(outcomes.count), Set(outcomes).count == outcomes.count else {
            throw LinkError(.invalid, "a link offers 1 to \(maximumOutcomes) different outcomes")
        }
        for o in outcomes {
            guard (1...32).contains(o.utf8.count), o.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F }) else {
                throw LinkError(.invalid, "an outcome is 1 to 32 of a-z 0-9 - _, not '\(o.prefix(40))'")
            }
        }
    }

    /// Percent-encodes an id as one path segment: letters, digits and `-_.~` stay as they are
    /// (a `/` is encoded, so that no browser folds a `..` in an id away).
    static func encodePath(_ id: String) -> String {
        if id == "." || id == ".." { return String(repeating: "%2E", count: id.count) }
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~")
        return id.addingPercentEncoding(withAllowedCharacters: allowed) ?? id
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decodeBase64URL(_ text: String) -> Data? {
        guard text.utf8.count <= 128 else { return nil }
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.utf8.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s)
    }

    static func isoDate(_ millis: Int64) -> String {
        ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
    }
}

/// What makes approval links where promises are made (a worker, a gateway): the orchestrator's
/// public address and the key to sign with. The orchestrator verifies with the keys it holds
/// (`--link-keys-file`), which must include this one.
public struct LinkSigner: Sendable {
    /// The orchestrator's address as the people who open the links reach it: `https://warren.example.com`.
    public var baseURL: String
    public var key: LinkKey

    public init(baseURL: String, key: LinkKey) {
        self.baseURL = baseURL
        self.key = key
    }

    /// The signer the environment describes: `WARREN_LINK_URL` (the orchestrator's public
    /// address) and the key, `KEY-ID SECRET`, in `WARREN_LINK_KEY` or in the file
    /// `WARREN_LINK_KEY_FILE`; `nil` when neither key is set.
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws(LinkError) -> LinkSigner? {
        var text = env["WARREN_LINK_KEY"]
        if text == nil, let file = env["WARREN_LINK_KEY_FILE"] {
            guard let contents = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw LinkError(.invalid, "cannot read the link key file '\(file)' (WARREN_LINK_KEY_FILE)")
            }
            text = contents
        }
        guard let text else { return nil }
        let keys = try LinkKey.parse(text)
        guard keys.count == 1 else { throw LinkError(.invalid, "WARREN_LINK_KEY holds one key, 'KEY-ID SECRET'; it holds \(keys.count)") }
        guard let base = env["WARREN_LINK_URL"], base.hasPrefix("http://") || base.hasPrefix("https://") else {
            throw LinkError(.invalid, "WARREN_LINK_URL must give the orchestrator's address as people reach it (https://…)")
        }
        return LinkSigner(baseURL: base, key: keys[0])
    }

    /// A signed link for `promiseID`, offering `outcomes`, valid until `expires` (epoch milliseconds).
    public func link(promiseID: String, outcomes: [String], expires: Int64) throws(LinkError) -> String {
        try ApprovalLink.sign(promiseID: promiseID, outcomes: outcomes, expires: expires, key: key).url(base: baseURL)
    }
}
