import ArgumentParser
import Foundation

/// `warren workflows`: an operator's decisions on workflows (docs/workflows.md).
struct WorkflowsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workflows", abstract: "Look at workflows, cancel them, retry blocked ones or fail them, export their histories.",
        subcommands: [Get.self, Cancel.self, Retry.self, Fail.self, Export.self])

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a workflow's history (its promise and every promise below it) as JSON, to replay against new code "
                + "before deploying it (WarrenTesting's WarrenTestEnvironment.replay).",
            discussion: "Example:\n  warren workflows export refund-42 --output Tests/Histories/refund-42.json")
        @Argument(help: "The workflow's id.") var id: String
        @Option(help: "The file to write (default: standard output).") var output: String?
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await reporting {
                let (root, children) = try await Tree.fetch(id, options.client)
                // As the workers see them (docs/messages.md): data as its text, not the HTTP API's base64.
                func plain(_ p: [String: Any]) -> [String: Any] {
                    var p = p
                    for field in ["param", "value"] {
                        guard var v = p[field] as? [String: Any], let b64 = v["data"] as? String, let bytes = Data(base64Encoded: b64) else { continue }
                        v["data"] = String(decoding: bytes, as: UTF8.self)
                        p[field] = v
                    }
                    return p
                }
                let document: [String: Any] = ["format": "warren.history/1", "promise": plain(root), "children": children.map(plain)]
                let data = try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
                if let output {
                    do {
                        try data.write(to: URL(fileURLWithPath: output))
                    } catch {
                        throw CLIError("cannot write \(output): \(error.localizedDescription)", code: 73)
                    }
                    FileHandle.standardError.write(Data("wrote \(id)'s history (\(children.count + 1) promises) to \(output)\n".utf8))
                } else {
                    FileHandle.standardOutput.write(data + Data("\n".utf8))
                }
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a workflow: its state, result or error, and its task.",
                                                        discussion: "Example:\n  warren workflows get refund-42")
        @Argument(help: "The workflow's id.") var id: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await reporting { WorkflowsCommand.show(try await options.client.send("GET", WorkflowsCommand.path(id)), options) }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel a workflow: it becomes REJECTED_CANCELED, what it waits for is canceled (detached children are not), "
                + "and its code sees the cancellation at its await and may compensate within --cancel-grace.",
            discussion: "Example:\n  warren workflows cancel refund-42 --reason 'customer withdrew the request'")
        @Argument(help: "The workflow's id.") var id: String
        @Option(help: "Why, kept in the workflow's value.") var reason: String?
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await reporting {
                WorkflowsCommand.show(try await options.client.send("POST", WorkflowsCommand.path(id) + "/cancel",
                                                                    body: reason.map { ["reason": $0] } ?? [:]), options)
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Hand a blocked workflow (and every blocked task below it) to the workers again now, after a fixed deploy.",
            discussion: "Examples:\n  warren tasks list --state blocked\n  warren workflows retry refund-42")
        @Argument(help: "The workflow's id.") var id: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await reporting { WorkflowsCommand.show(try await options.client.send("POST", WorkflowsCommand.path(id) + "/retry", body: [:]), options) }
        }
    }

    struct Fail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give up on a workflow: reject it with a reason and cancel what it waits for (no compensating run).",
            discussion: "Example:\n  warren workflows fail refund-42 --reason 'history recorded by code that no longer exists'")
        @Argument(help: "The workflow's id.") var id: String
        @Option(help: "Why, kept in the workflow's error.") var reason: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await reporting {
                WorkflowsCommand.show(try await options.client.send("POST", WorkflowsCommand.path(id) + "/fail", body: ["reason": reason]), options)
            }
        }
    }

    static func path(_ id: String) -> String { "/workflows/" + PromisesCommand.Get.escape(id) }

    static func show(_ workflow: Any, _ options: ClientOptions) {
        if options.json { printJSON(workflow); return }
        let w = workflow as? [String: Any] ?? [:]
        let task = w["task"] as? [String: Any] ?? [:]
        printTable(["WORKFLOW", "FUNCTION", "STATE", "TASK", "CREATED", "COMPLETED"],
                   [[w["id"] as? String ?? "", w["function"] as? String ?? "", w["state"] as? String ?? "", task["state"] as? String ?? "",
                     formatTime(w["createdOn"]), formatTime(w["completedOn"])]])
        if let blocked = task["blocked"] as? String { print("blocked: \(blocked)") }
        if let error = w["error"] { print("error: \(error)") }
    }
}
