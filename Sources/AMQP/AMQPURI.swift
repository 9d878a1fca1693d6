/// The parts of an AMQP URI: `amqp://user:pass@host:port/vhost?heartbeat=10`.
///
/// Follows RabbitMQ's URI specification: user, password and vhost are percent-decoded, so the
/// default vhost `/` is written `%2f`; `amqps://` selects TLS and port 5671. An empty path means
/// the default vhost `/`. Query parameters understood: `heartbeat` (seconds),
/// `connection_timeout` (milliseconds), `channel_max`, `frame_max`, and for TLS `cacertfile`,
/// `certfile`, `keyfile`, `verify` (`verify_peer` or `verify_none`), `auth_mechanism`
/// (`plain` or `external`).
///
/// ```swift
/// let uri = try AMQPURI("amqp://guest:guest@localhost:5672/%2f")
/// ```
public struct AMQPURI: Sendable, Equatable, CustomStringConvertible {
    /// `true` for `amqps://`.
    public var tls: Bool
    public var host: String
    public var port: Int
    public var user: String
    public var password: String
    public var vhost: String
    /// Query parameters, decoded, for the configuration to apply.
    public var query: [String: String]

    /// Parses `text`, or throws ``AMQPError/Code/invalidURI`` saying which part is wrong.
    public init(_ text: String) throws(AMQPError) {
        func fail(_ why: String) -> AMQPError {
            AMQPError(.invalidURI, "invalid AMQP URI '\(AMQPURI.redacted(text))': \(why)")
        }
        var rest: Substring
        if text.hasPrefix("amqp://") {
            tls = false; rest = text.dropFirst(7)
        } else if text.hasPrefix("amqps://") {
            tls = true; rest = text.dropFirst(8)
        } else {
            throw fail("the scheme must be amqp:// or amqps://")
        }
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        var queryText: Substring = ""
        if let q = rest.firstIndex(of: "?") { queryText = rest[rest.index(after: q)...]; rest = rest[..<q] }
        var pathText: Substring? = nil
        if let slash = rest.firstIndex(of: "/") { pathText = rest[rest.index(after: slash)...]; rest = rest[..<slash] }
        var authority = rest
        user = "guest"; password = "guest"
        if let at = authority.lastIndex(of: "@") {
            let userinfo = authority[..<at]
            authority = authority[authority.index(after: at)...]
            let parts = userinfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard let u = AMQPURI.percentDecode(parts[0]) else { throw fail("the user name has a bad percent-escape") }
            user = u
            if parts.count == 2 {
                guard let p = AMQPURI.percentDecode(parts[1]) else { throw fail("the password has a bad percent-escape") }
                password = p
            }
        }
        var portText: Substring? = nil
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw fail("an IPv6 host needs a closing ']'") }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw fail("unexpected text after the IPv6 host") }
                portText = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            portText = authority[authority.index(after: colon)...]
        } else {
            host = String(authority)
        }
        guard let decodedHost = AMQPURI.percentDecode(Substring(host)) else { throw fail("the host has a bad percent-escape") }
        host = decodedHost.isEmpty ? "localhost" : decodedHost
        port = tls ? 5671 : 5672
        if let portText, !portText.isEmpty {
            guard let p = Int(portText), (1...65535).contains(p) else {
                throw fail("the port '\(portText)' is not a number from 1 to 65535")
            }
            port = p
        }
        vhost = "/"
        if let pathText, !pathText.isEmpty {
            guard !pathText.contains("/") else {
                throw fail("the vhost must be one path segment; write a '/' inside it as %2f")
            }
            guard let v = AMQPURI.percentDecode(pathText) else { throw fail("the vhost has a bad percent-escape") }
            vhost = v
        }
        query = [:]
        for pair in queryText.split(separator: "&") where !pair.isEmpty {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let k = AMQPURI.percentDecode(kv[0]),
                  let v = AMQPURI.percentDecode(kv.count == 2 ? kv[1] : "") else {
                throw fail("the query has a bad percent-escape")
            }
            query[k] = v
        }
    }

    /// The URI with the password hidden, for logs and errors.
    public var description: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return "\(tls ? "amqps" : "amqp")://\(user):***@\(h):\(port)/\(vhost == "/" ? "%2f" : vhost)"
    }

    /// Hides the password of a URI that may not even parse.
    static func redacted(_ text: String) -> String {
        guard let schemeEnd = text.range(of: "://"), let at = text.lastIndex(of: "@"),
              at > schemeEnd.upperBound else { return text }
        let userinfo = text[schemeEnd.upperBound..<at]
        guard let colon = userinfo.firstIndex(of: ":") else { return text }
        return String(text[..<colon]) + ":***" + String(text[at...])
    }

    static func percentDecode(_ s: Substring) -> String? {
        guard s.contains("%") else { return String(s) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(s.utf8.count)
        var it = s.utf8.makeIterator()
        while let b = it.next() {
            if b == UInt8(ascii: "%") {
                guard let h = it.next(), let l = it.next(), let hv = hexValue(h), let lv = hexValue(l) else { return nil }
                bytes.append(hv << 4 | lv)
            } else {
                bytes.append(b)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
