import Foundation
import Testing
import WarrenTestSupport
@testable import WarrenOrchestrator

#if canImport(Glibc)
import Glibc
#endif

/// `--log-format json` on a real `warren serve`, and the redaction every log line goes through.
@Suite("Logs")
struct LogFormatTests {
    @Test func credentialsInURLsAreRedactedWhateverLogsThem() {
        typealias R = Redacting<JSONLogHandler>
        #expect(R.redact("connecting to amqps://warren:s3cret@rmq1:5671/%2f now") == "connecting to amqps://warren:***@rmq1:5671/%2f now")
        #expect(R.redact("postgres://u:p%40ss@db/warren?schema=x and amqp://a:b@h") == "postgres://u:***@db/warren?schema=x and amqp://a:***@h")
        #expect(R.redact("amqp://guest@localhost/ (no password)") == "amqp://guest@localhost/ (no password)")
        #expect(R.redact("mail ada@example.com about http://example.com/x") == "mail ada@example.com about http://example.com/x")
        #expect(R.redact("no url here") == "no url here")
    }

    @Test func jsonLogsAreOneObjectPerLineWithMetadataAndNoPassword() async throws {
        let orchestrator = OrchestratorProcess(url: try brokerURL())
        defer { orchestrator.remove() }
        try await orchestrator.start(["--log-format", "json", "--log-level", "debug"])
        // A refused command is logged with its metadata.
        _ = try await http("POST", orchestrator.httpURL + "/workflows", #"{"id": "log-1", "function": "f", "group": "g"}"#)
        _ = await orchestrator.kill(SIGTERM)
        let lines = orchestrator.logText.split(separator: "\n").filter { $0.hasPrefix("{") }
        #expect(lines.count >= 3, "\(orchestrator.logText.prefix(2000))")
        var levels: Set<String> = []
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not JSON: \(line)")
            #expect(object["time"] is String && object["message"] is String && object["label"] is String, "\(line)")
            levels.insert(object["level"] as? String ?? "")
        }
        #expect(levels.contains("info"), "\(levels)")
        #expect(lines.contains { $0.contains("\"prefix\"") || $0.contains("\"queue\"") || $0.split(separator: ",").count > 4 }, "no line has metadata")
        #expect(!orchestrator.logText.contains(":guest@"), "a password reached the log")
        let bad = try await run(productsDirectory + "/warren", ["serve", "--log-format", "xml"])
        #expect(bad.status == 64 && bad.output.contains("--log-format must be text or json"), "\(bad.output)")
    }
}
