import Foundation
import Logging
import Synchronization
import Warren
import WarrenKernel
import WarrenStore

/// A workflow's recorded history: its promise and every promise below it, as
/// `warren workflows export <id>` writes it (`{"format": "warren.history/1", "promise": …,
/// "children": […]}`).
public struct WorkflowHistory: Sendable, Decodable {
    /// The workflow's own promise: its function and argument, its state.
    public var promise: PromiseRecord
    /// Every promise below it (steps, waits, timers, child workflows), settled or pending.
    public var children: [PromiseRecord]

    public init(promise: PromiseRecord, children: [PromiseRecord]) {
        self.promise = promise
        self.children = children
    }

    /// A history as `warren workflows export` wrote it.
    public init(json: Data) throws {
        do {
            self = try JSONDecoder().decode(WorkflowHistory.self, from: json)
        } catch {
            throw WarrenError(.codec, "not a workflow history (warren workflows export writes one): \(error)")
        }
    }

    /// The history in the file at `url`.
    public init(contentsOf url: URL) throws {
        try self.init(json: try Data(contentsOf: url))
    }
}

/// What replaying a recorded history against the registered code showed.
public struct ReplayReport: Sendable, CustomStringConvertible {
    public enum Outcome: Sendable, Equatable {
        /// The run returned this value (its JSON text).
        case completed(String)
        /// The run threw; this is the error's JSON text.
        case failed(String)
        /// The run reached a wait on these promises (the history's workflow was still waiting).
        case suspended(awaiting: [String])
        /// A step failed and would be retried.
        case retrying(step: String)
        /// The code departed from the history, or cannot run it; the reason says where.
        case blocked(String)
    }

    /// How the run ended.
    public var outcome: Outcome
    /// The first difference between the code and the history, or `nil` when the code replays it
    /// as recorded: the step where the replay departed and both kinds, or the outcome the
    /// history recorded that the replay did not reach.
    public var difference: String?
    /// What the code did past the end of the history (new steps recorded, new promises created), in
    /// order: what deploying it would do next for this workflow.
    public var newCalls: [String]

    public var description: String {
        (difference.map { "differs: \($0)" } ?? "replays as recorded") + "; outcome: \(outcome)"
            + (newCalls.isEmpty ? "" : "; then: \(newCalls.joined(separator: ", "))")
    }
}

extension WarrenTestEnvironment {
    /// Replays `history` against the functions registered here, as a worker of the new code
    /// would after a deploy, and reports the first difference:
    ///
    /// ```swift
    /// let history = try WorkflowHistory(contentsOf: URL(fileURLWithPath: "Tests/Histories/refund-42.json"))
    /// let report = try await env.replay(history)
    /// #expect(report.difference == nil, "\(report)")
    /// ```
    ///
    /// Nothing is written anywhere: the steps the history recorded are not run again, and the run
    /// stops at the first wait the history has not settled. Steps past the end of the history
    /// do run (as they would after the deploy); give the test harmless versions of their effects.
    public func replay(_ history: WorkflowHistory) async throws -> ReplayReport {
        let id = history.promise.id
        let recorder = Recorder(history: history, now: Int64(now.timeIntervalSince1970 * 1000))
        let body = try Self.executeBody(history, group: group)
        try await runner(transport: recorder).run(executeBody: body)
        let (reports, created) = recorder.taken
        guard let last = reports.last else { throw WarrenError(.refused, "replaying \(id) made no report") }
        let fields = (try? JSONValue.parse(last.body))?.objectValue ?? [:]
        let recorded = Set(history.children.map(\.id))
        let steps = reports.flatMap { report -> [String] in
            guard case .array(let items)? = (try? JSONValue.parse(report.body))?.objectValue?["steps"] else { return [] }
            return items.compactMap { $0.objectValue?["id"]?.stringValue }
        }
        let newCalls = (created + steps).filter { !recorded.contains($0) }
        let outcome: ReplayReport.Outcome
        switch last.kind {
        case .blockTask: outcome = .blocked(fields["reason"]?.stringValue ?? "")
        case .suspendTask:
            let awaiting: [String]
            if case .array(let items)? = fields["awaiting"] { awaiting = items.compactMap(\.stringValue) } else { awaiting = [] }
            outcome = .suspended(awaiting: awaiting)
        case .retryTask: outcome = .retrying(step: fields["step"]?.stringValue ?? "")
        default:
            let value = fields["value"]?.jsonText ?? "null"
            outcome = fields["state"]?.stringValue == "resolved" ? .completed(value) : .failed(value)
        }
        return ReplayReport(outcome: outcome, difference: Self.difference(outcome, history), newCalls: newCalls)
    }

