import ArgumentParser
import Foundation

/// `warren dead`: what landed in `<prefix>.dead`, why, and what to do with it (docs/messages.md#dead-letters).
struct DeadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead", abstract: "Look at the dead-letter queue, replay messages after a fix, or drop them.",
        discussion: """
            Selectors: all, id:<hex> (the ID column, or the hex alone), key:<routing key, * for any run>, reason:<text>.
            Examples:
              warren dead list
              warren dead replay key:promise.resolve     (after creating the promise it named)
              warren dead purge reason:'not valid JSON'
            """,
        subcommands: [List.self, Replay.self, Purge.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead letters (they stay in the queue): reason, routing key, age, a preview.")
        @Option(help: "Which: all, id:<hex>, key:<glob>, reason:<text>.") var select = "all"
        @Option(help: "How many from the head of the queue to look at (at most 10,000).") var limit = 1000
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await reporting {
                let answer = try await options.client.send("GET", "/dead", query: [("select", select), ("limit", "\(limit)")])
                DeadCommand.show(answer, options, verb: nil)
            }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send the selected dead letters again to where they were going (their exchange and routing key), then remove them.",
            discussion: "The replayed message carries no reply_to and no user_id (the orchestrator's --group-users refuses task reports without one).")
        @Argument(help: "Which: all, id:<hex>, key:<glob>, reason:<text>.") var selector: String
        @Option(help: "How many from the head of the queue to look at (at most 10,000).") var limit = 1000
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await reporting {
                let answer = try await options.client.send("POST", "/dead/replay", query: [("select", selector), ("limit", "\(limit)")])
                DeadCommand.show(answer, options, verb: "replayed")
            }
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Drop the selected dead letters.")
        @Argument(help: "Which: all, id:<hex>, key:<glob>, reason:<text>.") var selector: String
        @Option(help: "How many from the head of the queue to look at (at most 10,000).") var limit = 1000
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await reporting {
                let answer = try await options.client.send("POST", "/dead/purge", query: [("select", selector), ("limit", "\(limit)")])
                DeadCommand.show(answer, options, verb: "purged")
            }
        }
    }

    static func show(_ answer: Any, _ options: ClientOptions, verb: String?) {
        if options.json { printJSON(answer); return }
        let a = answer as? [String: Any] ?? [:]
        let letters = a["letters"] as? [[String: Any]] ?? []
        func cut(_ s: String, _ n: Int) -> String {
            let flat = s.replacingOccurrences(of: "\n", with: " ")
            return flat.count > n ? String(flat.prefix(n - 1)) + "…" : flat
        }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        func age(_ s: Int64) -> String { s < 60 ? "\(s)s" : s < 3600 ? "\(s / 60)m" : s < 86_400 ? "\(s / 3600)h" : "\(s / 86_400)d" }
        printTable(["ID", "ROUTING KEY", "AGE", "BYTES", "REASON", "BODY"], letters.map { l in
            let age = ((l["deadOn"] as? NSNumber)?.int64Value).map { age(max(0, now - $0) / 1000) } ?? ""
            return [l["id"] as? String ?? "", cut(l["routingKey"] as? String ?? "", 40), age, "\(l["bytes"] ?? "")",
                    cut(l["reason"] as? String ?? "", 70), cut(l["preview"] as? String ?? "", 40)]
        })
        let (examined, total) = (a["examined"] as? Int ?? 0, a["total"] as? Int ?? 0)
        if let verb { print("\(verb): \(a[verb] ?? 0)") }
        print("\(letters.count) selected of \(examined) looked at; the queue held \(total)")
    }
}
