import Foundation
import WarrenKernel
import WarrenStore

/// What a bearer token may do on the HTTP API.
public enum AccessScope: String, Sendable, CaseIterable {
    /// Everything, the operator's routes (`/tasks`, `/outbox`) included.
    case admin
    /// Start workflows and read them; create promises.
    case workflows
    /// See the promises workflows wait on for the outside world, and settle them.
    case approve
}

/// A named bearer token and its scopes. Several may be configured at once, so a token can be
/// rotated: add the new one, move the callers, remove the old one.
public struct AccessToken: Sendable {
    public var name: String
    public var scopes: Set<AccessScope>
    let secret: [UInt8]

    public init(name: String, scopes: Set<AccessScope>, secret: String) {
        self.name = name
        self.scopes = scopes
        self.secret = Array(secret.utf8)
    }

    /// Tokens from text: one per line (or separated by `;`), `NAME SCOPE[,SCOPE] SECRET`;
    /// `#` starts a comment. Secrets have at least 16 characters.
    ///
    /// ```
    /// # name     scopes              secret
    /// ops        admin               3q8v…(from your secret store)
    /// gateway    workflows           k2Zp…
    /// approvers  approve             Yx7t…
    /// ```
    public static func parse(_ text: String) throws -> [AccessToken] {
        var tokens: [AccessToken] = []
        for (n, raw) in text.split(whereSeparator: { $0 == "\n" || $0 == ";" }).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if fields.isEmpty { continue }
            guard fields.count == 3 else {
                throw OrchestratorError("token entry \(n + 1): expected 'NAME SCOPE[,SCOPE] SECRET', found \(fields.count) fields")
            }
            var scopes: Set<AccessScope> = []
            for s in fields[1].split(separator: ",") {
                guard let scope = AccessScope(rawValue: String(s)) else {
                    throw OrchestratorError("token '\(fields[0])': unknown scope '\(s)'; use admin, workflows or approve")
                }
                scopes.insert(scope)
            }
            guard fields[2].utf8.count >= 16 else {
                throw OrchestratorError("token '\(fields[0])': the secret must have at least 16 characters")
            }
            guard !tokens.contains(where: { $0.name == fields[0] }) else { throw OrchestratorError("token '\(fields[0])' is named twice") }
            tokens.append(AccessToken(name: fields[0], scopes: scopes, secret: fields[2]))
        }
        return tokens
    }
}

/// Who may call which route. With no tokens configured the API is open, which `warren serve`
/// allows only on a loopback address (or with `--insecure`).
struct AccessPolicy: Sendable {
    let tokens: [AccessToken]
    /// `GET /ready` answers without a token (for load balancers and orchestrators' probes).
    let openReady: Bool

    /// Host names (without port) the API answers to; empty for any. An open API on loopback
    /// answers only to loopback names, so that a web page cannot reach it through DNS rebinding.
    var allowedHosts: Set<String> = []
    /// Origins (`scheme://host[:port]`) whose pages may call the API besides its own.
    var allowedOrigins: Set<String> = []

    var isOpen: Bool { tokens.isEmpty }

    /// Refuses (403) a request whose `Host` is not one the API answers to, or that comes from a
    /// page of another origin (a browser's `Origin`), unless that origin is allowed.
    func checkHostAndOrigin(host: String?, origin: String?) throws(HTTPProblem) {
        let hostName = host.map(Self.hostName(ofAuthority:))
        if !allowedHosts.isEmpty {
            guard let hostName, allowedHosts.contains(hostName) else {
                throw HTTPProblem(.forbidden, "forbidden", "the Host '\(host ?? "")' is not one this API answers to "
                    + "(--allowed-hosts; on an open API, loopback names only)")
            }
        }
        guard let origin else { return }  // not a browser, or a same-origin GET
        if allowedOrigins.contains(origin) { return }
        // A page of the API's own origin (the approval page) may call it.
        let originAuthority = origin.split(separator: "/", omittingEmptySubsequences: true).dropFirst().first.map(String.init) ?? ""
        if let host, originAuthority.lowercased() == host.lowercased() { return }
        throw HTTPProblem(.forbidden, "forbidden", "requests from pages of '\(origin)' are not allowed (--allowed-origins)")
    }

