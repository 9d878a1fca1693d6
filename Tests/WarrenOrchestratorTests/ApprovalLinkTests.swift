import Foundation
import Testing
import Warren
import WarrenContract
import WarrenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Signed approval links (issue 10, item 3): made by the SDK, verified by a real `warren serve`,
/// tried the way an attacker and a mail scanner would: forged, altered, expired, replayed,
/// posted cross-site, opened by a GET.
@Suite("Approval links", .serialized)
struct ApprovalLinkTests {
    static let current = try! LinkKey(id: "k2", secret: "current-link-secret-0123456789")
    static let previous = try! LinkKey(id: "k1", secret: "previous-link-secret-0123456789")

    /// `text` with its character at `index` replaced by another base64url character.
    static func flip(_ text: String, at index: Int) -> String {
        var chars = Array(text)
        chars[index] = chars[index] == "A" ? "B" : "A"
        return String(chars)
    }

    static var future: Int64 { Int64(Date().timeIntervalSince1970 * 1000) + 3_600_000 }

    // MARK: Pure: the signature covers every field

    @Test func aLinkVerifiesAndEveryAlterationIsRefused() throws {
        let link = try ApprovalLink.sign(promiseID: "refund-7.1", outcomes: ["approved", "rejected"], expires: Self.future, key: Self.current)
        try link.verify(keys: [Self.current], now: 0)
        func refused(_ altered: ApprovalLink, _ code: LinkError.Code, keys: [LinkKey] = [Self.current], now: Int64 = 0) {
            #expect(throws: LinkError.self) { try altered.verify(keys: keys, now: now) }
            do { try altered.verify(keys: keys, now: now) } catch { #expect(error.code == code, "\(error)") }
        }
        var a = link; a.promiseID = "refund-8.1"; refused(a, .badSignature)
        a = link; a.outcomes = ["approved"]; refused(a, .badSignature)
        a = link; a.outcomes = ["rejected", "approved"]; refused(a, .badSignature)
        a = link; a.expires += 1; refused(a, .badSignature)
        a = link; a.signature = String(a.signature.dropLast()) + (a.signature.hasSuffix("A") ? "B" : "A"); refused(a, .badSignature)
        // A character in the middle, where every bit counts.
        a = link; a.signature = Self.flip(a.signature, at: 10); refused(a, .badSignature)
        a = link; a.signature = "not base64 at all!"; refused(a, .badSignature)
        a = link; a.keyID = "k9"; refused(a, .unknownKey)
        // The same key id with another secret (a forger who guessed the id) fails.
        let forged = try ApprovalLink.sign(promiseID: "refund-7.1", outcomes: ["approved"], expires: Self.future,
                                           key: try LinkKey(id: "k2", secret: "a-guess-at-the-secret-000"))
        refused(forged, .badSignature)
        refused(link, .expired, now: Self.future)
        // Rotation: the old key still verifies while the orchestrator holds it.
        let old = try ApprovalLink.sign(promiseID: "x", outcomes: ["ok"], expires: Self.future, key: Self.previous)
        try old.verify(keys: [Self.current, Self.previous], now: 0)
        refused(old, .unknownKey)
        // Parsing takes back what url() wrote, ids with any allowed character included.
        for id in ["hitl-001.1", "a/b:c@d+e=f~g", ".."] {
            let l = try ApprovalLink.sign(promiseID: id, outcomes: ["approved", "rejected"], expires: 42, key: Self.current)
            let url = try #require(URLComponents(string: l.url(base: "https://warren.example.com/")))
            #expect(url.path.hasPrefix("/approve/") && !url.percentEncodedPath.dropFirst("/approve/".count).contains("/"))
            let decodedID = String(url.percentEncodedPath.dropFirst("/approve/".count)).removingPercentEncoding!
            let query = Dictionary(uniqueKeysWithValues: url.queryItems!.map { ($0.name, $0.value!) })
            #expect(try ApprovalLink.parse(promiseID: decodedID, query: query) == l)
        }
        #expect(throws: LinkError.self) { try ApprovalLink.sign(promiseID: "x", outcomes: ["Approve!"], expires: 1, key: Self.current) }
        #expect(throws: LinkError.self) { try ApprovalLink.sign(promiseID: "x", outcomes: [], expires: 1, key: Self.current) }
        #expect(throws: LinkError.self) { try LinkKey(id: "k", secret: "short") }
        #expect(throws: LinkError.self) { try LinkKey.parse("k1 one-secret-of-enough-length\nk1 another-secret-enough-len") }
    }

    // MARK: Against a real orchestrator

    /// An orchestrator holding both keys, with a worker that signs with the current one.
    func withLinks(_ body: (OrchestratorProcess, WorkerProcess, LinkSigner) async throws -> Void) async throws {
        let orchestrator = OrchestratorProcess(url: try brokerURL())
        let worker = WorkerProcess(prefix: orchestrator.prefix, n: 1)
        let keys = orchestrator.database + ".link-keys"
        try "k2 current-link-secret-0123456789\nk1 previous-link-secret-0123456789\n".write(toFile: keys, atomically: true, encoding: .utf8)
        defer { orchestrator.remove(); worker.remove(); unlink(keys) }
        try await orchestrator.start(["--link-keys-file", keys])
        try worker.start(url: orchestrator.url, prefix: orchestrator.prefix,
                         environment: ["WARREN_LINK_URL": orchestrator.httpURL, "WARREN_LINK_KEY": "k2 current-link-secret-0123456789"])
        do {
            try await body(orchestrator, worker, LinkSigner(baseURL: orchestrator.httpURL, key: Self.current))
        } catch {
            print(orchestrator.logText.suffix(3000), worker.text.suffix(2000))
            throw error
        }
    }

    static func post(_ link: String, _ outcome: String, comment: String? = nil, headers: [String: String] = [:]) async throws -> HTTPAnswer {
        let body = comment.map { #"{"outcome": "\#(outcome)", "comment": "\#($0)"}"# } ?? #"{"outcome": "\#(outcome)"}"#
        return try await http("POST", link, body, headers: headers)
    }

    static func state(_ id: String, _ base: String) async throws -> String? {
        try await http("GET", base + "/promises/" + id).json["state"] as? String
    }

    @Test func aWorkflowsLinkShowsAPageOnGetAndSettlesOnlyOnPostOnce() async throws {
        try await withLinks { orchestrator, worker, _ in
            let base = orchestrator.httpURL
            #expect(try await http("POST", base + "/workflows", #"{"id": "lw-1", "function": "linked-workflow", "args": ["lw-1"], "group": "workers"}"#).status == 201)
            let link = String(try await worker.line(startingWith: "link: ").dropFirst("link: ".count))
            #expect(link.hasPrefix(base + "/approve/lw-1.1?outcomes=approved,rejected&expires="), "\(link)")
            // The link expires with the promise (its timeout), and is the same on every replay.
            let promise = try await http("GET", base + "/promises/lw-1.1")
            #expect(link.contains("expires=\(promise.json["timeout"] as? Int64 ?? -1)&kid=k2&sig="))
            // A GET (a person, a mail scanner, a link preview) shows the decision and settles nothing.
            for _ in 0..<3 {
                let page = try await http("GET", link)
                #expect(page.status == 200 && page.text.contains("Approve lw-1") && page.text.contains(#"data-outcome="approved""#), "\(page.text)")
                #expect(page.headers["content-security-policy"]?.contains("frame-ancestors 'none'") == true)
                #expect(page.headers["referrer-policy"] == "no-referrer" && page.headers["cache-control"] == "no-store")
            }
            #expect(try await Self.state("lw-1.1", base) == "PENDING")
            // A cross-site form post (text/plain, no preflight) and a page of another origin are refused.
            #expect(try await http("POST", link, "outcome=approved", headers: ["content-type": "text/plain"]).status == 415)
            #expect(try await Self.post(link, "approved", headers: ["origin": "https://evil.example"]).status == 403)
            // An outcome the link does not offer.
            let maybe = try await Self.post(link, "maybe")
            #expect(maybe.status == 403 && maybe.errorCode == "outcomeNotOffered", "\(maybe.text)")
            #expect(try await Self.state("lw-1.1", base) == "PENDING")
            // The button's POST settles it, recording who, how and when.
            let settled = try await Self.post(link, "approved", comment: "ship it")
            #expect(settled.status == 200, "\(settled.text)")
            let value = try #require(settled.json["value"] as? [String: Any])
            let headers = try #require(value["headers"] as? [String: String])
            #expect(headers["warren:settled-by"] == "link:k2" && headers["warren:settled-via"] == "link" && headers["comment"] == "ship it")
            #expect(Int64(headers["warren:settled-on"] ?? "") ?? 0 > 0)
            #expect(value["data"] as? String == b64(#""approved""#))
            let done = try await settledWorkflow("lw-1", at: base)
            #expect(done.json["result"] as? String == "lw-1: approved")
            // Replayed: useless once the promise settled, whatever it asks.
            let again = try await Self.post(link, "rejected")
            #expect(again.status == 409 && again.errorCode == "alreadySettled", "\(again.text)")
            let page = try await http("GET", link)
            #expect(page.status == 409 && page.text.contains("Already decided") && page.text.contains("approved"), "\(page.text)")
        }
    }

    @Test func forgedAlteredExpiredAndMisdirectedLinksAreRefused() async throws {
        try await withLinks { orchestrator, _, signer in
            let base = orchestrator.httpURL
            for id in ["l-1", "l-2"] {
                #expect(try await http("POST", base + "/promises", #"{"id": "\#(id)", "timeout": \#(Self.future), "tags": {"human": "true"}}"#).status == 201)
            }
            let link = try signer.link(promiseID: "l-1", outcomes: ["approved", "rejected"], expires: Self.future)
            // Altered: another promise, fewer outcomes, a later expiry, another key id, a bad signature.
            let altered = [
                link.replacingOccurrences(of: "/approve/l-1?", with: "/approve/l-2?"),
                link.replacingOccurrences(of: "outcomes=approved,rejected", with: "outcomes=approved"),
                link.replacingOccurrences(of: "expires=", with: "expires=9"),
                link.replacingOccurrences(of: "kid=k2", with: "kid=k1"),
                link.prefix(link.count - 20) + Self.flip(String(link.suffix(20)), at: 0),
            ]
            for a in altered {
                #expect(try await http("GET", a).status == 403, "\(a)")
                let r = try await Self.post(a, "approved")
                #expect(r.status == 403 && ["badSignature", "unknownKey"].contains(r.errorCode ?? ""), "\(a): \(r.text)")
            }
            // Unknown key, incomplete link.
            let stranger = try ApprovalLink.sign(promiseID: "l-1", outcomes: ["approved"], expires: Self.future,
                                                 key: try LinkKey(id: "k9", secret: "someone-elses-secret-0123"))
            #expect(try await Self.post(stranger.url(base: base), "approved").errorCode == "unknownKey")
            #expect(try await http("GET", base + "/approve/l-1?outcomes=approved").status == 400)
            // Expired: 410, on both methods.
            let expired = try signer.link(promiseID: "l-1", outcomes: ["approved"], expires: Int64(Date().timeIntervalSince1970 * 1000) - 1)
            #expect(try await http("GET", expired).status == 410)
            let late = try await Self.post(expired, "approved")
            #expect(late.status == 410 && late.errorCode == "expired", "\(late.text)")
            #expect(try await Self.state("l-1", base) == "PENDING")
            #expect(try await Self.state("l-2", base) == "PENDING")
            // A link made with the previous key still works (rotation), and settles only its own promise.
            let old = try LinkSigner(baseURL: base, key: Self.previous).link(promiseID: "l-2", outcomes: ["approved"], expires: Self.future)
            #expect(try await Self.post(old, "approved").status == 200)
            #expect(try await Self.state("l-1", base) == "PENDING")
            #expect(try await Self.state("l-2", base) == "RESOLVED")
            // A link never settles a workflow's machinery, even one signed with a held key.
            #expect(try await http("POST", base + "/workflows", #"{"id": "lw-2", "function": "nobody-runs-this", "group": "nobody"}"#).status == 201)
            let root = try signer.link(promiseID: "lw-2", outcomes: ["approved"], expires: Self.future)
            #expect(try await http("GET", root).status == 403)
            let forgedResult = try await Self.post(root, "approved")
            #expect(forgedResult.status == 403 && forgedResult.errorCode == "internalPromise", "\(forgedResult.text)")
            #expect(try await Self.state("lw-2", base) == "PENDING")
            // A link to a promise that does not exist.
            #expect(try await http("GET", try signer.link(promiseID: "nope", outcomes: ["approved"], expires: Self.future)).status == 404)
        }
    }

    @Test func anOrchestratorWithoutLinkKeysAcceptsNoLink() async throws {
        let orchestrator = OrchestratorProcess(url: try brokerURL())
        defer { orchestrator.remove() }
        try await orchestrator.start()
        let base = orchestrator.httpURL
        #expect(try await http("POST", base + "/promises", #"{"id": "nk-1", "timeout": \#(Self.future)}"#).status == 201)
        let link = try LinkSigner(baseURL: base, key: Self.current).link(promiseID: "nk-1", outcomes: ["approved"], expires: Self.future)
        let r = try await Self.post(link, "approved")
        #expect(r.status == 404 && r.errorCode == "linksNotConfigured", "\(r.text)")
        #expect(try await Self.state("nk-1", base) == "PENDING")
        // A malformed key file stops `warren serve` with the reason.
        let bad = orchestrator.database + ".bad-keys"
        try "k1 short\n".write(toFile: bad, atomically: true, encoding: .utf8)
        defer { unlink(bad) }
        let refused = try await run(productsDirectory + "/warren", ["serve", "--amqp-url", orchestrator.url, "--db", orchestrator.database + "2",
                                                                   "--prefix", orchestrator.prefix + "b", "--http-port", "\(freePort())", "--link-keys-file", bad])
        #expect(refused.status == 64 && refused.output.contains("at least 16 bytes"), "\(refused.output)")
        _ = await orchestrator.kill(SIGTERM)
    }

    @Test func theCommandLineSignsALinkForAStandalonePromise() async throws {
        try await withLinks { orchestrator, _, _ in
            let base = orchestrator.httpURL
            let timeout = Self.future
            #expect(try await http("POST", base + "/promises", #"{"id": "cli-link-1", "timeout": \#(timeout)}"#).status == 201)
            let env = ["WARREN_LINK_KEY": "k2 current-link-secret-0123456789"]
            let r = try await run(productsDirectory + "/warren", ["promises", "link", "cli-link-1", "--outcomes", "yes,no", "--server", base], environment: env)
            #expect(r.status == 0, "\(r.output)")
            let link = r.output.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(link.hasPrefix(base + "/approve/cli-link-1?outcomes=yes,no&expires=\(timeout)&kid=k2&sig="), "\(link)")
            #expect(try await Self.post(link, "no").status == 200)
            #expect((try await http("GET", base + "/promises/cli-link-1").json["value"] as? [String: Any])?["data"] as? String == b64(#""no""#))
            // Without a key: a usage error that says what to set.
            let none = try await run(productsDirectory + "/warren", ["promises", "link", "cli-link-1", "--server", base])
            #expect(none.status == 64 && none.output.contains("WARREN_LINK_KEY"), "\(none.output)")
        }
    }
}
