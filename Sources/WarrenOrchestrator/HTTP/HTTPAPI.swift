import AMQP
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Synchronization
import WarrenKernel
import WarrenStore

/// A refused HTTP request: its status and a JSON error with a stable code.
struct HTTPProblem: Error {
    var status: HTTPResponse.Status
    var code: String
    var message: String

    init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    /// The specification's status for each way the store refuses a command (as Resonate's
    /// server answers): an unknown id is 404, a create of an existing id 409, a completion of a
    /// settled promise 403, anything malformed 400, a payload over the limit 413.
    init(_ e: StoreError) {
        let status: HTTPResponse.Status = switch e.code {
        case .notFound: .notFound
        case .alreadyExists: .conflict
        case .alreadySettled: .forbidden
        case .payloadTooLarge: .contentTooLarge
        case .internalPromise, .forbidden: .forbidden
        case .storageUnavailable: .serviceUnavailable
        default: .badRequest
        }
        self.init(status, e.code.description, e.message)
    }
}

/// The orchestrator's HTTP API: the Durable Promise Specification's routes, Warren's own
/// (workflows, tasks, health), the OpenAPI document and the approval page. Writes go through a
/// ``WriteBatcher`` (one transaction for all the requests waiting), reads through read snapshots
/// that run beside the writer.
struct HTTPAPI: Sendable {
    let store: any PromiseStore
    let batcher: WriteBatcher
    let config: OrchestratorConfiguration
    let readiness: Readiness
    let access: AccessPolicy
    let logger: Logger