    /// `example.com` from `example.com:8001`, `[::1]` from `[::1]:8001`.
    static func hostName(ofAuthority authority: String) -> String {
        let a = authority.lowercased()
        if a.hasPrefix("["), let end = a.firstIndex(of: "]") { return String(a[...end]) }
        return a.split(separator: ":", maxSplits: 1).first.map(String.init) ?? a
    }

    /// Who the caller is: the token its `Authorization: Bearer …` names, `nil` when the API is
    /// open; throws 401 when a token is needed and missing or unknown.
    func caller(authorization: String?) throws(HTTPProblem) -> AccessToken? {
        if isOpen { return nil }
        guard let authorization, authorization.lowercased().hasPrefix("bearer ") else {
            throw HTTPProblem(.unauthorized, "unauthorized", "this route needs a token: send 'Authorization: Bearer <token>'")
        }
        let presented = Array(authorization.dropFirst("bearer ".count).trimmingCharacters(in: .whitespaces).utf8)
        // Every token is compared in full, whatever matches, so timing says nothing of the secrets.
        var found: AccessToken? = nil
        for token in tokens where Self.constantTimeEqual(token.secret, presented) { found = token }
        guard let found else { throw HTTPProblem(.unauthorized, "unauthorized", "the token is not valid") }
        return found
    }

    /// Refuses (403) a caller without one of `scopes`; an open API lets everyone through.
    func require(_ caller: AccessToken?, _ scopes: Set<AccessScope>, for what: String) throws(HTTPProblem) {
        guard !isOpen, let caller else { return }
        if caller.scopes.contains(.admin) || !caller.scopes.isDisjoint(with: scopes) { return }
        throw HTTPProblem(.forbidden, "forbidden", "the token '\(caller.name)' may not \(what) (it needs the scope "
            + scopes.map(\.rawValue).sorted().joined(separator: " or ") + ")")
    }

    /// Whether the caller may see only public promises (an `approve`-only token).
    func seesPublicOnly(_ caller: AccessToken?) -> Bool {
        guard let caller else { return false }
        return !caller.scopes.contains(.admin) && !caller.scopes.contains(.workflows)
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }

    /// Whether `host` is a loopback address, where an open API is allowed.
    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// The names an open API on loopback answers to.
    static let loopbackNames: Set<String> = ["localhost", "127.0.0.1", "[::1]"]
}

import NIOCore
import Synchronization

/// Caps the HTTP server's open connections: one past the cap is closed as soon as it is
/// accepted, so that a client holding many sockets open cannot starve the others (idle ones are
/// closed after the idle timeout).
final class ConnectionLimiter: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = NIOAny

    private let open: Counter
    private let maximum: Int
    private let counted = Atomic<Bool>(false)
    private let over = Atomic<Bool>(false)

    /// The count one server's limiters share.
    final class Counter: Sendable {
        let value = Atomic<Int>(0)
        init() {}
    }

    init(sharing open: Counter, maximum: Int) {
        self.open = open
        self.maximum = maximum
    }

    func handlerAdded(context: ChannelHandlerContext) {
        counted.store(true, ordering: .relaxed)
        let over = open.value.add(1, ordering: .relaxed).newValue > maximum
        self.over.store(over, ordering: .relaxed)
        // Added while the pipeline is set up, before the channel is active: close it once active.
        if over, context.channel.isActive { context.close(promise: nil) }
    }

    func channelActive(context: ChannelHandlerContext) {
        if over.load(ordering: .relaxed) {
            context.close(promise: nil)
            return
        }
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if counted.exchange(false, ordering: .relaxed) { open.value.subtract(1, ordering: .relaxed) }
    }
}
