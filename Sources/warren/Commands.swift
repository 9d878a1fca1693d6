import ArgumentParser
import Foundation
import WarrenContract
import WarrenLinks
import WarrenStore

// The commands that talk to a running orchestrator's HTTP API, and `migrate`.

struct PromisesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promises",
        abstract: "Look at, create and settle durable promises.",
        subcommands: [Get.self, Create.self, Resolve.self, Reject.self, Cancel.self, Search.self, Link.self])

    static let header = ["ID", "STATE", "CREATED", "TIMEOUT", "VALUE", "TAGS"]

    static func row(_ p: [String: Any]) -> [String] {
        let tags = (p["tags"] as? [String: String] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        let value = decodedData(p["value"])
        return [p["id"] as? String ?? "", p["state"] as? String ?? "", formatTime(p["createdOn"]), formatTime(p["timeout"]),
                value.count > 40 ? String(value.prefix(39)) + "…" : value, tags]
    }

    static func show(_ object: Any, _ options: ClientOptions) {
        if options.json { printJSON(object) } else if let p = object as? [String: Any] { printTable(header, [row(p)]) }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a promise.", discussion: "Example:\n  warren promises get hitl-001.1")
        @Argument(help: "The promise's id.") var id: String
        @OptionGroup var options: ClientOptions
        func run() async throws {
            try await reporting { show(try await options.client.send("GET", "/promises/" + Self.escape(id)), options) }
        }
        static func escape(_ id: String) -> String { id.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? id }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a promise.",
            discussion: "Example:\n  warren promises create approval-7 --timeout 24h --tag human=true --data '{\"amount\": 120}'")
        @Argument(help: "The promise's id.") var id: String
        @Option(help: "How long until it times out: 90s, 15m, 24h, 7d.") var timeout = "24h"
        @Option(help: "Its param, as JSON.") var data: String?
        @Option(name: .customLong("tag"), help: "A tag, key=value (repeat for more).") var tags: [String] = []
        @Option(name: .customLong("idempotency-key"), help: "Creating again with the same key returns the promise.") var key: String?
        @OptionGroup var options: ClientOptions
        func run() async throws {
            let timeout = Int64(Date().timeIntervalSince1970 * 1000) + (try parseDuration(self.timeout))
            var body: [String: Any] = ["id": id, "timeout": timeout, "tags": try parseTags(tags)]
            if let data { body["param"] = ["data": try encodeData(data, "--data")] }
            try await reporting {
                show(try await options.client.send("POST", "/promises", body: body, headers: key.map { ["idempotency-key": $0] } ?? [:]), options)
            }
        }
    }

    struct Link: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a signed approval link for a promise (docs/http.md#approval-links).",
            discussion: """
                Signs with the key in WARREN_LINK_KEY ('KEY-ID SECRET', or the file WARREN_LINK_KEY_FILE), which the
                orchestrator must hold (--link-keys-file); the link points at WARREN_LINK_URL (default: --server).
                The link works until --expires (default: the promise's timeout), and only while the promise is pending.
                Example:
                  warren promises link approval-7 --outcomes approved,rejected --expires 48h
                """)
        @Argument(help: "The promise's id.") var id: String
        @Option(help: "The outcomes the link offers, comma-separated; each resolves the promise with its name.") var outcomes = "approved,rejected"
        @Option(help: "How long the link works: 90s, 15m, 24h, 7d (default: until the promise's timeout).") var expires: String?
        @OptionGroup var options: ClientOptions
        func run() async throws {
            try await reporting {
                var env = ProcessInfo.processInfo.environment
                if env["WARREN_LINK_URL"] == nil { env["WARREN_LINK_URL"] = options.server }
                let signer: LinkSigner
                do {
                    guard let s = try LinkSigner.fromEnvironment(env) else {
                        throw CLIError("set WARREN_LINK_KEY ('KEY-ID SECRET', a key the orchestrator holds) or WARREN_LINK_KEY_FILE", code: 64)
                    }
                    signer = s
                } catch let e as LinkError {
                    throw CLIError(e.message, code: 64)
                }
                // The promise must exist; its timeout is the link's default expiry.
                let promise = try await options.client.send("GET", "/promises/" + Get.escape(id)) as? [String: Any] ?? [:]
                let expiry: Int64
                if let expires {
                    expiry = Int64(Date().timeIntervalSince1970 * 1000) + (try parseDuration(expires))
                } else {
                    expiry = (promise["timeout"] as? NSNumber)?.int64Value ?? Int64(Date().timeIntervalSince1970 * 1000) + 86_400_000
                }
                do {
                    let link = try signer.link(promiseID: id, outcomes: outcomes.split(separator: ",").map(String.init), expires: expiry)
                    if options.json { printJSON(["link": link, "expires": expiry]) } else { print(link) }
                } catch let e as LinkError {
                    throw CLIError(e.message, code: 64)
                }
            }
        }
    }

    /// What resolve, reject and cancel share.
    struct Completion: ParsableArguments {
        @Argument(help: "The promise's id.") var id: String
        @Option(help: "The value, as JSON (quote strings: '\"approved\"').") var data: String?
        @Option(help: "A comment, kept in the value's headers.") var comment: String?
        @Option(name: .customLong("idempotency-key"), help: "Settling again with the same key returns the promise.") var key: String?
        @OptionGroup var options: ClientOptions

        func send(_ state: String) async throws {
            var value: [String: Any] = ["headers": comment.map { ["comment": $0] } ?? [:]]
            if let data { value["data"] = try encodeData(data, "--data") }
            show(try await options.client.send("PATCH", "/promises/" + Get.escape(id), body: ["state": state, "value": value],
                                               headers: key.map { ["idempotency-key": $0] } ?? [:]), options)
        }
    }

    struct Resolve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Resolve a promise; the first outcome wins.",
            discussion: "Example:\n  warren promises resolve hitl-001.1 --data '\"approved\"' --comment 'looks good'")
        @OptionGroup var completion: Completion
        func run() async throws { try await reporting { try await completion.send("RESOLVED") } }
    }

    struct Reject: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Reject a promise; the first outcome wins.",
            discussion: "Example:\n  warren promises reject hitl-001.1 --data '\"rejected\"' --comment 'too expensive'")
        @OptionGroup var completion: Completion
        func run() async throws { try await reporting { try await completion.send("REJECTED") } }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a promise.", discussion: "Example:\n  warren promises cancel approval-7")
        @OptionGroup var completion: Completion
        func run() async throws { try await reporting { try await completion.send("REJECTED_CANCELED") } }
    }

    struct Search: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Search promises by id pattern, state and tags.",
            discussion: "Examples:\n  warren promises search 'hitl-*' --state pending\n  warren promises search --tag human=true --json")
        @Argument(help: "An id pattern; * matches any run of characters.") var pattern = "*"
        @Option(help: "pending, resolved, rejected, rejected_canceled or rejected_timedout.") var state: String?
        @Option(name: .customLong("tag"), help: "A tag that must match, key=value (repeat for more).") var tags: [String] = []
        @Option(help: "Promises per page (at most 1,000).") var limit = 100
        @Option(help: "The cursor a previous page printed.") var cursor: String?
        @OptionGroup var options: ClientOptions
        func run() async throws {
            var query: [(String, String)] = [("id", pattern), ("limit", "\(limit)")]
            if let state { query.append(("state", state)) }
            if let cursor { query.append(("cursor", cursor)) }
            for (k, v) in try parseTags(tags).sorted(by: { $0.key < $1.key }) { query.append(("tags[\(k)]", v)) }
            try await reporting {
                let page = try await options.client.send("GET", "/promises", query: query) as? [String: Any] ?? [:]
                if options.json { printJSON(page); return }
                let promises = page["promises"] as? [[String: Any]] ?? []
                printTable(header, promises.map(row))
                if let next = page["cursor"] as? String { print("more: --cursor \(next)") }
            }
        }
    }
}