    /// The largest request body accepted.
    static let maximumBodyBytes = 1 << 20 + 64 * 1024

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    /// Every route, as the OpenAPI document names it (`{id}` may hold `/`). The router is built
    /// from this table, and a test checks it against /openapi.json.
    static let routes: [(method: String, path: String)] = [
        ("POST", "/promises"), ("GET", "/promises"), ("GET", "/promises/{id}"), ("PATCH", "/promises/{id}"),
        ("POST", "/workflows"), ("GET", "/workflows/{id}"), ("POST", "/workflows/{id}/cancel"), ("POST", "/workflows/{id}/retry"),
        ("POST", "/workflows/{id}/fail"), ("GET", "/tasks"), ("GET", "/outbox"), ("POST", "/outbox/retry"),
        ("GET", "/health"), ("GET", "/ready"), ("GET", "/openapi.json"), ("GET", "/ui"),
        ("GET", "/approve/{id}"), ("POST", "/approve/{id}"),
        ("POST", "/schedules"), ("GET", "/schedules"), ("GET", "/schedules/{id}"), ("DELETE", "/schedules/{id}"),
        ("POST", "/schedules/{id}/pause"), ("POST", "/schedules/{id}/resume"),
        ("GET", "/dead"), ("POST", "/dead/replay"), ("POST", "/dead/purge"),
    ]

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        for (method, path) in Self.routes {
            let pattern = RouterPath(path.replacingOccurrences(of: "{id}", with: "**"))
            let respond: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, context in
                var response = try await handle {
                    let caller = try self.authorize(method, path, request)
                    return try await self.respond(method, path, request, context, caller)
                }
                // The specification's request-id comes back with the answer, for tracing.
                if let requestID = request.headers[Self.requestID] { response.headers[Self.requestID] = requestID }
                return response
            }
            switch method {
            case "POST": router.post(pattern, use: respond)
            case "PATCH": router.patch(pattern, use: respond)
            case "DELETE": router.delete(pattern, use: respond)
            default: router.get(pattern, use: respond)
            }
        }
        return router
    }

    /// Who calls, and whether they may call this route (docs/http.md#access). Writes must be JSON,
    /// so that no cross-site form (which can only send `text/plain` and form encodings without a
    /// preflight) can reach them.
    private func authorize(_ method: String, _ path: String, _ request: Request) throws(HTTPProblem) -> AccessToken? {
        if path != "/health" {
            try access.checkHostAndOrigin(host: request.head.authority ?? request.headers[HTTPField.Name("Host")!],
                                          origin: request.headers[HTTPField.Name("Origin")!])
        }
        if method != "GET" {
            let type = request.headers[.contentType]?.lowercased() ?? ""
            let bodyless = path == "/outbox/retry" || path.hasPrefix("/workflows/{id}/") || path.hasPrefix("/schedules/{id}") || path.hasPrefix("/dead/")
            guard type.hasPrefix("application/json") || (bodyless && type.isEmpty) else {
                throw HTTPProblem(.unsupportedMediaType, "unsupportedMediaType", "send the body as JSON, with 'Content-Type: application/json'")
            }
        }
        switch path {
        // A signed link is its own credential (checked by the route).
        case "/health", "/openapi.json", "/ui", "/approve/{id}": return nil
        case "/ready" where access.openReady: return nil
        default: break
        }
        let caller = try access.caller(authorization: request.headers[.authorization])
        switch (method, path) {
        case ("POST", "/workflows"), ("GET", "/workflows/{id}"): try access.require(caller, [.workflows], for: "start or read workflows")
        case ("POST", "/workflows/{id}/cancel"): try access.require(caller, [.workflows], for: "cancel workflows")
        case ("POST", "/promises"): try access.require(caller, [.workflows], for: "create promises")
        case (_, "/schedules"), (_, "/schedules/{id}"), (_, "/schedules/{id}/pause"), (_, "/schedules/{id}/resume"):
            try access.require(caller, [.workflows], for: "create, read or change schedules")
        case ("GET", "/promises"), ("GET", "/promises/{id}"): try access.require(caller, [.workflows, .approve], for: "read promises")
        case ("PATCH", "/promises/{id}"): try access.require(caller, [.approve], for: "settle promises")
        case ("GET", "/ready"): break
        default: try access.require(caller, [.admin], for: "use the operator's routes")
        }
        return caller
    }

    private func respond(_ method: String, _ path: String, _ request: Request, _ context: BasicRequestContext,
                         _ caller: AccessToken?) async throws -> Response {
        switch (method, path) {
        case ("POST", "/promises"): return try await createPromise(request)
        case ("GET", "/promises"): return try await searchPromises(request, publicOnly: access.seesPublicOnly(caller))
        case ("GET", "/promises/{id}"): return try await getPromise(Self.id(context), publicOnly: access.seesPublicOnly(caller))
        case ("PATCH", "/promises/{id}"): return try await completePromise(Self.id(context), request, caller: caller)
        case ("POST", "/workflows"): return try await startWorkflow(request)
        case ("GET", "/workflows/{id}"): return try await workflow(Self.id(context))
        case ("POST", "/workflows/{id}/cancel"):
            return try await decide(.cancelWorkflow(id: try Self.id(context), reason: try await reason(request)))
        case ("POST", "/workflows/{id}/retry"): return try await decide(.retryWorkflow(id: try Self.id(context)))
        case ("POST", "/workflows/{id}/fail"):
            return try await decide(.failWorkflow(id: try Self.id(context), reason: try await reason(request) ?? "no reason given"))
        case ("GET", "/tasks"): return try await tasks(request)
        case ("POST", "/schedules"): return try await createSchedule(request)
        case ("GET", "/schedules"): return try await schedules(request)
        case ("GET", "/schedules/{id}"): return try await schedule(try Self.id(context))
        case ("DELETE", "/schedules/{id}"): return try await changeSchedule(.deleteSchedule(id: try Self.id(context)))
        case ("POST", "/schedules/{id}/pause"): return try await changeSchedule(.pauseSchedule(id: try Self.id(context)))
        case ("POST", "/schedules/{id}/resume"): return try await changeSchedule(.resumeSchedule(id: try Self.id(context)))
        case ("GET", "/outbox"): return try await setAside()
        case ("GET", "/dead"): return try await deadLetters(.list, request)
        case ("POST", "/dead/replay"): return try await deadLetters(.replay, request)
        case ("POST", "/dead/purge"): return try await deadLetters(.purge, request)
        case ("POST", "/outbox/retry"): return try await retrySetAside(request)
        case ("GET", "/health"): return Self.json(.ok, ["status": "ok"])
        case ("GET", "/ready"):
            let (ready, why) = readiness.state
            return Self.json(ready ? .ok : .serviceUnavailable, ["status": ready ? "ready" : "not ready", "reason": why])
        case ("GET", "/openapi.json"):
            return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: OpenAPIDocument.json)))
        case ("GET", "/ui"):
            return Response(status: .ok, headers: ApprovalPage.headers, body: ResponseBody(byteBuffer: ByteBuffer(string: ApprovalPage.html)))
        case ("GET", "/approve/{id}"): return try await linkPage(Self.id(context), request)
        case ("POST", "/approve/{id}"): return try await settleByLink(Self.id(context), request)
        default:
            throw HTTPProblem(.notFound, "notFound", "no route \(method) \(path)")
        }
    }

    /// Runs a handler; a refusal becomes its status with `{"error": {"code", "message"}}`.
    private func handle(_ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch let p as HTTPProblem {
            return Self.error(p)
        } catch let e as StoreError {
            return Self.error(HTTPProblem(e))
        } catch let e where (e as? HTTPError)?.status == .contentTooLarge || String(describing: type(of: e)) == "NIOTooManyBytesError" {
            // collectBody(upTo:) throws NIO's error when the body is over the limit.
            return Self.error(HTTPProblem(.contentTooLarge, "payloadTooLarge", "the request body is larger than \(Self.maximumBodyBytes) bytes"))
        } catch is WriteBatcher.ShuttingDown {
            return Self.error(HTTPProblem(.serviceUnavailable, "unavailable", "the orchestrator is shutting down"))
        } catch {
            logger.error("HTTP request failed", metadata: ["error": "\(error)"])
            return Self.error(HTTPProblem(.internalServerError, "internal", "the request failed: \(error)"))
        }
    }

    static func error(_ p: HTTPProblem) -> Response {
        struct Body: Encodable { struct E: Encodable { var code: String; var message: String }; var error: E }
        return json(p.status, Body(error: .init(code: p.code, message: p.message)))
    }

    static func json<T: Encodable>(_ status: HTTPResponse.Status, _ value: T) -> Response {
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// The id after `/promises/` or `/workflows/` (ids may hold `/`).
    static func id(_ context: BasicRequestContext) throws(HTTPProblem) -> String {
        let id = context.parameters.getCatchAll().joined(separator: "/")
        guard !id.isEmpty, let decoded = id.removingPercentEncoding else {
            throw HTTPProblem(.badRequest, "invalidID", "the path must name an id")
        }
        return decoded
    }

    func decode<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
        var request = request
        let buffer = try await request.collectBody(upTo: Self.maximumBodyBytes)
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch {
            throw HTTPProblem(.badRequest, "invalidArgument", "the body is not the expected JSON: \(Self.describe(error))")
        }
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "the field '\(key.stringValue)' is missing"
        case DecodingError.typeMismatch(_, let c): "the field '\(c.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type"
        case DecodingError.valueNotFound(_, let c): "the field '\(c.codingPath.map(\.stringValue).joined(separator: "."))' is null"
        case DecodingError.dataCorrupted: "it is not valid JSON"
        default: "\(error)"
        }
    }

    static let requestID = HTTPField.Name("request-id")!

    private static func header(_ request: Request, _ name: String) -> String? {
        HTTPField.Name(name).flatMap { request.headers[$0] }
    }

    private static func strict(_ request: Request) throws(HTTPProblem) -> Bool {
        switch header(request, "strict")?.lowercased() {
        case nil, "false": return false
        case "true": return true
        default: throw HTTPProblem(.badRequest, "invalidArgument", "the strict header must be true or false")
        }
    }

    static func now() -> Int64 { Orchestrator.nowMillis() }

    // MARK: Promises (the specification's routes)

    /// `POST /promises`: 201 with the record when created, 200 when an idempotent repeat.
    func createPromise(_ request: Request) async throws -> Response {
        let body = try await decode(CreatePromiseBody.self, request)
        if let reserved = body.tags?.keys.first(where: { $0.hasPrefix("warren:") }) {
            throw HTTPProblem(.badRequest, "invalidArgument", "the tag '\(reserved)' is reserved: tags starting with 'warren:' are Warren's own")
        }
        let create = CreatePromise(id: body.id, idempotencyKey: Self.header(request, "idempotency-key"), strict: try Self.strict(request),
                                   param: try (body.param ?? .init()).stored("param"), timeout: body.timeout, tags: body.tags ?? [:])
        let result = try await batcher.write { tx in
            let now = Self.now()
            try Self.refuseInsideWorkflow(create.id, tx: tx, now: now)
            return try tx.createPromise(create, now: now)
        }
        return Self.json(result.created ? .created : .ok, HTTPPromise(result.promise))
    }

    /// `PATCH /promises/{id}`: resolve, reject or cancel; 200 with the record.
    func completePromise(_ id: String, _ request: Request, caller: AccessToken?) async throws -> Response {
        let body = try await decode(CompletePromiseBody.self, request)
        let completion: PromiseRules.Completion
        switch body.state.uppercased() {
        case "RESOLVED": completion = .resolve
        case "REJECTED": completion = .reject
        case "REJECTED_CANCELED": completion = .cancel
        default: throw HTTPProblem(.badRequest, "invalidArgument", "state must be RESOLVED, REJECTED or REJECTED_CANCELED")
        }
        var value = try (body.value ?? .init()).stored("value")
        if let caller {
            // Who settled it, and through what, kept with the value (an open API, on loopback,
            // stores exactly what was sent, as the specification's tests expect).
            value.headers["warren:settled-by"] = caller.name
            value.headers["warren:settled-via"] = "http"
            value.headers["warren:settled-on"] = "\(Self.now())"
        }
        let settle = SettlePromise(id: id, completion: completion, idempotencyKey: Self.header(request, "idempotency-key"),
                                   strict: try Self.strict(request), value: value)
        let kernel = Kernel(config.kernel)
        let result = try await batcher.write { tx in
            let (result, effects) = try kernel.settlePromise(settle, tx: tx, now: Self.now())
            try tx.enqueue(effects)
            return result
        }
        return Self.json(.ok, HTTPPromise(result.promise))
    }

    /// `GET /promises/{id}`.
    func getPromise(_ id: String, publicOnly: Bool = false) async throws -> Response {
        guard let p = try await store.read({ tx in try tx.promise(id: id, now: Self.now()) }), !(publicOnly && PromiseRules.isInternal(p)) else {
            throw HTTPProblem(.notFound, "notFound", "no promise with id '\(id)'")
        }
        return Self.json(.ok, HTTPPromise(p))
    }

    /// `GET /promises?id=pattern&state=pending&tags[k]=v&limit=n&cursor=c`: `{"promises": [...], "cursor": "…"}`.
    func searchPromises(_ request: Request, publicOnly: Bool = false) async throws -> Response {
        var search = PromiseSearch()
        for (rawKey, value) in request.uri.queryParameters {
            let key = String(rawKey).removingPercentEncoding ?? String(rawKey)
            let value = String(value)
            switch key {
            case "id", "q": search.id = value.isEmpty ? "*" : value
            case "state": search.states = try Self.states(value)
            case "limit":
                guard let n = Int(value), (1...PromiseSearch.maximumLimit).contains(n) else {
                    throw HTTPProblem(.badRequest, "invalidArgument", "limit must be a number from 1 to \(PromiseSearch.maximumLimit)")
                }
                search.limit = n
            case "cursor": search.cursor = value.isEmpty ? nil : value
            default:
                guard key.hasPrefix("tags[") && key.hasSuffix("]") else {
                    throw HTTPProblem(.badRequest, "invalidArgument", "unknown query parameter '\(key)'; use id, state, tags[name], limit, cursor")
                }
                search.tags[String(key.dropFirst(5).dropLast())] = value
            }
        }
        // A cursor carries its search: the next page of that search, whatever else was sent.
        if let cursor = search.cursor {
            search.cursor = nil
            search = try search.continuing(cursor)
        }
        let s = search
        let page = s.publicPage(try await store.read { tx in try tx.search(s, now: Self.now()) })
        struct Page: Encodable { var promises: [HTTPPromise]; var cursor: String? }
        // An approve-only token sees the promises made for the outside world, not the machinery.
        let visible = publicOnly ? page.promises.filter { !PromiseRules.isInternal($0) } : page.promises
        return Self.json(.ok, Page(promises: visible.map(HTTPPromise.init), cursor: page.cursor))
    }

    static func states(_ value: String) throws(HTTPProblem) -> Set<PromiseState> {
        switch value.lowercased() {
        case "pending": return [.pending]
        case "resolved": return [.resolved]
        case "rejected": return [.rejected, .rejectedCanceled, .rejectedTimedout]
        case "rejected_canceled": return [.rejectedCanceled]
        case "rejected_timedout": return [.rejectedTimedout]
        default: throw HTTPProblem(.badRequest, "invalidArgument", "state must be pending, resolved, rejected, rejected_canceled or rejected_timedout")
        }
    }

    // MARK: Workflows and tasks (Warren's routes)

    /// `POST /workflows`: starts a workflow (201), or finds the same one (200); another function
    /// or arguments under an existing id is 409.
    func startWorkflow(_ request: Request) async throws -> Response {
        let body = try await decode(StartWorkflowBody.self, request)
        var fields: [String: JSONValue] = ["id": .string(body.id), "function": .string(body.function), "group": .string(body.group),
                                           "args": .array(body.args ?? [])]
        if let timeout = body.timeout { fields["timeout"] = timeout }
        if let tags = body.tags { fields["tags"] = .object(tags.mapValues { .string($0) }) }
        let message: Command
        do {
            message = try Command.decode(routingKey: MessageKind.startWorkflow.rawValue, type: nil, body: Array(JSONValue.object(fields).jsonText.utf8),
                                                now: Self.now(), defaultTimeout: config.defaultTimeout, maximumBodyBytes: Self.maximumBodyBytes)
        } catch {
            throw HTTPProblem(.badRequest, "invalidArgument", error.reason)
        }
        guard case .startWorkflow(let create, let function, _) = message else { throw HTTPProblem(.badRequest, "invalidArgument", "not a workflow") }
        let kernel = Kernel(config.kernel)
        if create.tags.keys.contains(where: { $0.hasPrefix("warren:") && $0 != "warren:function" }) {
            throw HTTPProblem(.badRequest, "invalidArgument", "tags starting with 'warren:' are Warren's own")
        }
        let result = try await batcher.write { tx in
            let now = Self.now()
            try Self.refuseInsideWorkflow(create.id, tx: tx, now: now)
            let (result, effects) = try kernel.startWorkflow(create, function: function, tx: tx, now: now)
            try tx.enqueue(effects)
            return result
        }
        return Self.json(result.created ? .created : .ok, try await view(of: result.promise))
    }

    /// A workflow's id space is its own: what lies below a workflow (`<root>.<n>`) comes from its
    /// code, never from the public API (it would be read as one of its steps or children).
    static func refuseInsideWorkflow(_ id: String, tx: any StoreTransaction, now: Int64) throws {
        let root = PromiseRecord.rootID(of: id)
        guard root != id, let owner = try tx.promise(id: root, now: now), owner.tags["warren:function"] != nil else { return }
        throw StoreError(.internalPromise, "'\(id)' is inside workflow '\(root)', whose promises only its own code creates; use an id outside it")
    }

    /// `POST /workflows/{id}/cancel|retry|fail`: the operator's decision, applied by the kernel;
    /// 200 with the workflow as it is after it.
    func decide(_ command: Command) async throws -> Response {
        let kernel = Kernel(config.kernel)
        let promise = try await batcher.write { tx in
            let (promise, effects) = try kernel.workflowDecision(command, tx: tx, now: Self.now())
            try tx.enqueue(effects)
            return promise
        }
        return Self.json(.ok, try await view(of: promise))
    }

    /// The `reason` of a decision's optional JSON body.
    private func reason(_ request: Request) async throws -> String? {
        var request = request
        let buffer = try await request.collectBody(upTo: Self.maximumBodyBytes)
        guard buffer.readableBytes > 0 else { return nil }
        do {
            return try JSONDecoder().decode(DecisionBody.self, from: Data(buffer.readableBytesView)).reason
                .map { String($0.prefix(TaskRules.maximumReasonCharacters)) }
        } catch {
            throw HTTPProblem(.badRequest, "invalidArgument", "the body must be {\"reason\": \"…\"} or empty: \(Self.describe(error))")
        }
    }

    /// `GET /workflows/{id}`: its state, result or error, and its task.
    func workflow(_ id: String) async throws -> Response {
        guard let p = try await store.read({ tx in try tx.promise(id: id, now: Self.now()) }) else {
            throw HTTPProblem(.notFound, "notFound", "no workflow with id '\(id)'")
        }
        return Self.json(.ok, try await view(of: p))
    }

    func view(of p: PromiseRecord) async throws -> WorkflowView {
        let task = try await store.read { tx in
            try tx.task(id: p.id).map { try TaskView($0, tx: tx, topology: self.config.topology, now: Self.now()) }
        }
        let value = p.value.data.flatMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
        return WorkflowView(id: p.id, function: p.tags["warren:function"], state: p.state.rawValue,
                            result: p.state == .resolved ? value : nil, error: p.state.isSettled && p.state != .resolved ? value : nil,
                            createdOn: p.createdOn, completedOn: p.completedOn, timeout: p.timeout, task: task)
    }

    /// `GET /tasks?state=pending|acquired|suspended|completed|blocked&limit=n&cursor=c`.
    func tasks(_ request: Request) async throws -> Response {
        var states: Set<TaskRecord.State>? = nil
        var limit = 100
        var cursor: String? = nil
        for (key, value) in request.uri.queryParameters {
            switch key {
            case "state":
                guard let state = TaskRecord.State(name: String(value)) else {
                    throw HTTPProblem(.badRequest, "invalidArgument", "state must be one of " + TaskRecord.State.all.map(\.name).joined(separator: ", "))
                }
                states = [state]
            case "limit":
                guard let n = Int(value), (1...PromiseSearch.maximumLimit).contains(n) else {
                    throw HTTPProblem(.badRequest, "invalidArgument", "limit must be a number from 1 to \(PromiseSearch.maximumLimit)")
                }
                limit = n
            case "cursor": cursor = String(value)
            default: throw HTTPProblem(.badRequest, "invalidArgument", "unknown query parameter '\(key)'; use state, limit, cursor")
            }
        }
        let (s, l, c) = (states, limit, cursor)
        let page = try await store.read { tx in
            let (tasks, next) = try tx.tasks(states: s, limit: l, cursor: c)
            return (try tasks.map { try TaskView($0, tx: tx, topology: self.config.topology, now: Self.now()) }, next)
        }
        struct Page: Encodable { var tasks: [TaskView]; var cursor: String? }
        return Self.json(.ok, Page(tasks: page.0, cursor: page.1))
    }
}

