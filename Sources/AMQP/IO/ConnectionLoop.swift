import CRabbitMQ
import Foundation
import Logging
import Synchronization

/// The thread that owns one rabbitmq-c connection and everything on it.
///
/// rabbitmq-c is blocking and single-threaded per connection, and a confirm, a delivery, a
/// return and a channel close can arrive in any order. So one thread does all of it: it runs the
/// commands Swift code queues (publish, ack, declare), reads every frame the socket has and
/// dispatches it to its channel, and sleeps in `poll()` on the socket and an eventfd when there
/// is nothing to do. Swift code only appends to the inbox (a lock and, when the thread sleeps,
/// one eventfd write) and awaits continuations the thread resumes: the cooperative pool never
/// blocks. Declarations use rabbitmq-c's synchronous calls, which hold this thread for one
/// broker round trip; frames for other channels that arrive meanwhile are queued inside the
/// library and dispatched afterwards.
///
/// `@unchecked Sendable`: only `inbox` and `wakeFD` are touched from other threads; every other
/// property belongs to the I/O thread.
final class ConnectionLoop: @unchecked Sendable {
    typealias Command = @Sendable (ConnectionLoop) -> Void

    private struct Inbox {
        var commands: [Command] = []
        var sleeping = false
        var closeRequested = false
        /// Set when the loop has ended: later submissions fail with it.
        var terminalError: AMQPError?
        var state: AMQPConnection.State = .connecting
        var recoveries = 0
        var endpoint: AMQPEndpoint?
    }

    private let inbox = Mutex(Inbox())
    private let wakeFD: Int32

    // Owned by the I/O thread.
    let config: AMQPConfiguration
    let logger: Logger
    let name: String
    var conn: amqp_connection_state_t?
    private var sockfd: Int32 = -1
    var channels: [UInt16: ChannelState] = [:]
    var topology = Topology()
    /// Consumers that received deliveries in the current pass over the socket.
    var consumersWithPending: [ConsumerState] = []
    let arena = CArena()
    private var lastInbound = ContinuousClock.now
    /// The endpoint (of `config.endpoints`) connected to, or to try first.
    private var endpointIndex = 0
    /// The broker connected to now.
    var endpoint: AMQPEndpoint { config.endpoints[endpointIndex % config.endpoints.count] }
    /// The connection incarnation: raised on every loss, so delivery tags of a dead
    /// connection are never acknowledged on its successor.
    private(set) var generation: UInt64 = 1
    private var started: CheckedContinuation<Void, any Error>?
    private var closeWaiters: [CheckedContinuation<Void, Never>] = []

    init(config: AMQPConfiguration, logger: Logger) {
        self.config = config
        self.name = config.connectionName ?? "warren"
        var logger = logger
        logger[metadataKey: "amqp.connection"] = "\(name)"
        self.logger = logger
        self.wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
    }

    deinit {
        close(wakeFD)
    }

    // MARK: Talking to the thread (any thread)

