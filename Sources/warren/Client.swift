import ArgumentParser
import Foundation
import WarrenContract
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// An error the command reports with a message and a distinct exit code.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    var code: Int32
    init(_ description: String, code: Int32) {
        self.description = description
        self.code = code
    }
}

/// Where the orchestrator's HTTP API is, and `--json`.
struct ClientOptions: ParsableArguments {
    @Option(help: "The orchestrator's HTTP API (WARREN_SERVER).")
    var server = ProcessInfo.processInfo.environment["WARREN_SERVER"] ?? "http://127.0.0.1:8001"

    @Flag(help: "Print JSON, for scripts, instead of a table.")
    var json = false

    /// Read from the environment only, so that it never shows in `ps`.
    var token: String? { ProcessInfo.processInfo.environment["WARREN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 } }

    var client: HTTPClient { HTTPClient(base: server, token: token) }
}

/// The orchestrator's HTTP API, from the command line (Foundation's URLSession).
struct HTTPClient {
    let base: String
    /// The bearer token (`WARREN_TOKEN`), when the API needs one.
    var token: String? = nil

    /// Sends a request and returns the JSON body of a 2xx answer; other answers become a
    /// `CLIError` with the server's message and an exit code for its status.
    func send(_ method: String, _ path: String, query: [(String, String)] = [], body: Any? = nil,
              headers: [String: String] = [:]) async throws -> Any {
        guard var components = URLComponents(string: base.hasSuffix("/") ? String(base.dropLast()) + path : base + path) else {
            throw CLIError("--server '\(base)' is not a URL such as http://127.0.0.1:8001", code: 64)
        }
        if !query.isEmpty { components.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) } }
        guard let url = components.url else { throw CLIError("cannot build a URL from '\(base)' and '\(path)'", code: 64) }
        var request = URLRequest(url: url, timeoutInterval: 30)
        request.httpMethod = method
        for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
        if let token { request.setValue("Bearer " + token, forHTTPHeaderField: "authorization") }
        if let body {
            request.setValue("application/json", forHTTPHeaderField: "content-type")
            request.httpBody = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])
        }
        let data: Data, response: URLResponse
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            throw CLIError("cannot reach the orchestrator at \(base): \(error.localizedDescription). Is `warren serve` running? (--server, WARREN_SERVER)", code: 69)
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        let object = (try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])) ?? [:]
        guard (200..<300).contains(status) else {
            let error = ((object as? [String: Any])?["error"] as? [String: Any])
            let message = error?["message"] as? String ?? String(decoding: data, as: UTF8.self)
            let code: Int32 = switch status {
            case 404: 3
            case 403, 409: 4
            case 401: 77
            case 400, 413: 65
            case 503: 69
            default: 1
            }
            throw CLIError("\(status): \(message)", code: code)
        }
        return object
    }
}

/// Prints rows as aligned columns.
func printTable(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, c in i == cells.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }
    print(line(header))
    rows.forEach { print(line($0)) }
}

/// Prints a JSON value, pretty.
func printJSON(_ object: Any) {
    if let data = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed]) {
        print(String(decoding: data, as: UTF8.self))
    }
}

/// Epoch milliseconds as a local date and time.
func formatTime(_ value: Any?) -> String {
    guard let ms = (value as? NSNumber)?.int64Value, ms > 0 else { return "" }
    if ms >= Int64.max / 2 { return "never" }
    let f = DateFormatter()
    f.dateFormat = "yyyy-MM-dd HH:mm:ss"
    return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
}

/// A promise's data, decoded from base64 to the JSON text Warren stores.
func decodedData(_ value: Any?) -> String {
    guard let v = value as? [String: Any], let b64 = v["data"] as? String, let bytes = Data(base64Encoded: b64) else { return "" }
    return String(decoding: bytes, as: UTF8.self)
}

/// Milliseconds in a duration such as `90s`, `15m`, `24h`, `7d`.
func parseDuration(_ text: String) throws -> Int64 {
    guard let ms = Durations.milliseconds(in: text) else { throw ValidationError("'\(text)' is not \(Durations.example)") }
    return ms
}

/// Checks that `text` is JSON and returns it base64-encoded, as promise data travels over HTTP.
func encodeData(_ text: String, _ option: String) throws -> String {
    guard (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) != nil else {
        throw ValidationError("\(option) must be JSON, such as '\"approved\"' or '{\"amount\": 120}' (quote strings)")
    }
    return Data(text.utf8).base64EncodedString()
}

/// `key=value` pairs from `--tag` options.
func parseTags(_ tags: [String]) throws -> [String: String] {
    var result: [String: String] = [:]
    for t in tags {
        guard let eq = t.firstIndex(of: "="), eq != t.startIndex else { throw ValidationError("--tag '\(t)' must be key=value") }
        result[String(t[..<eq])] = String(t[t.index(after: eq)...])
    }
    return result
}

extension AsyncParsableCommand {
    /// Runs `body`, turning a `CLIError` into its message on stderr and its exit code.
    func reporting(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let e as CLIError {
            FileHandle.standardError.write(Data("warren: \(e.description)\n".utf8))
            throw ExitCode(e.code)
        }
    }
}