extension HTTPAPI {
    /// `GET /outbox`: what the broker refused, set aside with the reason.
    func setAside() async throws -> Response {
        struct Item: Encodable { var seq: Int64; var exchange, routingKey, kind: String; var bytes: Int; var reason: String; var failedOn: Int64 }
        struct Page: Encodable { var messages: [Item] }
        let failed = try await store.read { tx in try tx.failedOutbox(limit: 1000) }
        return Self.json(.ok, Page(messages: failed.map {
            Item(seq: $0.message.sequence, exchange: $0.message.exchange, routingKey: $0.message.routingKey, kind: $0.message.kind,
                 bytes: $0.message.body.count, reason: $0.reason, failedOn: $0.failedOn)
        }))
    }

    /// `GET /dead?select=&limit=` lists what `<prefix>.dead` holds (and leaves it there); `POST
    /// /dead/replay?select=…` sends the selected messages again to where they were going, `POST
    /// /dead/purge?select=…` drops them. A replay or purge needs a selector (`all` for all).
    func deadLetters(_ action: DeadLetters.Action, _ request: Request) async throws -> Response {
        var selector: DeadLetters.Selector? = action == .list ? .all : nil
        var limit = 1000
        for (key, value) in request.uri.queryParameters {
            switch key {
            case "select": selector = try DeadLetters.Selector(String(value))
            case "limit":
                guard let n = Int(value), (1...DeadLetters.maximumLimit).contains(n) else {
                    throw HTTPProblem(.badRequest, "invalidArgument", "limit must be a number from 1 to \(DeadLetters.maximumLimit)")
                }
                limit = n
            default: throw HTTPProblem(.badRequest, "invalidArgument", "unknown query parameter '\(key)'; use select, limit")
            }
        }
        guard let selector else {
            throw HTTPProblem(.badRequest, "invalidArgument", "say which messages: select=all, id:<hex>, key:<routing key> or reason:<text>")
        }
        do {
            return Self.json(.ok, try await DeadLetters(config: config, logger: logger).perform(action, selector: selector, limit: limit))
        } catch let e as AMQPError {
            throw HTTPProblem(.serviceUnavailable, "unavailable", "the broker: \(e)")
        }
    }

