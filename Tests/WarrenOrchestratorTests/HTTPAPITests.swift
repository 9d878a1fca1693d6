import Foundation
import Testing
import Warren
import WarrenTestSupport
@testable import WarrenOrchestrator

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

/// An HTTP answer: status, body text and its JSON.
struct HTTPAnswer {
    var status: Int
    var text: String
    var headers: [String: String] = [:]
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:] }
    var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
}

func http(_ method: String, _ url: String, _ body: String? = nil, headers: [String: String] = [:]) async throws -> HTTPAnswer {
    var request = URLRequest(url: URL(string: url)!, timeoutInterval: 30)
    request.httpMethod = method
    for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
    if let body {
        request.httpBody = Data(body.utf8)
        if !headers.keys.contains(where: { $0.lowercased() == "content-type" }) { request.setValue("application/json", forHTTPHeaderField: "content-type") }
    }
    let (data, response) = try await URLSession.shared.data(for: request)
    let r = response as! HTTPURLResponse
    var fields: [String: String] = [:]
    for (k, v) in r.allHeaderFields { if let k = k as? String, let v = v as? String { fields[k.lowercased()] = v } }
    return HTTPAnswer(status: r.statusCode, text: String(decoding: data, as: UTF8.self), headers: fields)
}

func b64(_ json: String) -> String { Data(json.utf8).base64EncodedString() }