/// `warren invoke`: start a workflow.
struct Invoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a workflow (the same id again finds it).",
        discussion: "Example:\n  warren invoke hitl-002 --func foo-workflow --arg '\"hitl-002\"' --group workers --timeout 1h")
    @Argument(help: "The workflow's id.") var id: String
    @Option(name: .customLong("func"), help: "The registered function to run.") var function: String
    @Option(help: "Its argument, as JSON (repeat for more arguments).") var arg: [String] = []
    @Option(help: "The worker group that runs it.") var group = "workers"
    @Option(help: "How long until it times out: 90s, 15m, 24h, 7d.") var timeout = "24h"
    @OptionGroup var options: ClientOptions

    func run() async throws {
        _ = try parseDuration(timeout)
        let args = try arg.map { text -> Any in
            guard let v = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) else {
                throw ValidationError("--arg must be JSON, such as '\"hitl-002\"' or '{\"amount\": 120}' (quote strings)")
            }
            return v
        }
        try await reporting {
            let wf = try await options.client.send("POST", "/workflows", body: ["id": id, "function": function, "args": args, "group": group, "timeout": timeout])
            if options.json { printJSON(wf); return }
            let w = wf as? [String: Any] ?? [:]
            printTable(["WORKFLOW", "FUNCTION", "STATE", "CREATED", "TIMEOUT"],
                       [[w["id"] as? String ?? "", w["function"] as? String ?? "", w["state"] as? String ?? "", formatTime(w["createdOn"]), formatTime(w["timeout"])]])
        }
    }
}

