import ArgumentParser
import Foundation
import WarrenContract

/// `warren schedules`: workflows started on a cron schedule (docs/workflows.md#schedules).
struct SchedulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedules", abstract: "Start workflows on a cron schedule: create, list, show, pause, resume and delete schedules.",
        subcommands: [Create.self, List.self, Get.self, Pause.self, Resume.self, Delete.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a schedule: at each tick the orchestrator starts a workflow <id>:<tick> (so a tick never starts two).",
            discussion: """
                The expression has five fields (minute hour day-of-month month day-of-week), or six with the second first;
                @daily, @hourly, @weekly, @monthly and @yearly stand for theirs. Ticks missed while the orchestrator was
                down start once (the latest) or not at all (--missed skip). Examples:
                  warren schedules create --cron "0 9 * * MON-FRI" --function daily-report --group reports --arg '"eu"'
                  warren schedules create --id cleanup --cron @hourly --function cleanup --timezone Europe/Paris --missed skip
                """)
        @Option(help: "The schedule's id (default: the function's name); no dots.") var id: String?
        @Option(help: "The cron expression.") var cron: String
        @Option(help: "The registered function to start.") var function: String
        @Option(help: "An argument, as JSON (repeat for more).") var arg: [String] = []
        @Option(help: "All the arguments, as a JSON array (instead of --arg).") var args: String?
        @Option(help: "The worker group that runs it.") var group = "workers"
        @Option(name: .customLong("timezone"), help: "The IANA time zone the expression reads in (default UTC).") var timeZone: String?
        @Option(help: "Each workflow's timeout from its start: 90s, 15m, 24h, 7d.") var timeout = "24h"
        @Option(help: "What a tick missed while the orchestrator was down does: once (the latest starts) or skip.") var missed = "once"
        @Option(name: .customLong("tag"), help: "A tag key=value each workflow carries (repeat for more).") var tags: [String] = []
        @OptionGroup var options: ClientOptions

        func validate() throws {
            do {
                _ = try ScheduleDefinition(cron: cron, timeZone: timeZone, function: function, group: group, timeout: 1).parsed()
            } catch {
                throw ValidationError(error.message)
            }
            guard ScheduleDefinition.MissedTicks(rawValue: missed) != nil else { throw ValidationError("--missed must be once or skip") }
            if args != nil, !arg.isEmpty { throw ValidationError("give the arguments with --arg or with --args, not both") }
            _ = try parseDuration(timeout)
        }

        func run() async throws {
            let arguments: Any
            if let args {
                guard let list = try? JSONSerialization.jsonObject(with: Data(args.utf8)) as? [Any] else {
                    throw ValidationError("--args must be a JSON array, such as '[\"eu\", 3]'")
                }
                arguments = list
            } else {
                arguments = try arg.map { text -> Any in
                    guard let v = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) else {
                        throw ValidationError("--arg must be JSON, such as '\"eu\"' or '{\"region\": \"eu\"}' (quote strings)")
                    }
                    return v
                }
            }
            var tagMap: [String: String] = [:]
            for t in tags {
                guard let eq = t.firstIndex(of: "="), eq != t.startIndex else { throw ValidationError("--tag must be key=value, not '\(t)'") }
                tagMap[String(t[..<eq])] = String(t[t.index(after: eq)...])
            }
            var body: [String: Any] = ["id": id ?? function, "cron": cron, "function": function, "group": group, "args": arguments,
                                       "timeout": timeout, "missedTicks": missed]
            if let timeZone { body["timeZone"] = timeZone }
            if !tagMap.isEmpty { body["tags"] = tagMap }
            try await reporting { SchedulesCommand.show([try await options.client.send("POST", "/schedules", body: body)], options) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List schedules: when each ticks next and what it started last.",
                                                        discussion: "Example:\n  warren schedules list")
        @Option(help: "Schedules per page (at most 1,000).") var limit = 100
        @Option(help: "The cursor a previous page printed.") var cursor: String?
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var query = [("limit", "\(limit)")]
            if let cursor { query.append(("cursor", cursor)) }
            try await reporting {
                let page = try await options.client.send("GET", "/schedules", query: query) as? [String: Any] ?? [:]
                if options.json { printJSON(page); return }
                SchedulesCommand.show(page["schedules"] as? [Any] ?? [], options)
                if let next = page["cursor"] as? String { print("more: --cursor \(next)") }
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a schedule.", discussion: "Example:\n  warren schedules get daily-report")
        @Argument(help: "The schedule's id.") var id: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await reporting { SchedulesCommand.show([try await options.client.send("GET", SchedulesCommand.path(id))], options) }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a schedule ticking; ticks while it is paused start nothing.",
                                                        discussion: "Example:\n  warren schedules pause daily-report")
        @Argument(help: "The schedule's id.") var id: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await reporting { SchedulesCommand.show([try await options.client.send("POST", SchedulesCommand.path(id) + "/pause", body: [:])], options) }
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let a paused schedule tick again, from its next tick after now.",
                                                        discussion: "Example:\n  warren schedules resume daily-report")
        @Argument(help: "The schedule's id.") var id: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await reporting { SchedulesCommand.show([try await options.client.send("POST", SchedulesCommand.path(id) + "/resume", body: [:])], options) }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a schedule; the workflows it started go on.",
                                                        discussion: "Example:\n  warren schedules delete daily-report")
        @Argument(help: "The schedule's id.") var id: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await reporting { SchedulesCommand.show([try await options.client.send("DELETE", SchedulesCommand.path(id))], options) }
        }
    }

    static func path(_ id: String) -> String { "/schedules/" + PromisesCommand.Get.escape(id) }

    static func show(_ schedules: [Any], _ options: ClientOptions) {
        if options.json { printJSON(schedules.count == 1 ? schedules[0] : schedules); return }
        let rows = schedules.compactMap { $0 as? [String: Any] }
        printTable(["SCHEDULE", "CRON", "ZONE", "FUNCTION", "GROUP", "MISSED", "STATE", "NEXT TICK", "LAST WORKFLOW"], rows.map { s in
            [s["id"] as? String ?? "", s["cron"] as? String ?? "", s["timeZone"] as? String ?? "", s["function"] as? String ?? "",
             s["group"] as? String ?? "", s["missedTicks"] as? String ?? "", (s["paused"] as? Bool ?? false) ? "paused" : "active",
             formatTime(s["nextTick"]), s["lastWorkflow"] as? String ?? ""]
        })
        for s in rows { if let e = s["lastError"] as? String { print("\(s["id"] as? String ?? "") last tick: \(e)") } }
    }
}
