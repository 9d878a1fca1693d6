import CRabbitMQ
import Logging

/// The commands Swift code queues, as the I/O thread carries them out.
extension ConnectionLoop {
    private var closedError: AMQPError { terminalError }

    /// The state of an open channel, or the error a call on it must throw.
    func openChannelState(_ id: UInt16, for what: String) throws(AMQPError) -> ChannelState {
        guard conn != nil else { throw closedError }
        guard let ch = channels[id] else {
            throw AMQPError(.channelClosed, "channel \(id) is closed; cannot \(what)")
        }
        return ch
    }

    /// Checks the reply of the synchronous rabbitmq-c call just made on `ch`. A broker
    /// `channel.close` closes the channel; a library failure means the connection is gone.
    func checkReply(_ what: String, on ch: ChannelState?) throws(AMQPError) {
        guard let conn else { throw closedError }
        let reply = amqp_get_rpc_reply(conn)
        try checkReply(reply, what, on: ch)
    }

    private func checkReply(_ reply: amqp_rpc_reply_t, _ what: String, on ch: ChannelState?) throws(AMQPError) {
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return
        case AMQP_RESPONSE_SERVER_EXCEPTION where reply.reply.id == Method.channelClose:
            let close = reply.reply.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let error = AMQPError.fromBroker(replyCode: close.reply_code, replyText: close.reply_text.string,
                                             scope: "channel \(ch?.id ?? 0) on \(what)")
            if let conn, let ch {
                var ok = amqp_channel_close_ok_t(dummy: 0)
                _ = amqp_send_method(conn, ch.id, Method.channelCloseOk, &ok)
                channelClosed(ch, error)
            }
            throw error
        case AMQP_RESPONSE_SERVER_EXCEPTION where reply.reply.id == Method.connectionClose:
            let close = reply.reply.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let error = AMQPError.fromBroker(replyCode: close.reply_code, replyText: close.reply_text.string, scope: "connection on \(what)")
            if let conn {
                var ok = amqp_connection_close_ok_t(dummy: 0)
                _ = amqp_send_method(conn, 0, Method.connectionCloseOk, &ok)
            }
            connectionLost(error)
            throw error
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            let error = libraryError(reply.library_error, during: what)
            connectionLost(error)
            throw error
        default:
            let error = AMQPError(.protocolError, "unexpected reply to \(what)")
            connectionLost(error)
            throw error
        }
    }

    // MARK: Channels

    /// Opens a channel under the lowest free number (the highest one is kept for recovery).
    func channelOpen() throws(AMQPError) -> AMQPChannel {
        guard let conn else { throw closedError }
        let maximum = UInt16(max(2, min(Int(amqp_get_channel_max(conn)), config.channelMax, 65535)))
        guard let id = (1..<maximum).first(where: { channels[$0] == nil }) else {
            throw AMQPError(.invalidArgument, "all \(maximum - 1) channels of the connection are open")
        }
        _ = amqp_channel_open(conn, id)
        let handle = AMQPChannel(id: id, loop: self, generation: generation)
        let ch = ChannelState(id: id, handle: handle)
        try checkReply("channel.open", on: nil)
        channels[id] = ch
        return handle
    }

    func channelClose(_ id: UInt16) {
        guard let conn, let ch = channels[id] else { return }
        let reply = amqp_channel_close(conn, id, AMQP_REPLY_SUCCESS)
        channelClosed(ch, AMQPError(.channelClosed, "the channel was closed by this client"))
        if reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION {
            connectionLost(libraryError(reply.library_error, during: "closing channel \(id)"))
        }
    }

    // MARK: Declarations

    func exchangeDeclare(_ e: ExchangeDeclaration, passive: Bool, on ch: ChannelState) throws(AMQPError) {
        defer { arena.reset() }
        _ = amqp_exchange_declare(conn, ch.id, arena.bytes(e.name), arena.bytes(e.type), passive ? 1 : 0,
                                  e.durable ? 1 : 0, e.autoDelete ? 1 : 0, e.internal ? 1 : 0, arena.table(e.arguments))
        try checkReply("exchange.declare '\(e.name)'", on: ch)
        if !passive { topology.record(e) }
    }

    func exchangeDelete(_ name: String, ifUnused: Bool, on ch: ChannelState) throws(AMQPError) {
        defer { arena.reset() }
        _ = amqp_exchange_delete(conn, ch.id, arena.bytes(name), ifUnused ? 1 : 0)
        try checkReply("exchange.delete '\(name)'", on: ch)
        topology.forgetExchange(name)
    }

    func queueDeclare(_ q: QueueDeclaration, passive: Bool, on ch: ChannelState) throws(AMQPError) -> AMQPChannel.QueueDeclareOk {
        defer { arena.reset() }
        let ok = amqp_queue_declare(conn, ch.id, arena.bytes(q.name), passive ? 1 : 0, q.durable ? 1 : 0,
                                    q.exclusive ? 1 : 0, q.autoDelete ? 1 : 0, arena.table(q.arguments))
        try checkReply("queue.declare '\(q.name)'", on: ch)
        guard let ok else { throw AMQPError(.protocolError, "no queue.declare-ok for '\(q.name)'") }
        if !passive, !q.name.isEmpty { topology.record(q) }
        return .init(queue: ok.pointee.queue.string, messageCount: ok.pointee.message_count, consumerCount: ok.pointee.consumer_count)
    }

    func queueBind(_ b: QueueBinding, on ch: ChannelState) throws(AMQPError) {
        defer { arena.reset() }
        _ = amqp_queue_bind(conn, ch.id, arena.bytes(b.queue), arena.bytes(b.exchange), arena.bytes(b.routingKey), arena.table(b.arguments))
        try checkReply("queue.bind '\(b.queue)' to '\(b.exchange)'", on: ch)
        topology.record(b)
    }

    func exchangeBind(_ b: ExchangeBinding, on ch: ChannelState) throws(AMQPError) {
        defer { arena.reset() }
        _ = amqp_exchange_bind(conn, ch.id, arena.bytes(b.destination), arena.bytes(b.source), arena.bytes(b.routingKey), arena.table(b.arguments))
        try checkReply("exchange.bind '\(b.destination)' to '\(b.source)'", on: ch)
        topology.record(b)
    }

    func exchangeUnbind(_ b: ExchangeBinding, on ch: ChannelState) throws(AMQPError) {
        defer { arena.reset() }
        _ = amqp_exchange_unbind(conn, ch.id, arena.bytes(b.destination), arena.bytes(b.source), arena.bytes(b.routingKey), arena.table(b.arguments))
        try checkReply("exchange.unbind '\(b.destination)' from '\(b.source)'", on: ch)
        topology.forget(b)
    }

    func queueUnbind(_ b: QueueBinding, on ch: ChannelState) throws(AMQPError) {
        defer { arena.reset() }
        _ = amqp_queue_unbind(conn, ch.id, arena.bytes(b.queue), arena.bytes(b.exchange), arena.bytes(b.routingKey), arena.table(b.arguments))
        try checkReply("queue.unbind '\(b.queue)' from '\(b.exchange)'", on: ch)
        topology.forget(b)
    }

    func queueDelete(_ name: String, ifUnused: Bool, ifEmpty: Bool, on ch: ChannelState) throws(AMQPError) -> UInt32 {
        defer { arena.reset() }
        let ok = amqp_queue_delete(conn, ch.id, arena.bytes(name), ifUnused ? 1 : 0, ifEmpty ? 1 : 0)
        try checkReply("queue.delete '\(name)'", on: ch)
        topology.forgetQueue(name)
        return ok?.pointee.message_count ?? 0
    }

    func queuePurge(_ name: String, on ch: ChannelState) throws(AMQPError) -> UInt32 {
        defer { arena.reset() }
        let ok = amqp_queue_purge(conn, ch.id, arena.bytes(name))
        try checkReply("queue.purge '\(name)'", on: ch)
        return ok?.pointee.message_count ?? 0
    }

    func basicQos(prefetchCount: UInt16, global: Bool, on ch: ChannelState) throws(AMQPError) {
        _ = amqp_basic_qos(conn, ch.id, 0, prefetchCount, global ? 1 : 0)
        try checkReply("basic.qos", on: ch)
        ch.prefetch = (prefetchCount, global)
    }

    func confirmSelect(on ch: ChannelState) throws(AMQPError) {
        guard !ch.confirmMode else { return }
        _ = amqp_confirm_select(conn, ch.id)
        try checkReply("confirm.select", on: ch)
        ch.confirmMode = true
        ch.nextPublishTag = 1
    }

    // MARK: Publishing and acknowledging

    func basicPublish(_ m: OutgoingMessage, channel id: UInt16, confirmation: PublishConfirmation) {
        guard let conn else { return confirmation.complete(closedError) }
        guard let ch = channels[id] else {
            return confirmation.complete(AMQPError(.channelClosed, "channel \(id) is closed; the message was not published"))
        }
        var properties = arena.properties(m.properties)
        let exchange = arena.bytes(m.exchange)
        let routingKey = arena.bytes(m.routingKey)
        let status = m.body.withUnsafeBytes { body in
            amqp_basic_publish(conn, id, exchange, routingKey, m.mandatory ? 1 : 0, 0, &properties,
                               amqp_bytes_t(len: body.count, bytes: UnsafeMutableRawPointer(mutating: body.baseAddress)))
        }
        arena.reset()
        guard status == AMQP_STATUS_OK.rawValue else {
            let error = libraryError(status, during: "publishing")
            confirmation.complete(error)
            connectionLost(error)
            return
        }
        if ch.confirmMode {
            ch.unconfirmed.append((ch.nextPublishTag, confirmation))
            ch.nextPublishTag += 1
        } else {
            confirmation.complete(nil)
        }
    }

    func acknowledge(_ kind: AMQPChannel.Acknowledgement, deliveryTag: UInt64, generation: UInt64, channel id: UInt16) {
        // A tag from an earlier connection means nothing to this one; that message is redelivered.
        guard let conn, generation == self.generation, channels[id] != nil else { return }
        let status: Int32
        switch kind {
        case .ack(let multiple): status = amqp_basic_ack(conn, id, deliveryTag, multiple ? 1 : 0)
        case .nack(let multiple, let requeue): status = amqp_basic_nack(conn, id, deliveryTag, multiple ? 1 : 0, requeue ? 1 : 0)
        case .reject(let requeue): status = amqp_basic_reject(conn, id, deliveryTag, requeue ? 1 : 0)
        }
        if status != AMQP_STATUS_OK.rawValue {
            connectionLost(libraryError(status, during: "acknowledging a delivery"))
        }
    }

    // MARK: Consumers

    func basicConsume(_ spec: ConsumerSpec, buffer: DeliveryBuffer, on ch: ChannelState) throws(AMQPError) -> String {
        defer { arena.reset() }
        let ok = amqp_basic_consume(conn, ch.id, arena.bytes(spec.queue), arena.bytes(spec.tag), 0,
                                    spec.noAck ? 1 : 0, spec.exclusive ? 1 : 0, arena.table(spec.arguments))
        do {
            try checkReply("basic.consume on '\(spec.queue)'", on: ch)
        } catch {
            buffer.finish(error)
            throw error
        }
        var spec = spec
        spec.tag = ok?.pointee.consumer_tag.string ?? spec.tag
        ch.consumers[spec.tag] = ConsumerState(spec: spec, buffer: buffer)
        // A task that stops iterating (cancelled) ends the sequence: stop the broker sending more.
        let (tag, channel) = (spec.tag, ch.id)
        buffer.setOnAbandon { [weak self] unseen in
            self?.submit { loop in
                guard let ch = loop.channels[channel], ch.consumers.removeValue(forKey: tag) != nil, let conn = loop.conn else { return }
                defer { loop.arena.reset() }
                _ = amqp_basic_cancel(conn, channel, loop.arena.bytes(tag))
                try? loop.checkReply("basic.cancel '\(tag)'", on: ch)
                loop.giveBack(unseen)
            }
        }
        return spec.tag
    }

    func basicCancel(_ tag: String, on ch: ChannelState) throws(AMQPError) {
        defer { arena.reset() }
        _ = amqp_basic_cancel(conn, ch.id, arena.bytes(tag))
        try checkReply("basic.cancel '\(tag)'", on: ch)
        ch.consumers.removeValue(forKey: tag)?.buffer.finish(nil)
    }

    // MARK: Recovery

    /// After a reconnect: declares the recorded topology again (on a spare channel, so that a
    /// conflict cannot close a user's channel), then reopens every channel with its prefetch,
    /// confirm mode and consumers. A consumer whose queue is gone ends with the broker's error.
    func restore() throws(AMQPError) {
        guard let conn else { throw closedError }
        let spare = UInt16(max(1, min(Int(amqp_get_channel_max(conn)), config.channelMax, 65535)))
        var spareOpen = false
        func openSpare() throws(AMQPError) {
            _ = amqp_channel_open(conn, spare)
            try checkReply("channel.open (recovery)", on: nil)
            spareOpen = true
        }
        func redeclare(_ what: String, _ call: () -> Void) throws(AMQPError) {
            if !spareOpen { try openSpare() }
            defer { arena.reset() }
            call()
            let reply = amqp_get_rpc_reply(conn)
            if reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION, reply.reply.id == Method.channelClose {
                let close = reply.reply.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
                logger.warning("could not redeclare after recovery", metadata: ["what": "\(what)", "error": "\(close.reply_code) \(close.reply_text.string)"])
                var ok = amqp_channel_close_ok_t(dummy: 0)
                _ = amqp_send_method(conn, spare, Method.channelCloseOk, &ok)
                spareOpen = false
                return
            }
            try checkReply(reply, what, on: nil)
        }
        for e in topology.exchanges {
            try redeclare("exchange '\(e.name)'") {
                _ = amqp_exchange_declare(conn, spare, arena.bytes(e.name), arena.bytes(e.type), 0, e.durable ? 1 : 0,
                                          e.autoDelete ? 1 : 0, e.internal ? 1 : 0, arena.table(e.arguments))
            }
        }
        for b in topology.exchangeBindings {
            try redeclare("binding of exchange '\(b.destination)' to '\(b.source)'") {
                _ = amqp_exchange_bind(conn, spare, arena.bytes(b.destination), arena.bytes(b.source), arena.bytes(b.routingKey), arena.table(b.arguments))
            }
        }
        for q in topology.queues {
            try redeclare("queue '\(q.name)'") {
                _ = amqp_queue_declare(conn, spare, arena.bytes(q.name), 0, q.durable ? 1 : 0, q.exclusive ? 1 : 0,
                                       q.autoDelete ? 1 : 0, arena.table(q.arguments))
            }
        }
        for b in topology.bindings {
            try redeclare("binding of '\(b.queue)' to '\(b.exchange)'") {
                _ = amqp_queue_bind(conn, spare, arena.bytes(b.queue), arena.bytes(b.exchange), arena.bytes(b.routingKey), arena.table(b.arguments))
            }
        }
        if spareOpen {
            let reply = amqp_channel_close(conn, spare, AMQP_REPLY_SUCCESS)
            try checkReply(reply, "closing the recovery channel", on: nil)
        }
        for ch in channels.values.sorted(by: { $0.id < $1.id }) {
            _ = amqp_channel_open(conn, ch.id)
            try checkReply("channel.open \(ch.id) (recovery)", on: nil)
            if let prefetch = ch.prefetch {
                _ = amqp_basic_qos(conn, ch.id, 0, prefetch.count, prefetch.global ? 1 : 0)
                try checkReply("basic.qos (recovery)", on: ch)
            }
            if ch.confirmMode {
                _ = amqp_confirm_select(conn, ch.id)
                try checkReply("confirm.select (recovery)", on: ch)
                ch.nextPublishTag = 1
            }
            for consumer in ch.consumers.values {
                do {
                    defer { arena.reset() }
                    let s = consumer.spec
                    _ = amqp_basic_consume(conn, ch.id, arena.bytes(s.queue), arena.bytes(s.tag), 0, s.noAck ? 1 : 0,
                                           s.exclusive ? 1 : 0, arena.table(s.arguments))
                    try checkReply("basic.consume on '\(s.queue)' (recovery)", on: ch)
                } catch {
                    // The channel closed (its consumers ended with the error); a lost connection rethrows.
                    if self.conn == nil { throw error }
                    break
                }
            }
        }
    }
}
