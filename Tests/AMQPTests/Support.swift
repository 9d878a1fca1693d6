import AMQP
import Foundation
import Synchronization
import Testing
import WarrenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The broker most tests share: `WARREN_TEST_AMQP_URL` (Scripts/test.sh starts one), or a
/// private broker started on first use and stopped when the test process exits.
enum SharedBroker {
    private static let started = Mutex<Task<String, any Error>?>(nil)

    static func url() async throws -> String {
        if let url = ProcessInfo.processInfo.environment["WARREN_TEST_AMQP_URL"] { return url }
        let task = started.withLock { t in
            if let t { return t }
            let new = Task<String, any Error> {
                let broker = try await PrivateBroker.start()
                sharedBrokerDir = broker.dir
                atexit {
                    if let dir = sharedBrokerDir {
                        _ = system("bash '\(packageRoot.path)/Scripts/broker.sh' stop '\(dir)' >/dev/null 2>&1; rm -rf '\(dir)'")
                    }
                }
                return broker.url
            }
            t = new
            return new
        }
        return try await task.value
    }
}

nonisolated(unsafe) private var sharedBrokerDir: String?

/// A unique name for a test's queues and exchanges.
func uniqueName(_ prefix: String) -> String {
    "\(prefix)-\(UInt64.random(in: 0..<UInt64.max).description.prefix(10))"
}

/// Expects `body` to throw an `AMQPError` with `code`, within `limit`; returns the error.
@discardableResult
func expectAMQPError(_ code: AMQPError.Code, within limit: Duration = .seconds(15),
                     sourceLocation: SourceLocation = #_sourceLocation,
                     _ body: @escaping @Sendable () async throws -> Void) async -> AMQPError? {
    do {
        try await within(limit, "expected \(code)") { try await body() }
        Issue.record("expected AMQPError.\(code), but nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as AMQPError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected AMQPError.\(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

extension AMQPConsumer {
    /// The next delivery, or a TimedOut error.
    func next(within limit: Duration = .seconds(10)) async throws -> AMQPDelivery {
        let consumer = self
        return try await AMQP_Tests_within(limit) {
            var it = consumer.makeAsyncIterator()
            guard let d = try await it.next() else { throw TimedOut(what: "the consumer ended") }
            return d
        }
    }
}

private func AMQP_Tests_within<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await within(limit, "waiting for a delivery", body)
}
