import Foundation

/// Everything a connection needs: where, who, and how it behaves when things go wrong.
///
/// Build one from a URI and adjust what you need:
/// ```swift
/// var config = try AMQPConfiguration(url: "amqp://guest:guest@localhost:5672/%2f")
/// config.connectionName = "orders-worker"
/// let connection = try await AMQPConnection.connect(config)
/// ```
public struct AMQPConfiguration: Sendable {
    /// How the client authenticates.
    public enum Authentication: Sendable, Equatable {
        /// User name and password (SASL PLAIN).
        case plain
        /// The TLS client certificate's identity (SASL EXTERNAL; needs the broker's
        /// `rabbitmq_auth_mechanism_ssl` plugin).
        case external
    }

    /// TLS settings for `amqps://`.
    public struct TLS: Sendable, Equatable {
        /// A PEM file of the certificate authorities to trust. `nil` trusts the system's bundle
        /// (``systemCABundle(environment:)``: `SSL_CERT_FILE`, else the distribution's file), as
        /// browsers and `curl` do; set it for a private CA.
        public var caCertificatePath: String?
        /// A PEM client certificate and its key, for brokers that ask for one.
        public var clientCertificatePath: String?
        public var clientKeyPath: String?
        /// Check the broker's certificate chain (default `true`).
        public var verifyPeer = true
        /// Check that the certificate names the host connected to (default `true`).
        public var verifyHostname = true

        /// The system's bundle of trusted certificate authorities: the file `SSL_CERT_FILE` names,
        /// else the first that exists of Debian's and Ubuntu's, Fedora's and RHEL's, Alpine's
        /// and macOS's usual places; `nil` when none exists.
        public static func systemCABundle(environment: [String: String] = ProcessInfo.processInfo.environment,
                                          exists: (String) -> Bool = { FileManager.default.fileExists(atPath: $0) }) -> String? {
            if let file = environment["SSL_CERT_FILE"], !file.isEmpty { return file }
            return ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"].first(where: exists)
        }

        /// The CA file a connection verifies against: the one set, else the system's bundle.
        public var effectiveCACertificatePath: String? { caCertificatePath ?? (verifyPeer ? Self.systemCABundle() : nil) }

        public init(caCertificatePath: String? = nil, clientCertificatePath: String? = nil,
                    clientKeyPath: String? = nil, verifyPeer: Bool = true, verifyHostname: Bool = true) {
            self.caCertificatePath = caCertificatePath
            self.clientCertificatePath = clientCertificatePath
            self.clientKeyPath = clientKeyPath
            self.verifyPeer = verifyPeer
            self.verifyHostname = verifyHostname
        }
    }

    /// How a lost connection is re-established.
    public struct Recovery: Sendable, Equatable {
        /// Reconnect automatically, redeclare what was declared and resume consumers (default).
        public var enabled = true
        /// The first wait before reconnecting; doubled after every failed attempt.
        public var initialDelay: Duration = .milliseconds(100)
        /// The longest wait between attempts.
        public var maximumDelay: Duration = .seconds(5)
        /// Give up after this many failed attempts in a row (`nil`: never give up).
        public var maximumAttempts: Int? = nil

        public init(enabled: Bool = true, initialDelay: Duration = .milliseconds(100),
                    maximumDelay: Duration = .seconds(5), maximumAttempts: Int? = nil) {
            self.enabled = enabled
            self.initialDelay = initialDelay
            self.maximumDelay = maximumDelay
            self.maximumAttempts = maximumAttempts
        }

        /// No automatic recovery: a lost connection closes it, and every user sees the error.
        public static let disabled = Recovery(enabled: false)
    }

    public var host: String
    public var port: Int
    public var user: String
    public var password: String
    public var vhost: String
    /// More brokers of the same cluster, tried in order after `host:port` when it cannot be
    /// reached; a connection lost is recovered on the next one first.
    public var failoverEndpoints: [AMQPEndpoint] = []
    /// Every broker this configuration may connect to, `host:port` first.
    public var endpoints: [AMQPEndpoint] { [AMQPEndpoint(host: host, port: port)] + failoverEndpoints }
    /// TLS settings; `nil` for a plain TCP connection.
    public var tls: TLS?
    public var authentication: Authentication = .plain
    /// Shown in the broker's management UI and `rabbitmqctl list_connections`.
    public var connectionName: String?
    /// The heartbeat interval asked of the broker, in seconds (0 turns heartbeats off).
    public var heartbeat: Int = 30
    /// The longest time to open the socket and log in.
    public var connectTimeout: Duration = .seconds(10)
    /// The longest time to wait for the broker's reply to a method such as `queue.declare`.
    public var rpcTimeout: Duration = .seconds(30)
    public var channelMax: Int = 2047
    public var frameMax: Int = 131_072
    public var recovery = Recovery()

    /// A configuration for a broker at `host:port` with the given credentials.
    public init(host: String = "localhost", port: Int = 5672, user: String = "guest",
                password: String = "guest", vhost: String = "/", tls: TLS? = nil) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.vhost = vhost
        self.tls = tls
    }

    /// A configuration from an AMQP URI, with its query parameters applied.
    ///
    /// - Throws: ``AMQPError/Code/invalidURI`` naming the bad part.
    public init(url: String) throws(AMQPError) {
        let uri = try AMQPURI(url)
        self.init(host: uri.host, port: uri.port, user: uri.user, password: uri.password,
                  vhost: uri.vhost, tls: uri.tls ? TLS() : nil)
        failoverEndpoints = Array(uri.endpoints.dropFirst())
        func number(_ key: String, _ range: ClosedRange<Int>) throws(AMQPError) -> Int? {
            guard let text = uri.query[key] else { return nil }
            guard let n = Int(text), range.contains(n) else {
                throw AMQPError(.invalidURI, "invalid AMQP URI '\(uri)': \(key)=\(text) is not a number in \(range)")
            }
            return n
        }
        if let h = try number("heartbeat", 0...65535) { heartbeat = h }
        if let t = try number("connection_timeout", 1...3_600_000) { connectTimeout = .milliseconds(t) }
        if let c = try number("channel_max", 1...65535) { channelMax = c }
        if let f = try number("frame_max", 4096...Int(Int32.max)) { frameMax = f }
        if uri.tls {
            tls?.caCertificatePath = uri.query["cacertfile"]
            tls?.clientCertificatePath = uri.query["certfile"]
            tls?.clientKeyPath = uri.query["keyfile"]
            switch uri.query["verify"] {
            case nil, "verify_peer": break
            case "verify_none": tls?.verifyPeer = false; tls?.verifyHostname = false
            case let other?:
                throw AMQPError(.invalidURI, "invalid AMQP URI '\(uri)': verify=\(other) must be verify_peer or verify_none")
            }
        }
        switch uri.query["auth_mechanism"]?.lowercased() {
        case nil, "plain": break
        case "external": authentication = .external
        case let other?:
            throw AMQPError(.invalidURI, "invalid AMQP URI '\(uri)': auth_mechanism=\(other) must be plain or external")
        }
    }

    /// Where this configuration points, without the password.
    public var endpointDescription: String { describe(endpoints) }

    /// `amqp://user@host:port/vhost` for `endpoints`, without the password.
    func describe(_ endpoints: [AMQPEndpoint]) -> String {
        "\(tls == nil ? "amqp" : "amqps")://\(user)@\(endpoints.map(\.description).joined(separator: ","))/\(vhost == "/" ? "%2f" : vhost)"
    }
}