/// The HTTP API on a real `warren serve`: the Durable Promise Specification's routes, headers and
/// status codes, Warren's own routes, and the OpenAPI document checked against the server.
@Suite("HTTP API")
struct HTTPAPITests {
    @Test func theSpecificationsRoutesHeadersAndStatusCodes() async throws {
        let orchestrator = OrchestratorProcess(url: try brokerURL())
        defer { orchestrator.remove() }
        try await orchestrator.start()
        let base = orchestrator.httpURL
        let far = 4_102_444_800_000
        let create = #"{"id": "order-1", "timeout": \#(far), "param": {"headers": {"h": "1"}, "data": "\#(b64(#"{"amount":120}"#))"}, "tags": {"human": "true"}}"#
        let created = try await http("POST", base + "/promises", create, headers: ["idempotency-key": "k1", "request-id": "r1"])
        #expect(created.status == 201, "\(created.text)")
        #expect(created.headers["request-id"] == "r1")
        #expect(created.json["state"] as? String == "PENDING")
        #expect(created.json["idempotencyKeyForCreate"] as? String == "k1")
        #expect((created.json["param"] as? [String: Any])?["data"] as? String == b64(#"{"amount":120}"#))
        // The same key: the existing promise, 200. Without it: 409.
        #expect(try await http("POST", base + "/promises", create, headers: ["idempotency-key": "k1"]).status == 200)
        let conflict = try await http("POST", base + "/promises", create)
        #expect(conflict.status == 409 && conflict.errorCode == "alreadyExists")
        #expect(try await http("GET", base + "/promises/order-1").json["id"] as? String == "order-1")
        let missing = try await http("GET", base + "/promises/no-such")
        #expect(missing.status == 404 && missing.errorCode == "notFound")

        // Complete: 200; the same key again: 200 (deduplicated); another outcome: 403; unknown: 404.
        let resolve = #"{"state": "RESOLVED", "value": {"data": "\#(b64(#""approved""#))"}}"#
        let resolved = try await http("PATCH", base + "/promises/order-1", resolve, headers: ["idempotency-key": "c1"])
        #expect(resolved.status == 200 && resolved.json["state"] as? String == "RESOLVED", "\(resolved.text)")
        #expect(try await http("PATCH", base + "/promises/order-1", resolve, headers: ["idempotency-key": "c1"]).status == 200)
        let again = try await http("PATCH", base + "/promises/order-1", #"{"state": "REJECTED"}"#)
        #expect(again.status == 403 && again.errorCode == "alreadySettled")
        #expect(try await http("PATCH", base + "/promises/no-such", resolve).status == 404)
        // strict: a repeated create with the key deduplicates only while pending.
        #expect(try await http("POST", base + "/promises", create, headers: ["idempotency-key": "k1", "strict": "true"]).status == 409)
        #expect(try await http("POST", base + "/promises", create, headers: ["idempotency-key": "k1", "strict": "false"]).status == 200)
        // Ids with a slash.
        #expect(try await http("POST", base + "/promises", #"{"id": "a/b", "timeout": \#(far)}"#).status == 201)
        #expect(try await http("GET", base + "/promises/a/b").json["id"] as? String == "a/b")
        #expect(try await http("GET", base + "/promises/a%2Fb").json["id"] as? String == "a/b")

        // Bad requests: a precise 400 with a JSON error, never a crash.
        for (body, mentions) in [("{", "not valid JSON"), (#"{"timeout": 1}"#, "'id' is missing"), (#"{"id": "x"}"#, "'timeout' is missing"),
                                 (#"{"id": "x", "timeout": 5, "param": {"data": "%%%"}}"#, "base64"), (#"{"id": "x y", "timeout": 5}"#, "character")] {
            let bad = try await http("POST", base + "/promises", body)
            #expect(bad.status == 400, "\(body): \(bad.text)")
            #expect(bad.text.contains(mentions), "\(body): \(bad.text)")
        }
        #expect(try await http("PATCH", base + "/promises/order-1", #"{"state": "PENDING"}"#).status == 400)
        #expect(try await http("POST", base + "/promises", #"{"id": "x", "timeout": 5}"#, headers: ["strict": "maybe"]).status == 400)
        let huge = try await http("POST", base + "/promises", #"{"id": "big", "timeout": 5, "param": {"data": ""# + String(repeating: "A", count: 2 << 20) + #""}}"#)
        #expect(huge.status == 413 && huge.errorCode == "payloadTooLarge", "\(huge.status) \(huge.text.prefix(200))")

        // Search: id pattern, state, tags, cursor paging.
        for i in 0..<5 { _ = try await http("POST", base + "/promises", #"{"id": "page-\#(i)", "timeout": \#(far), "tags": {"batch": "p"}}"#) }
        var seen: [String] = []
        var cursor: String? = nil
        repeat {
            let page = try await http("GET", base + "/promises?id=page-*&state=pending&tags%5Bbatch%5D=p&limit=2" + (cursor.map { "&cursor=\($0)" } ?? ""))
            #expect(page.status == 200, "\(page.text)")
            seen += (page.json["promises"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            cursor = page.json["cursor"] as? String
        } while cursor != nil
        #expect(seen == (0..<5).map { "page-\($0)" })
        // A cursor carries its search: a client that follows only the cursor gets the same search's
        // next pages (not every promise after that id: `pagex` sorts after `page-*` and is not tagged).
        _ = try await http("POST", base + "/promises", #"{"id": "pagex", "timeout": \#(far)}"#)
        seen = []
        cursor = nil
        repeat {
            let page = try await http("GET", base + "/promises?" + (cursor.map { "cursor=\($0)" } ?? "id=page-*&state=pending&tags%5Bbatch%5D=p&limit=2"))
            #expect(page.status == 200, "\(page.text)")
            seen += (page.json["promises"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            cursor = page.json["cursor"] as? String
            #expect(cursor.map { $0.hasPrefix("q!") } ?? true)
        } while cursor != nil
        #expect(seen == (0..<5).map { "page-\($0)" })
        #expect(try await http("GET", base + "/promises?cursor=q!bm90LWEtY3Vyc29y").status == 400)
        #expect(try await http("GET", base + "/promises?state=resolved&id=order-*").json["promises"].map { ($0 as! [Any]).count } == 1)
        #expect(try await http("GET", base + "/promises?state=sideways").status == 400)
        #expect(try await http("GET", base + "/promises?colour=red").status == 400)
        _ = await orchestrator.kill(SIGTERM)
    }

    @Test func anHTTPResolveResumesTheWaitingWorkflowAndItsStateIsShown() async throws {
        try await withWorkflows { orchestrator, worker, _ in
            let base = orchestrator.httpURL
            let started = try await http("POST", base + "/workflows", #"{"id": "web-1", "function": "foo-workflow", "args": ["web-1"], "group": "workers", "timeout": "1h"}"#)
            #expect(started.status == 201, "\(started.text)")
            #expect(try await http("POST", base + "/workflows", #"{"id": "web-1", "function": "foo-workflow", "args": ["web-1"], "group": "workers"}"#).status == 200)
            #expect(try await http("POST", base + "/workflows", #"{"id": "web-1", "function": "other", "args": [], "group": "workers"}"#).status == 409)
            _ = try await worker.line(startingWith: "", containing: "task suspended")
            // The worker logs the suspension once the broker has its report; the orchestrator
            // applies it a moment later.
            let waiting = try await within(.seconds(30), "the suspension applied") {
                while true {
                    let w = try await http("GET", base + "/workflows/web-1")
                    if (w.json["task"] as? [String: Any])?["state"] as? String == "suspended" { return w }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            #expect(waiting.json["state"] as? String == "PENDING")
            #expect((waiting.json["task"] as? [String: Any])?["awaiting"] as? [String] == ["web-1.1"])
            let suspended = try await http("GET", base + "/tasks?state=suspended")
            #expect((suspended.json["tasks"] as? [[String: Any]])?.map { $0["id"] as? String } == ["web-1"])
            let approve = try await http("PATCH", base + "/promises/web-1.1", #"{"state": "RESOLVED", "value": {"data": "\#(b64(#""approved""#))"}}"#)
            #expect(approve.status == 200)
            let done = try await settledWorkflow("web-1", at: base)
            #expect(done.json["state"] as? String == "RESOLVED")
            #expect(done.json["result"] as? String == "foo workflow web-1 complete")
        }
    }

    @Test func manyConcurrentClientsEachGetTheirOwnAnswer() async throws {
        let orchestrator = OrchestratorProcess(url: try brokerURL())
        defer { orchestrator.remove() }
        try await orchestrator.start()
        let base = orchestrator.httpURL
        let results = try await withThrowingTaskGroup(of: (Int, Int, Int, String).self) { group in
            for i in 0..<300 {
                group.addTask {
                    let c = try await http("POST", base + "/promises", #"{"id": "many-\#(i)", "timeout": 4102444800000}"#)
                    // Every third one is created twice at once, with a key: one 201, one 200.
                    let twice = i % 3 == 0 ? try await http("POST", base + "/promises", #"{"id": "many-\#(i)", "timeout": 4102444800000}"#).status : 409
                    let r = try await http("PATCH", base + "/promises/many-\(i)", #"{"state": "RESOLVED", "value": {"data": "\#(b64("\(i)"))"}}"#)
                    return (c.status, twice, r.status, (r.json["value"] as? [String: Any])?["data"] as? String ?? "")
                }
            }
            var all: [(Int, Int, Int, String)] = []
            for try await r in group { all.append(r) }
            return all
        }
        #expect(results.count == 300)
        #expect(results.allSatisfy { $0.0 == 201 && $0.1 == 409 && $0.2 == 200 })
        #expect(Set(results.map(\.3)) == Set((0..<300).map { b64("\($0)") }))
        _ = await orchestrator.kill(SIGTERM)
    }

    @Test func theOpenAPIDocumentMatchesWhatTheServerDoes() async throws {
        let orchestrator = OrchestratorProcess(url: try brokerURL())
        defer { orchestrator.remove() }
        try await orchestrator.start()
        let base = orchestrator.httpURL
        let doc = try await http("GET", base + "/openapi.json")
        #expect(doc.status == 200)
        let paths = doc.json["paths"] as? [String: [String: Any]] ?? [:]
        var documented: Set<String> = []
        for (path, operations) in paths { for method in operations.keys { documented.insert(method.uppercased() + " " + path) } }
        // The router is built from HTTPAPI.routes: the same set of operations.
        #expect(documented == Set(HTTPAPI.routes.map { $0.method + " " + $0.path }))
        // Every operation answers with a status its document lists (and a body of its content type).
        _ = try await http("POST", base + "/promises", #"{"id": "doc-1", "timeout": 4102444800000}"#)
        let bodies = ["POST /promises": #"{"id": "doc-2", "timeout": 4102444800000}"#,
                      "PATCH /promises/{id}": #"{"state": "RESOLVED"}"#,
                      "POST /workflows": #"{"id": "doc-wf", "function": "f", "group": "g"}"#,
                      "POST /schedules": #"{"id": "doc-1", "cron": "@daily", "function": "f", "group": "g"}"#]
        for operation in documented.sorted() {
            let parts = operation.split(separator: " ", maxSplits: 1).map(String.init)
            let (method, path) = (parts[0], parts[1])
            let answer = try await http(method, base + path.replacingOccurrences(of: "{id}", with: path.hasPrefix("/workflows") ? "doc-wf" : "doc-1"),
                                        bodies[operation])
            let responses = (paths[path]?[method.lowercased()] as? [String: Any])?["responses"] as? [String: Any] ?? [:]
            #expect(responses.keys.contains("\(answer.status)"), "\(operation) answered \(answer.status), not in \(responses.keys.sorted())")
        }
        // What the document leaves out is not served.
        #expect([404, 405].contains(try await http("DELETE", base + "/promises/doc-1").status))
        #expect(try await http("GET", base + "/admin").status == 404)
        _ = await orchestrator.kill(SIGTERM)
    }

    @Test func settledWorkflowsAreDeletedAfterTheRetentionPeriod() async throws {
        let orchestrator = OrchestratorProcess(url: try brokerURL())
        defer { orchestrator.remove() }
        try await orchestrator.start(["--retention", "1s"])
        let base = orchestrator.httpURL
        #expect(try await http("POST", base + "/promises", #"{"id": "old-1", "timeout": 4102444800000}"#).status == 201)
        #expect(try await http("POST", base + "/promises", #"{"id": "old-1.1", "timeout": 4102444800000}"#).status == 201)
        #expect(try await http("POST", base + "/promises", #"{"id": "kept-1", "timeout": 4102444800000}"#).status == 201)
        #expect(try await http("PATCH", base + "/promises/old-1.1", #"{"state": "RESOLVED"}"#).status == 200)
        #expect(try await http("PATCH", base + "/promises/old-1", #"{"state": "RESOLVED"}"#).status == 200)
        try await within(.seconds(30), "retention to delete old-1") {
            while try await http("GET", base + "/promises/old-1").status != 404 { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(try await http("GET", base + "/promises/old-1.1").status == 404)
        #expect(try await http("GET", base + "/promises/kept-1").status == 200)
        #expect(orchestrator.logText.contains("retention: deleted settled workflows"))
        _ = await orchestrator.kill(SIGTERM)
    }
}