    /// The first difference between a replay's outcome and what the history recorded.
    static func difference(_ outcome: ReplayReport.Outcome, _ history: WorkflowHistory) -> String? {
        let root = history.promise
        if case .blocked(let reason) = outcome { return reason }
        guard root.isSettled, root.state != .rejectedCanceled else { return nil }
        let recorded = root.value.data ?? "null"
        switch outcome {
        case .completed(let value) where root.state == .resolved:
            return same(value, recorded) ? nil : "the history's workflow returned \(recorded), the replay returns \(value)"
        case .failed(let error) where root.state != .resolved:
            return same(error, recorded) ? nil : "the history's workflow failed with \(recorded), the replay fails with \(error)"
        default:
            return "the history's workflow ended \(root.state.rawValue) with \(recorded), the replay ends \(outcome)"
        }
    }

    /// Whether two JSON texts hold the same value (objects compare without their keys' order).
    static func same(_ a: String, _ b: String) -> Bool {
        guard let x = try? JSONValue.parse(a), let y = try? JSONValue.parse(b) else { return a == b }
        return x == y
    }

    static func executeBody(_ history: WorkflowHistory, group: String) throws -> [UInt8] {
        let children = history.children.map(\.jsonText).joined(separator: ",")
        let text = "{\"children\":[\(children)],\"promise\":\(history.promise.jsonText),\"task\":{\"group\":\(JSONValue.quote(group)),"
            + "\"id\":\(JSONValue.quote(history.promise.id)),\"version\":1}}"
        return Array(text.utf8)
    }

    /// A transport for a replay: answers from the history, records what the run sends.
    final class Recorder: Transport {
        private let history: [String: PromiseRecord]
        private let now: Int64
        /// What the run sent, and the promises it created past the history.
        private let sent = Mutex<(reports: [(kind: MessageKind, body: String)], created: [String])>(([], []))

        init(history: WorkflowHistory, now: Int64) {
            self.history = Dictionary((history.children + [history.promise]).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            self.now = now
        }

        var taken: (reports: [(kind: MessageKind, body: String)], created: [String]) { sent.withLock { $0 } }

        func promiseRequest(_ kind: MessageKind, _ body: String) async throws -> (promise: PromiseRecord, created: Bool) {
            switch try WarrenTestEnvironment.decode(kind, body, now: now) {
            case .createPromise(let r), .startWorkflow(let r, _, _):
                if let p = history[r.id] { return (p, false) }
                sent.withLock { $0.created.append(r.id) }
                return (PromiseRecord(id: r.id, param: r.param, timeout: r.timeout, createdOn: now, tags: r.tags), true)
            case .getPromise(let id), .subscribe(let id):
                guard let p = history[id] else { throw WarrenError(.refused, "\(kind): \(id) is not in the history") }
                return (p, false)
            default:
                throw WarrenError(.refused, "\(kind) is not answered during a replay")
            }
        }

        func send(_ kind: MessageKind, _ body: String) throws -> any Receipt {
            sent.withLock { $0.reports.append((kind, body)) }
            return Sent()
        }

        private struct Sent: Receipt {
            func wait() async throws {}
        }
    }
}