/// `warren tree`: a workflow's call tree.
struct Tree: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a workflow's call tree: every promise below it, with its state and timings.",
        discussion: "Example:\n  warren tree hitl-001")
    @Argument(help: "The workflow's id.") var id: String
    @OptionGroup var options: ClientOptions

    /// Workflow `id`'s promise and every promise below it, page by page.
    static func fetch(_ id: String, _ client: HTTPClient) async throws -> (root: [String: Any], children: [[String: Any]]) {
        let root = try await client.send("GET", "/promises/" + PromisesCommand.Get.escape(id)) as? [String: Any] ?? [:]
        var children: [[String: Any]] = []
        var cursor: String? = nil
        repeat {
            var query = [("id", id + ".*"), ("limit", "1000")]
            if let cursor { query.append(("cursor", cursor)) }
            let page = try await client.send("GET", "/promises", query: query) as? [String: Any] ?? [:]
            children += page["promises"] as? [[String: Any]] ?? []
            cursor = page["cursor"] as? String
        } while cursor != nil
        return (root, children)
    }

    func run() async throws {
        try await reporting {
            let (root, children) = try await Self.fetch(id, options.client)
            let all = [root] + children
            if options.json { printJSON(all); return }
            // Children in call order: by their numbers, not as strings.
            func key(_ p: [String: Any]) -> [Int] { (p["id"] as? String ?? "").split(separator: ".").dropFirst().map { Int($0) ?? 0 } }
            for p in all.sorted(by: { key($0).lexicographicallyPrecedes(key($1)) }) {
                let depth = key(p).count
                let tags = p["tags"] as? [String: String] ?? [:]
                let kind = depth == 0 ? (tags["warren:function"].map { "workflow \($0)" } ?? "promise") : (tags["warren:kind"] ?? "promise")
                var timing = "created \(formatTime(p["createdOn"]))"
                if let c = (p["createdOn"] as? NSNumber)?.int64Value, let d = (p["completedOn"] as? NSNumber)?.int64Value {
                    timing += ", took \(d - c) ms"
                } else if (p["state"] as? String) == "PENDING" {
                    timing += ", times out \(formatTime(p["timeout"]))"
                }
                let value = decodedData(p["value"])
                let shown = value.isEmpty ? "" : " = " + (value.count > 50 ? String(value.prefix(49)) + "…" : value)
                print(String(repeating: "  ", count: depth) + "\(depth == 0 ? "" : "└ ")\(p["id"] as? String ?? "")  [\(kind)]  \(p["state"] as? String ?? "")\(shown)  (\(timing))")
            }
        }
    }
}

