import Foundation
import WarrenKernel
import WarrenStore

/// The promise record as the Durable Promise Specification's HTTP API carries it: `data` is
/// base64 (of the JSON text Warren stores), headers and tags are string maps.
struct HTTPPromise: Codable, Equatable {
    struct Value: Codable, Equatable {
        var headers: [String: String]?
        var data: String?
    }
    var id: String
    var state: String
    var param: Value
    var value: Value
    var timeout: Int64
    var idempotencyKeyForCreate: String?
    var idempotencyKeyForComplete: String?
    var createdOn: Int64?
    var completedOn: Int64?
    var tags: [String: String]?

    init(_ p: PromiseRecord) {
        id = p.id
        state = p.state.rawValue
        param = Value(headers: p.param.headers, data: p.param.data.map { Data($0.utf8).base64EncodedString() })
        value = Value(headers: p.value.headers, data: p.value.data.map { Data($0.utf8).base64EncodedString() })
        timeout = p.timeout
        idempotencyKeyForCreate = p.idempotencyKeyForCreate
        idempotencyKeyForComplete = p.idempotencyKeyForComplete
        createdOn = p.createdOn
        completedOn = p.completedOn
        tags = p.tags
    }
}

extension HTTPPromise.Value {
    /// The stored form: the base64 `data` decoded to its text.
    func stored(_ what: String) throws(HTTPProblem) -> PromiseValue {
        guard let data else { return PromiseValue(headers: headers ?? [:], data: nil) }
        guard let bytes = Data(base64Encoded: data) else {
            throw HTTPProblem(.badRequest, "invalidArgument", "\(what).data must be base64")
        }
        guard let text = String(data: bytes, encoding: .utf8) else {
            throw HTTPProblem(.badRequest, "invalidArgument", "\(what).data must be base64 of UTF-8 text (Warren stores JSON text)")
        }
        return PromiseValue(headers: headers ?? [:], data: text)
    }
}

/// The body of `POST /promises`.
struct CreatePromiseBody: Decodable {
    var id: String
    var timeout: Int64
    var param: HTTPPromise.Value?
    var tags: [String: String]?
}

/// The body of `PATCH /promises/{id}`.
struct CompletePromiseBody: Decodable {
    var state: String
    var value: HTTPPromise.Value?
}

/// The body of `POST /workflows`.
struct StartWorkflowBody: Decodable {
    var id: String
    var function: String
    var args: [JSONValue]?
    var group: String
    /// Epoch milliseconds, or a duration such as `"24h"`.
    var timeout: JSONValue?
    var tags: [String: String]?
}

/// A workflow as `GET /workflows/{id}` shows it.
struct WorkflowView: Encodable {
    var id: String
    var function: String?
    var state: String
    /// The result (a resolved workflow), as JSON.
    var result: JSONValue?
    /// The error (a rejected workflow), as JSON.
    var error: JSONValue?
    var createdOn: Int64
    var completedOn: Int64?
    var timeout: Int64
    /// Where its task is: pending, acquired, suspended, completed.
    var task: TaskView?
}

struct TaskView: Encodable {
    var id: String
    var group: String
    var state: String
    var version: Int64
    var worker: String?
    var awaiting: [String]?
    var updatedOn: Int64
    /// Why a blocked task cannot go on (the step, what was recorded and what the code did).
    var blocked: String?
    /// The code version the workflow started under, and the queue its execute messages wait in
    /// for a worker that serves it.
    var code: Code?

    struct Code: Encodable {
        var function: String
        var version: Int
        var queue: String
    }
}

extension TaskView {
    /// The task, with what it awaits and the code version its workflow recorded.
    init(_ t: TaskRecord, tx: any StoreReader, topology: Topology, now: Int64) throws {
        self.init(t, awaiting: try tx.awaitedPromises(taskID: t.id))
        if let marker = try tx.promise(id: CodeVersion.markerID(of: t.id), now: now), let version = CodeVersion(marker: marker) {
            code = Code(function: version.function, version: version.version, queue: topology.groupQueueName(t.group, code: version))
        }
    }

    init(_ t: TaskRecord, awaiting: [String]) {
        id = t.id
        group = t.group
        state = t.state.name
        version = t.version
        worker = t.worker
        self.awaiting = awaiting.isEmpty ? nil : awaiting
        updatedOn = t.updatedOn
        blocked = t.blocked
    }
}

/// The optional body of `POST /workflows/{id}/cancel` and `/fail`.
struct DecisionBody: Decodable {
    var reason: String?
}
