/// How an orchestrator runs: where its broker and database are, and the names it uses.
public struct OrchestratorConfiguration: Sendable {
    /// The AMQP URI of the broker.
    public var amqpURL: String
    /// The SQLite file holding every promise.
    public var databasePath: String
    /// The prefix of every exchange and queue (`warren` gives `warren`, `warren.orchestrator`...).
    public var prefix: String
    /// How many deliveries the broker sends before they are acked; also the largest batch.
    public var prefetch: UInt16 = 512
    /// The timeout of a promise or workflow whose message names none, in milliseconds.
    public var defaultTimeout: Int64 = 86_400_000
    /// The largest message body accepted.
    public var maximumBodyBytes = 1 << 20 + 64 * 1024
    /// How long a settled workflow (its root promise and everything below it) is kept, in
    /// milliseconds; `nil` keeps everything.
    public var retention: Int64? = nil
    /// Where the HTTP API listens; `nil` for no HTTP server.
    public var httpPort: Int? = 8001
    /// The address the HTTP API binds (`0.0.0.0` to serve other hosts, as in a container).
    public var httpHost = "127.0.0.1"

    public init(amqpURL: String = "amqp://guest:guest@localhost:5672/%2f", databasePath: String = "warren.db",
                prefix: String = "warren") {
        self.amqpURL = amqpURL
        self.databasePath = databasePath
        self.prefix = prefix
    }

    // The topology (docs/messages.md).
    var exchange: String { prefix }
    var deadLetterExchange: String { prefix + ".dlx" }
    var orchestratorQueue: String { prefix + ".orchestrator" }
    var deadQueue: String { prefix + ".dead" }
    func groupQueue(_ group: String) -> String { prefix + ".group." + group }
}