struct TasksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tasks", abstract: "Look at tasks.", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List tasks: which workflow runs where, which waits for what.",
            discussion: "Examples:\n  warren tasks list\n  warren tasks list --state blocked")
        @Option(help: "pending, acquired, suspended, completed or blocked.") var state: String?
        @Option(help: "Tasks per page (at most 1,000).") var limit = 100
        @Option(help: "The cursor a previous page printed.") var cursor: String?
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var query = [("limit", "\(limit)")]
            if let state { query.append(("state", state)) }
            if let cursor { query.append(("cursor", cursor)) }
            try await reporting {
                let page = try await options.client.send("GET", "/tasks", query: query) as? [String: Any] ?? [:]
                if options.json { printJSON(page); return }
                let tasks = page["tasks"] as? [[String: Any]] ?? []
                func code(_ t: [String: Any]) -> [String: Any]? { t["code"] as? [String: Any] }
                printTable(["TASK", "GROUP", "STATE", "VERSION", "CODE", "WORKER", "AWAITING", "UPDATED"], tasks.map { t in
                    [t["id"] as? String ?? "", t["group"] as? String ?? "", t["state"] as? String ?? "", "\(t["version"] ?? "")",
                     code(t).map { "\($0["function"] ?? "") v\($0["version"] ?? "")" } ?? "",
                     t["worker"] as? String ?? "", (t["awaiting"] as? [String] ?? []).joined(separator: ","), formatTime(t["updatedOn"])]
                })
                for t in tasks {
                    let id = t["id"] as? String ?? ""
                    if let why = t["blocked"] as? String { print("\(id) blocked: \(why)") }
                    if t["state"] as? String == "pending", let c = code(t), let queue = c["queue"] as? String {
                        print("\(id) waits in \(queue) for a worker that serves \(c["function"] ?? "") v\(c["version"] ?? "")")
                    }
                }
                if let next = page["cursor"] as? String { print("more: --cursor \(next)") }
            }
        }
    }
}

/// `warren topology`: what Warren declares on the broker, for a team that manages it itself.
struct TopologyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology", abstract: "Warren's exchanges, queues and bindings, for a team that manages its broker's topology.",
        subcommands: [Export.self], defaultSubcommand: Export.self)

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print Warren's topology as a RabbitMQ definitions document.",
            discussion: """
                Import it with `rabbitmqctl import_definitions FILE` (or the management UI), then run Warren with
                --declare verify (or none). Example:
                  warren topology export --queue-type quorum --group refunds --group reports > warren-definitions.json
                  warren topology export --group refunds --code refunds,refund,v1 --code refunds,refund,v2
                """)
        @Option(help: "The prefix of every exchange and queue (WARREN_PREFIX).") var prefix = ProcessInfo.processInfo.environment["WARREN_PREFIX"] ?? "warren"
        @Option(help: "The vhost the definitions are for.") var vhost = "/"
        @Option(name: .customLong("queue-type"), help: "classic or quorum (WARREN_QUEUE_TYPE).")
        var queueType = ProcessInfo.processInfo.environment["WARREN_QUEUE_TYPE"] ?? "classic"
        @Option(name: .customLong("delivery-limit"), help: "The x-delivery-limit of quorum queues.") var deliveryLimit = Topology.defaultDeliveryLimit
        @Option(name: .customLong("group"), help: "A worker group whose queue to include (repeat for more).") var groups: [String] = []
        @Option(name: .customLong("code"),
                help: "A code version's queue to include, as <group>,<function>,v<n> (register(_:version:); repeat for more).")
        var codes: [String] = []

        func validate() throws {
            guard Topology.QueueType(rawValue: queueType) != nil else { throw ValidationError("--queue-type must be classic or quorum") }
            for c in codes where Topology.route(ofExecuteRoutingKey: Topology.executePrefix + c)?.code == nil {
                throw ValidationError("--code '\(c)' is not <group>,<function>,v<n> (for example refunds,refund,v2)")
            }
        }

        func run() throws {
            let versions = codes.compactMap { Topology.route(ofExecuteRoutingKey: Topology.executePrefix + $0) }
                .compactMap { r in r.code.map { (group: r.group, code: $0) } }
            print(Topology(prefix: prefix, queueType: Topology.QueueType(rawValue: queueType)!, deliveryLimit: deliveryLimit)
                .definitions(vhost: vhost, groups: groups, codes: versions))
        }
    }
}