    /// `POST /outbox/retry[?seq=N]`: puts messages set aside back in the outbox.
    func retrySetAside(_ request: Request) async throws -> Response {
        var sequences: [Int64]? = nil
        for (key, value) in request.uri.queryParameters {
            guard key == "seq", let n = Int64(value) else {
                throw HTTPProblem(.badRequest, "invalidArgument", "the only query parameter is seq, a number")
            }
            sequences = (sequences ?? []) + [n]
        }
        let chosen = sequences
        let retried = try await batcher.write { tx in try tx.retryFailedOutbox(sequences: chosen) }
        return Self.json(.ok, ["retried": retried])
    }
}

/// Whether the orchestrator can take work: its database is open and it consumes its queue.
final class Readiness: Sendable {
    /// What stands in the way, by part (`consumer`, `storage`, `outbox`); ready when empty.
    private let problems = Mutex<[String: String]>(["consumer": "starting"])
    private let consuming = Mutex("")

    var state: (ready: Bool, reason: String) {
        let (problems, consuming) = (self.problems.withLock { $0 }, self.consuming.withLock { $0 })
        if problems.isEmpty { return (true, consuming) }
        return (false, problems.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; "))
    }

    /// The consumer's part: consuming (`ready`) or not, and why.
    func set(_ ready: Bool, _ reason: String) {
        if ready { consuming.withLock { $0 = reason } }
        problem("consumer", ready ? nil : reason)
    }

    /// Records (or, with `nil`, clears) what keeps one part from working.
    func problem(_ part: String, _ reason: String?) {
        problems.withLock { $0[part] = reason }
    }
}