    /// Starts the I/O thread and returns once it has connected and logged in.
    func start() async throws {
        guard wakeFD >= 0 else {
            throw AMQPError(.connectionRefused, "cannot create an eventfd for the connection's I/O thread (errno \(errno))")
        }
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            self.started = c
            let thread = Thread { [self] in self.run() }
            thread.name = "amqp-\(name)"
            thread.start()
        }
    }

    /// Queues `command` for the I/O thread. Returns `false` when the loop has ended.
    @discardableResult
    func submit(_ command: @escaping Command) -> Bool {
        let (accepted, wake): (Bool, Bool) = inbox.withLock {
            guard $0.terminalError == nil else { return (false, false) }
            $0.commands.append(command)
            let wake = $0.sleeping
            $0.sleeping = false
            return (true, wake)
        }
        if wake { eventfd_write(wakeFD, 1) }
        return accepted
    }

    /// Runs `body` on the I/O thread and returns its result.
    func perform<T: Sendable>(_ body: @escaping @Sendable (ConnectionLoop) throws(AMQPError) -> T) async throws -> T {
        try await withUnsafeThrowingContinuation { (c: UnsafeContinuation<T, any Error>) in
            let accepted = submit { loop in
                do { c.resume(returning: try body(loop)) } catch { c.resume(throwing: error) }
            }
            if !accepted { c.resume(throwing: terminalError) }
        }
    }

    /// Why the loop ended (or a generic closed error if it has not).
    var terminalError: AMQPError {
        inbox.withLock { $0.terminalError } ?? AMQPError(.connectionClosed, "the connection is closed")
    }

    var publicState: AMQPConnection.State { inbox.withLock { $0.state } }
    var connectedEndpoint: AMQPEndpoint { inbox.withLock { $0.endpoint } ?? config.endpoints[0] }

    private func publishEndpoint() {
        let e = endpoint
        inbox.withLock { $0.endpoint = e }
    }
    var recoveryCount: Int { inbox.withLock { $0.recoveries } }

    /// Asks the thread to close the connection and waits until it has.
    func requestClose() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let (running, wake): (Bool, Bool) = inbox.withLock {
                guard $0.terminalError == nil else { return (false, false) }
                $0.closeRequested = true
                $0.commands.append { loop in loop.closeWaiters.append(c) }
                let wake = $0.sleeping
                $0.sleeping = false
                return (true, wake)
            }
            if wake { eventfd_write(wakeFD, 1) }
            if !running { c.resume() }
        }
    }

    private func setState(_ s: AMQPConnection.State) {
        inbox.withLock { $0.state = s }
    }

    // MARK: The thread

    private func run() {
        do {
            try open()
            setState(.open)
            started?.resume()
            started = nil
        } catch let e {
            finish(e)
            started?.resume(throwing: e)
            started = nil
            return
        }
        while true {
            if inbox.withLock({ $0.closeRequested }) {
                closeGracefully()
                return
            }
            if conn == nil {
                guard recover() else { return }
                continue
            }
            runCommands()
            guard conn != nil else { continue }
            let progressed = readFrames()
            guard conn != nil else { continue }
            if !progressed { waitForWork() }
        }
    }

    /// Runs what Swift code queued. If the connection breaks midway, the rest goes back to the
    /// front of the inbox to run after recovery: they were never sent.
    private func runCommands() {
        let commands: [Command] = inbox.withLock {
            let c = $0.commands
            $0.commands.removeAll(keepingCapacity: true)
            return c
        }
        for (i, command) in commands.enumerated() {
            command(self)
            if conn == nil, !inbox.withLock({ $0.terminalError != nil }) {
                let rest = commands[(i + 1)...]
                inbox.withLock { $0.commands.insert(contentsOf: rest, at: 0) }
                return
            }
        }
    }

    /// Reads and dispatches the frames available now, up to a budget so that queued commands
    /// (acks, publishes) are not starved by a busy consumer. Returns whether any frame came.
    private func readFrames() -> Bool {
        guard let conn else { return false }
        var frame = amqp_frame_t()
        var zero = timeval(tv_sec: 0, tv_usec: 0)
        var count = 0
        while count < 256 {
            let status = amqp_simple_wait_frame_noblock(conn, &frame, &zero)
            if status == AMQP_STATUS_TIMEOUT.rawValue { break }
            if status != AMQP_STATUS_OK.rawValue {
                connectionLost(libraryError(status, during: "reading from the broker"))
                break
            }
            count += 1
            dispatch(frame)
            guard let c = self.conn else { break }
            amqp_maybe_release_buffers_on_channel(c, frame.channel)
        }
        handOverDeliveries()
        if count > 0 { lastInbound = .now }
        return count > 0
    }

    /// Sleeps in poll() until the socket is readable, a command arrives, or it is time to check
    /// heartbeats.
    private func waitForWork() {
        guard let conn else { return }
        if amqp_frames_enqueued(conn) != 0 || amqp_data_in_buffer(conn) != 0 { return }
        let mayWait = inbox.withLock {
            guard $0.commands.isEmpty, !$0.closeRequested else { return false }
            $0.sleeping = true
            return true
        }
        guard mayWait else { return }
        var fds = [pollfd(fd: sockfd, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
        let heartbeatMillis = config.heartbeat > 0 ? config.heartbeat * 1000 / 4 : 1000
        _ = poll(&fds, 2, Int32(min(heartbeatMillis, 1000)))
        inbox.withLock { $0.sleeping = false }
        if fds[1].revents != 0 {
            var value: eventfd_t = 0
            eventfd_read(wakeFD, &value)
        }
        if fds[0].revents != 0 {
            lastInbound = .now
        } else if config.heartbeat > 0, ContinuousClock.now - lastInbound > .seconds(config.heartbeat * 2) {
            // rabbitmq-c only notices a silent peer inside blocking waits; this loop never blocks in it.
            connectionLost(AMQPError(.connectionLost, "no data and no heartbeat from the broker for \(config.heartbeat * 2) s"))
        }
    }

    // MARK: Opening, losing and recovering the connection

    /// Connects to the first broker of `config.endpoints` that takes the connection, starting
    /// with the current one (after a loss, the next one: the node that went away is tried last).
    /// A refused login ends the search: every node of a cluster has the same users.
    private func open() throws(AMQPError) {
        let endpoints = config.endpoints
        var failures: [(AMQPEndpoint, AMQPError)] = []
        for i in 0..<endpoints.count {
            let index = (endpointIndex + i) % endpoints.count
            do {
                try open(endpoints[index])
                endpointIndex = index
                publishEndpoint()
                return
            } catch let e where e.code == .accessRefused || e.code == .notAllowed || e.code == .invalidArgument {
                throw e
            } catch {
                failures.append((endpoints[index], error))
            }
        }
        guard failures.count > 1, let last = failures.last?.1 else { throw failures[0].1 }
        throw AMQPError(last.code, "none of the \(failures.count) brokers took the connection: "
            + failures.map { "\($0.0) (\($0.1.message))" }.joined(separator: "; "))
    }

    /// Opens the socket to `target` and logs in (blocking this thread, bounded by the connect timeout).
    private func open(_ target: AMQPEndpoint) throws(AMQPError) {
        guard let c = amqp_new_connection() else {
            throw AMQPError(.connectionRefused, "rabbitmq-c could not allocate a connection")
        }
        var ready = false
        defer { if !ready { amqp_destroy_connection(c) } }
        let endpoint = target.description
        let socket: OpaquePointer?
        if let tls = config.tls {
            socket = amqp_ssl_socket_new(c)
            guard let socket else { throw AMQPError(.tls, "rabbitmq-c could not create a TLS socket") }
            amqp_ssl_socket_set_verify_peer(socket, tls.verifyPeer ? 1 : 0)
            amqp_ssl_socket_set_verify_hostname(socket, tls.verifyHostname ? 1 : 0)
            // Verified against the CA file given, or the system's bundle (an `amqps://` URL to a
            // broker with a public certificate works as it does in a browser).
            if let ca = tls.effectiveCACertificatePath, amqp_ssl_socket_set_cacert(socket, ca) != AMQP_STATUS_OK.rawValue {
                throw AMQPError(.tls, "cannot load the CA certificates from '\(ca)'\(tls.caCertificatePath == nil ? " (the system's bundle; set cacertfile or SSL_CERT_FILE)" : "")")
            }
            if let cert = tls.clientCertificatePath {
                guard let key = tls.clientKeyPath else {
                    throw AMQPError(.invalidArgument, "a TLS client certificate needs its key (clientKeyPath / keyfile)")
                }
                if amqp_ssl_socket_set_key(socket, cert, key) != AMQP_STATUS_OK.rawValue {
                    throw AMQPError(.tls, "cannot load the client certificate '\(cert)' with key '\(key)'")
                }
            }
        } else {
            socket = amqp_tcp_socket_new(c)
        }
        guard let socket else { throw AMQPError(.connectionRefused, "rabbitmq-c could not create a socket") }
        var connectTimeout = timeval(config.connectTimeout)
        let status = amqp_socket_open_noblock(socket, target.host, Int32(target.port), &connectTimeout)
        if status != AMQP_STATUS_OK.rawValue {
            throw openError(status, endpoint: endpoint)
        }
        amqp_set_handshake_timeout(c, &connectTimeout)
        var rpcTimeout = timeval(config.rpcTimeout)
        amqp_set_rpc_timeout(c, &rpcTimeout)

        // rabbitmq-c merges these into its defaults. Without consumer_cancel_notify the broker
        // would cancel a consumer silently when its queue is deleted.
        var clientProperties = arena.table([
            "connection_name": .string(name),
            "product": "Warren",
            "capabilities": [
                "consumer_cancel_notify": true, "publisher_confirms": true, "basic.nack": true,
                "connection.blocked": true, "authentication_failure_close": true,
            ],
        ])
        defer { arena.reset() }
        let reply: amqp_rpc_reply_t
        switch config.authentication {
        case .plain:
            reply = warren_amqp_login_plain(c, config.vhost, Int32(config.channelMax), Int32(config.frameMax),
                                            Int32(config.heartbeat), &clientProperties, config.user, config.password)
        case .external:
            reply = warren_amqp_login_external(c, config.vhost, Int32(config.channelMax), Int32(config.frameMax),
                                               Int32(config.heartbeat), &clientProperties, config.user)
        }
        if let error = loginError(reply) { throw error }
        conn = c
        sockfd = amqp_get_sockfd(c)
        lastInbound = .now
        ready = true
        logger.debug("connected", metadata: ["amqp.endpoint": "\(config.describe([target]))"])
    }

    private func openError(_ status: Int32, endpoint: String) -> AMQPError {
        let text = String(cString: amqp_error_string2(status))
        switch status {
        case AMQP_STATUS_TIMEOUT.rawValue, AMQP_STATUS_SOCKET_INUSE.rawValue:
            return AMQPError(.timeout, "connecting to \(endpoint) timed out after \(config.connectTimeout) (\(text))")
        case AMQP_STATUS_HOSTNAME_RESOLUTION_FAILED.rawValue:
            return AMQPError(.connectionRefused, "cannot resolve host '\(endpoint)' (\(text))")
        case AMQP_STATUS_SSL_ERROR.rawValue, AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED.rawValue,
             AMQP_STATUS_SSL_PEER_VERIFY_FAILED.rawValue, AMQP_STATUS_SSL_CONNECTION_FAILED.rawValue:
            return AMQPError(.tls, "TLS handshake with \(endpoint) failed: \(text); check the CA file and the broker's certificate")
        default:
            return AMQPError(.connectionRefused, "cannot connect to \(endpoint): \(text); is a broker listening there?")
        }
    }

    private func loginError(_ reply: amqp_rpc_reply_t) -> AMQPError? {
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return nil
        case AMQP_RESPONSE_SERVER_EXCEPTION where reply.reply.id == Method.connectionClose:
            let close = reply.reply.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let code = close.reply_code
            let text = close.reply_text.string
            switch code {
            case 403:
                return AMQPError(.accessRefused, "the broker refused the login of user '\(config.user)': \(code) \(text)", replyCode: code)
            case 530:
                return AMQPError(.notAllowed, "cannot open vhost '\(config.vhost)' as '\(config.user)': \(code) \(text)", replyCode: code)
            default:
                return AMQPError.fromBroker(replyCode: code, replyText: text, scope: "connection during login")
            }
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            let status = reply.library_error
            if status == AMQP_STATUS_CONNECTION_CLOSED.rawValue || status == AMQP_STATUS_SOCKET_ERROR.rawValue {
                // Brokers without authentication_failure_close drop the socket on a bad login.
                return AMQPError(.accessRefused, "the broker closed the connection during login as '\(config.user)' "
                    + "to vhost '\(config.vhost)': check the credentials and the vhost")
            }
            if status == AMQP_STATUS_TIMEOUT.rawValue {
                return AMQPError(.timeout, "logging in to \(self.endpoint) timed out after \(config.connectTimeout)")
            }
            if status == AMQP_STATUS_SSL_ERROR.rawValue {
                return AMQPError(.tls, "TLS failed during login: \(String(cString: amqp_error_string2(status)))")
            }
            return libraryError(status, during: "logging in")
        default:
            return AMQPError(.protocolError, "unexpected reply while logging in")
        }
    }

    func libraryError(_ status: Int32, during what: String) -> AMQPError {
        let text = String(cString: amqp_error_string2(status))
        if status == AMQP_STATUS_TIMEOUT.rawValue {
            return AMQPError(.timeout, "no reply from the broker within \(config.rpcTimeout) while \(what)")
        }
        return AMQPError(.connectionLost, "lost the connection to \(endpoint) while \(what): \(text)")
    }

    /// The connection is gone: fail what was in flight, keep channels and consumers for recovery.
    func connectionLost(_ error: AMQPError) {
        guard let c = conn else { return }
        conn = nil
        sockfd = -1
        amqp_destroy_connection(c)
        generation += 1
        // Recovery tries the next broker of a cluster first.
        endpointIndex = (endpointIndex + 1) % config.endpoints.count
        logger.warning("connection lost", metadata: ["error": "\(error.message)"])
        for ch in channels.values {
            ch.failInFlight(error)
            ch.handle.status.withLock { if case .open = $0 { $0 = .open(generation: generation) } }
        }
        setState(.recovering)
        if !config.recovery.enabled {
            finish(error)
        }
    }

    /// Reconnects with back-off and restores channels, topology and consumers.
    /// Returns `false` when the loop must end (closed, or recovery gave up).
    private func recover() -> Bool {
        var delay = config.recovery.initialDelay
        var attempt = 0
        while true {
            if sleepUnlessClosing(delay) {
                finish(AMQPError(.connectionClosed, "the connection was closed by this client"))
                return false
            }
            attempt += 1
            do {
                try open()
                try restore()
                inbox.withLock { $0.recoveries += 1; $0.state = .open }
                logger.info("connection recovered", metadata: ["attempts": "\(attempt)"])
                return true
            } catch {
                if let c = conn { conn = nil; amqp_destroy_connection(c) }
                logger.debug("recovery attempt failed", metadata: ["attempt": "\(attempt)", "error": "\(error)"])
                if let max = config.recovery.maximumAttempts, attempt >= max {
                    finish(AMQPError(.connectionLost, "gave up reconnecting to \(config.describe(config.endpoints)) after \(attempt) attempts: \(error.message)"))
                    return false
                }
                delay = min(delay * 2, config.recovery.maximumDelay)
            }
        }
    }

    /// Waits `delay` on the eventfd; returns `true` if a close was requested.
    private func sleepUnlessClosing(_ delay: Duration) -> Bool {
        let deadline = ContinuousClock.now + delay
        while true {
            if inbox.withLock({ $0.closeRequested }) { return true }
            let left = ContinuousClock.now.duration(to: deadline)
            if left <= .zero { return false }
            var fd = pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)
            let millis = left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000
            _ = poll(&fd, 1, Int32(max(1, min(millis, 1000))))
            if fd.revents != 0 {
                var value: eventfd_t = 0
                eventfd_read(wakeFD, &value)
            }
        }
    }

    /// Ends the loop: fails every queued command and waiter, ends every consumer.
    func finish(_ error: AMQPError) {
        if let c = conn { conn = nil; amqp_destroy_connection(c) }
        let commands: [Command] = inbox.withLock {
            $0.terminalError = $0.terminalError ?? error
            $0.state = .closed(error)
            let c = $0.commands
            $0.commands.removeAll()
            return c
        }
        // With no connection, each command fails with the terminal error.
        for command in commands { command(self) }
        for ch in channels.values {
            ch.failInFlight(error)
            ch.handle.status.withLock { $0 = .closed(error) }
            ch.finishConsumers(error.code == .connectionClosed ? nil : error)
        }
        channels.removeAll()
        for w in closeWaiters { w.resume() }
        closeWaiters.removeAll()
    }

    /// Closes channels and the connection politely, then ends the loop.
    private func closeGracefully() {
        runCommands()  // what was queued before close() still goes out (acks, publishes).
        if let c = conn {
            _ = amqp_connection_close(c, AMQP_REPLY_SUCCESS)
        }
        finish(AMQPError(.connectionClosed, "the connection was closed by this client"))
        logger.debug("connection closed")
    }
}
