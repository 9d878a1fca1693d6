/// One broker's address.
public struct AMQPEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// The parts of an AMQP URI: `amqp://user:pass@host:port/vhost?heartbeat=10`.
///
/// Follows RabbitMQ's URI specification: user, password and vhost are percent-decoded, so the
/// default vhost `/` is written `%2f`; `amqps://` selects TLS and port 5671. Several brokers of
/// one cluster may be named, comma-separated: `amqp://u:p@node1:5672,node2:5672,node3/%2f`. An empty path means
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
    /// Every broker the URI names, the first (`host`, `port`) included: `amqp://u:p@a:5672,b:5673/%2f`.
    public var endpoints: [AMQPEndpoint]
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
        // Several brokers of one cluster: `host1:5672,host2:5673` (the first is tried first).
        endpoints = []
        let parts = authority.split(separator: ",", omittingEmptySubsequences: false)
        for part in parts {
            // `amqp://h1,,h2` is a typo, not a broker on localhost.
            if parts.count > 1, part.isEmpty { throw fail("the host list has an empty entry") }
            endpoints.append(try AMQPURI.endpoint(part, tls: tls, fail: fail))
        }
        host = endpoints[0].host
        port = endpoints[0].port
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

    /// One URI naming the brokers of several (`--amqp-url` given once per node): they must agree
    /// on everything but the host and port.
    public static func merge(_ urls: [String]) throws(AMQPError) -> String {
        guard let first = urls.first else { throw AMQPError(.invalidURI, "no AMQP URI given") }
        if urls.count == 1 { return first }
        let base = try AMQPURI(first)
        var hosts: [String] = []
        for url in urls {
            let uri = try AMQPURI(url)
            guard uri.tls == base.tls, uri.user == base.user, uri.password == base.password, uri.vhost == base.vhost, uri.query == base.query else {
                throw AMQPError(.invalidURI, "the AMQP URIs '\(uri)' and '\(base)' name different users, vhosts, schemes or options; "
                    + "the brokers of one cluster share them")
            }
            hosts += uri.endpoints.map(\.description)
        }
        // The first URI with its hosts replaced by all of them.
        let afterScheme = first.range(of: "://")!.upperBound
        let authorityEnd = first[afterScheme...].firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? first.endIndex
        let hostStart = first[afterScheme..<authorityEnd].lastIndex(of: "@").map { first.index(after: $0) } ?? afterScheme
        return String(first[..<hostStart]) + hosts.joined(separator: ",") + String(first[authorityEnd...])
    }

    /// One `host[:port]` (or `[v6]:port`) of the authority.
    static func endpoint(_ text: Substring, tls: Bool, fail: (String) -> AMQPError) throws(AMQPError) -> AMQPEndpoint {
        var host: String
        var portText: Substring? = nil
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw fail("an IPv6 host needs a closing ']'") }
            host = String(text[text.index(after: text.startIndex)..<close])
            let after = text[text.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw fail("unexpected text after the IPv6 host") }
                portText = after.dropFirst()
            }
        } else if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            portText = text[text.index(after: colon)...]
        } else {
            host = String(text)
        }
        guard let decodedHost = AMQPURI.percentDecode(Substring(host)) else { throw fail("the host has a bad percent-escape") }
        host = decodedHost.isEmpty ? "localhost" : decodedHost
        var port = tls ? 5671 : 5672
        if let portText, !portText.isEmpty {
            guard let p = Int(portText), (1...65535).contains(p) else {
                throw fail("the port '\(portText)' is not a number from 1 to 65535")
            }
            port = p
        }
        return AMQPEndpoint(host: host, port: port)
    }

    /// The URI with the password hidden, for logs and errors.
    public var description: String {
        "\(tls ? "amqps" : "amqp")://\(user):***@\(endpoints.map(\.description).joined(separator: ","))/\(vhost == "/" ? "%2f" : vhost)"
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
