import Foundation
import Hummingbird
import WarrenKernel
import WarrenStore

/// `/schedules`: create, read, list, pause, resume and delete schedules (docs/http.md#schedules).
/// The body of a create is the `schedule.create` message's, decoded by the same code.
extension HTTPAPI {
    /// `POST /schedules`: 201 with the schedule, 200 for the same definition again, 409 for
    /// another under its id.
    func createSchedule(_ request: Request) async throws -> Response {
        var request = request
        let buffer = try await request.collectBody(upTo: Self.maximumBodyBytes)
        let fields: [String: JSONValue]
        let id: String
        let definition: ScheduleDefinition
        do {
            guard let object = try JSONValue.parse(Array(buffer.readableBytesView)).objectValue else {
                throw ContractError(reason: "the body must be a JSON object")
            }
            fields = object
            guard let i = fields["id"]?.stringValue else { throw ContractError(reason: "the field 'id' is missing (a string)") }
            id = i
            definition = try Command.schedule(fields, defaultTimeout: config.defaultTimeout)
        } catch let e as ContractError {
            throw HTTPProblem(.badRequest, "invalidArgument", e.reason)
        } catch {
            throw HTTPProblem(.badRequest, "invalidArgument", "the body is not valid JSON: \(error)")
        }
        let kernel = Kernel(config.kernel)
        let (schedule, created) = try await batcher.write { tx in try kernel.createSchedule(id: id, definition, tx: tx, now: Self.now()) }
        return Self.json(created ? .created : .ok, schedule.json)
    }

    /// `GET /schedules/{id}`.
    func schedule(_ id: String) async throws -> Response {
        guard let s = try await store.read({ tx in try tx.schedule(id: id) }) else { throw ScheduleRules.notFound(id) }
        return Self.json(.ok, s.json)
    }

    /// `GET /schedules?limit=n&cursor=c`: `{"schedules": [...], "cursor": "…"}`.
    func schedules(_ request: Request) async throws -> Response {
        var limit = 100
        var cursor: String? = nil
        for (key, value) in request.uri.queryParameters {
            switch key {
            case "limit":
                guard let n = Int(value), (1...PromiseSearch.maximumLimit).contains(n) else {
                    throw HTTPProblem(.badRequest, "invalidArgument", "limit must be a number from 1 to \(PromiseSearch.maximumLimit)")
                }
                limit = n
            case "cursor": cursor = String(value)
            default: throw HTTPProblem(.badRequest, "invalidArgument", "unknown query parameter '\(key)'; use limit, cursor")
            }
        }
        let (l, c) = (limit, cursor)
        let page = try await store.read { tx in try tx.schedules(limit: l, cursor: c) }
        var body: [String: JSONValue] = ["schedules": .array(page.schedules.map(\.json))]
        if let next = page.cursor { body["cursor"] = .string(next) }
        return Self.json(.ok, JSONValue.object(body))
    }

    /// `POST /schedules/{id}/pause|resume` and `DELETE /schedules/{id}`: 200 with the schedule
    /// after it (before it, for a delete).
    func changeSchedule(_ command: Command) async throws -> Response {
        let kernel = Kernel(config.kernel)
        let schedule = try await batcher.write { tx in
            let now = Self.now()
            switch command {
            case .pauseSchedule(let id): return try kernel.pauseSchedule(id, tx: tx, now: now)
            case .resumeSchedule(let id): return try kernel.resumeSchedule(id, tx: tx, now: now)
            case .deleteSchedule(let id): return try kernel.deleteSchedule(id, tx: tx, now: now)
            default: throw StoreError(.invalidArgument, "not a change of a schedule")
            }
        }
        return Self.json(.ok, schedule.json)
    }
}
