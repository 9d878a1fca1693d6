// The seed article's gateway, in Swift: Hummingbird on port 5001.
//   POST /start-workflow {"workflow_id": "hitl-001"}     starts foo-workflow and answers
//        {"message": <its result>} when it completes (it waits for the approval);
//   POST /unblock-workflow {"promise_id": "hitl-001.1"}  resolves the promise with "approved",
//        for a system that holds the promise id (people approve through the signed link the
//        worker mails, which never goes through here).
// Settling is a POST: a GET must never settle anything, since mail scanners and link previews
// open every link they see. Put your own authentication in front of this gateway.
//
//   WARREN_AMQP_URL=amqp://guest:guest@localhost:5672/%2f swift run hitl-gateway
import Foundation
import Hummingbird
import Logging
import Warren

let env = ProcessInfo.processInfo.environment

struct StartRequest: Decodable { var workflow_id: String? }
struct UnblockRequest: Decodable { var promise_id: String? }
struct Message: ResponseEncodable { var message: String }
struct ErrorBody: ResponseEncodable { var error: String }

func reply<T: ResponseEncodable>(_ status: HTTPResponse.Status, _ body: T, _ request: Request, _ context: BasicRequestContext) throws -> Response {
    var response = try body.response(from: request, context: context)
    response.status = status
    return response
}

nonisolated func main() async throws {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = Logger.Level(rawValue: env["LOG_LEVEL"] ?? "") ?? .info
        return handler
    }
    let warren = try await Warren(url: env["WARREN_AMQP_URL"] ?? "amqp://guest:guest@localhost:5672/%2f", group: "gateway",
                                  prefix: env["WARREN_PREFIX"] ?? "warren")
    let router = Router()
    router.post("/start-workflow") { request, context -> Response in
        guard let start = try? await request.decode(as: StartRequest.self, context: context), let id = start.workflow_id, !id.isEmpty else {
            return try reply(.badRequest, ErrorBody(error: "send {\"workflow_id\": \"hitl-001\"}"), request, context)
        }
        do {
            let result = try await warren.rpc(id, "foo-workflow", id, target: "workers", as: String.self)
            return try reply(.ok, Message(message: result), request, context)
        } catch let e as WarrenError where e.code == .refused {
            return try reply(.conflict, ErrorBody(error: e.message), request, context)
        } catch {
            return try reply(.badGateway, ErrorBody(error: "\(error)"), request, context)
        }
    }
    router.get("/unblock-workflow") { request, context -> Response in
        try reply(.methodNotAllowed, ErrorBody(error: "settling is a POST with {\"promise_id\": \"…\"}; people approve through the signed link in the email"),
                  request, context)
    }
    router.post("/unblock-workflow") { request, context -> Response in
        guard let body = try? await request.decode(as: UnblockRequest.self, context: context), let id = body.promise_id, !id.isEmpty else {
            return try reply(.badRequest, ErrorBody(error: "send {\"promise_id\": \"hitl-001.1\"}"), request, context)
        }
        do {
            try await warren.promises.resolve(id, value: "approved")
            return try reply(.ok, Message(message: "workflow unblocked"), request, context)
        } catch let e as WarrenError where e.code == .refused {
            // Already settled (the first outcome wins), or no such promise.
            let status: HTTPResponse.Status = e.message.contains("notFound") ? .notFound : .conflict
            return try reply(status, ErrorBody(error: e.message), request, context)
        }
    }
    let app = Application(router: router, configuration: .init(address: .hostname(env["GATEWAY_HOST"] ?? "127.0.0.1",
                                                                                  port: Int(env["GATEWAY_PORT"] ?? "") ?? 5001)))
    try await app.runService()
    await warren.close()
}

try await main()