/// `warren outbox`: the outgoing messages the broker refused, and sending them again.
struct OutboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox", abstract: "Outgoing messages the broker refused, set aside with the reason.",
        discussion: "The orchestrator never lets one refused message hold up the others: it sets it aside. Examples:\n"
            + "  warren outbox list\n  warren outbox retry --seq 42      (after fixing the cause)",
        subcommands: [List.self, Retry.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the messages set aside.")
        @OptionGroup var options: ClientOptions
        func run() async throws {
            try await reporting {
                let page = try await options.client.send("GET", "/outbox") as? [String: Any] ?? [:]
                if options.json { printJSON(page); return }
                let messages = page["messages"] as? [[String: Any]] ?? []
                printTable(["SEQ", "KIND", "ROUTING KEY", "BYTES", "SET ASIDE", "REASON"], messages.map { m in
                    let key = m["routingKey"] as? String ?? ""
                    return ["\(m["seq"] ?? "")", m["kind"] as? String ?? "", key.count > 40 ? String(key.prefix(39)) + "…" : key,
                            "\(m["bytes"] ?? "")", formatTime(m["failedOn"]), m["reason"] as? String ?? ""]
                })
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send messages set aside again: those named, or all.")
        @Option(name: .customLong("seq"), help: "A message's sequence number (repeat for more); all without it.") var sequences: [Int64] = []
        @OptionGroup var options: ClientOptions
        func run() async throws {
            try await reporting {
                let answer = try await options.client.send("POST", "/outbox/retry", query: sequences.map { ("seq", "\($0)") }) as? [String: Any] ?? [:]
                if options.json { printJSON(answer) } else { print("put back: \(answer["retried"] ?? 0)") }
            }
        }
    }
}

/// `warren backup`: a consistent copy of a database, taken while the orchestrator runs.
struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy the database with SQLite's online backup, while warren serve keeps working.",
        discussion: "Restore by stopping warren serve and starting it on the copy (or moving the copy in place). Example:\n"
            + "  warren backup --db /var/lib/warren/warren.db --to /backups/warren-$(date +%F).db")
    @Option(name: .customLong("db"), help: "The SQLite file (WARREN_DB).")
    var database = ProcessInfo.processInfo.environment["WARREN_DB"] ?? "warren.db"
    @Option(name: .customLong("to"), help: "The new file to write.") var destination: String

    func run() async throws {
        try await reporting {
            guard FileManager.default.fileExists(atPath: database) else { throw CLIError("no database at '\(database)'", code: 3) }
            do {
                let store = try SQLiteStore(path: database)
                try store.backup(to: destination)
                print("\(database) → \(destination)")
            } catch let e as StoreError {
                throw CLIError(e.message, code: 1)
            }
        }
    }
}

/// `warren migrate`: bring a database file to this version's schema.
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create or migrate the database file to this version's schema (serve does it too, at start).",
        discussion: "Example:\n  warren migrate --db /var/lib/warren/warren.db")
    @Option(name: .customLong("db"), help: "The SQLite file (WARREN_DB).")
    var database = ProcessInfo.processInfo.environment["WARREN_DB"] ?? "warren.db"
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await reporting {
            do {
                let store = try SQLiteStore(path: database)
                let applied = try store.appliedMigrations()
                if json { printJSON(["database": database, "migrations": applied]) } else { print("\(database): migrations \(applied.joined(separator: ", "))") }
            } catch let e as StoreError {
                throw CLIError(e.message, code: 1)
            }
        }
    }
}
