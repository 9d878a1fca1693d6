import CRabbitMQ
import Logging

/// AMQP method numbers (class id << 16 | method id) this client handles itself.
enum Method {
    static let connectionClose: UInt32 = 0x000A_0032
    static let connectionCloseOk: UInt32 = 0x000A_0033
    static let connectionBlocked: UInt32 = 0x000A_003C
    static let connectionUnblocked: UInt32 = 0x000A_003D
    static let channelFlow: UInt32 = 0x0014_0014
    static let channelFlowOk: UInt32 = 0x0014_0015
    static let channelClose: UInt32 = 0x0014_0028
    static let channelCloseOk: UInt32 = 0x0014_0029
    static let basicCancel: UInt32 = 0x003C_001E
    static let basicReturn: UInt32 = 0x003C_0032
    static let basicDeliver: UInt32 = 0x003C_003C
    static let basicAck: UInt32 = 0x003C_0050
    static let basicNack: UInt32 = 0x003C_0078
}

extension ConnectionLoop {
    /// Routes one frame from the broker to what waits for it. Runs on the I/O thread; copies
    /// everything it keeps, since the frame's memory is recycled right after.
    func dispatch(_ frame: amqp_frame_t) {
        switch Int32(frame.frame_type) {
        case AMQP_FRAME_METHOD:
            dispatchMethod(frame.payload.method, channel: frame.channel)
        case AMQP_FRAME_HEADER:
            guard let ch = channels[frame.channel], var content = ch.incoming, !content.headerSeen else {
                return protocolViolation("a content header arrived on channel \(frame.channel) without a delivery")
            }
            content.headerSeen = true
            content.bodySize = Int(frame.payload.properties.body_size)
            content.properties = BasicProperties(frame.payload.properties.decoded.assumingMemoryBound(to: amqp_basic_properties_t.self).pointee)
            if case .delivery(let tag, _, _, _, _) = content.kind, let limit = ch.consumers[tag]?.spec.maximumBodyBytes,
               content.bodySize > limit {
                content.discardBody = true  // refused from its header: the body is never buffered
            }
            if content.bodySize == 0 {
                ch.incoming = nil
                contentComplete(content, on: ch)
            } else {
                if !content.discardBody { content.body.reserveCapacity(content.bodySize) }
                ch.incoming = content
            }
        case AMQP_FRAME_BODY:
            guard let ch = channels[frame.channel], ch.incoming?.headerSeen == true else {
                return protocolViolation("a content body arrived on channel \(frame.channel) without a header")
            }
            let fragment = frame.payload.body_fragment
            ch.incoming!.received += fragment.len
            if fragment.len > 0, !ch.incoming!.discardBody {
                ch.incoming!.body.append(contentsOf: UnsafeRawBufferPointer(start: fragment.bytes, count: fragment.len))
            }
            if ch.incoming!.received >= ch.incoming!.bodySize {
                let content = ch.incoming!
                ch.incoming = nil
                contentComplete(content, on: ch)
            }
        default:
            break  // heartbeats are handled inside rabbitmq-c
        }
    }

    private func protocolViolation(_ what: String) {
        connectionLost(AMQPError(.protocolError, what))
    }

    private func dispatchMethod(_ method: amqp_method_t, channel id: UInt16) {
        let decoded = method.decoded
        if id == 0 {
            switch method.id {
            case Method.connectionClose:
                let close = decoded!.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
                let error = AMQPError(.connectionLost, "the broker closed the connection: \(close.reply_code) \(close.reply_text.string)",
                                      replyCode: close.reply_code)
                var ok = amqp_connection_close_ok_t(dummy: 0)
                if let conn { _ = amqp_send_method(conn, 0, Method.connectionCloseOk, &ok) }
                connectionLost(error)
            case Method.connectionBlocked:
                let reason = decoded!.assumingMemoryBound(to: amqp_connection_blocked_t.self).pointee.reason.string
                logger.warning("the broker blocked publishing on this connection", metadata: ["reason": "\(reason)"])
            case Method.connectionUnblocked:
                logger.info("the broker unblocked publishing on this connection")
            default:
                logger.debug("ignored a connection method", metadata: ["method": "\(method.id)"])
            }
            return
        }
        guard let ch = channels[id] else {
            logger.debug("frame for an unknown channel", metadata: ["channel": "\(id)", "method": "\(method.id)"])
            return
        }
        switch method.id {
        case Method.basicDeliver:
            let d = decoded!.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee
            ch.incoming = IncomingContent(kind: .delivery(consumerTag: d.consumer_tag.string, deliveryTag: d.delivery_tag,
                                                          redelivered: d.redelivered != 0, exchange: d.exchange.string,
                                                          routingKey: d.routing_key.string))
        case Method.basicAck:
            let a = decoded!.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            ch.settleConfirms(upTo: a.delivery_tag, multiple: a.multiple != 0, error: nil)
        case Method.basicNack:
            let n = decoded!.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            ch.settleConfirms(upTo: n.delivery_tag, multiple: n.multiple != 0,
                              error: AMQPError(.nacked, "the broker refused the message (basic.nack); publish it again later"))
        case Method.basicReturn:
            let r = decoded!.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            ch.incoming = IncomingContent(kind: .returned(replyCode: r.reply_code, replyText: r.reply_text.string,
                                                          exchange: r.exchange.string, routingKey: r.routing_key.string))
        case Method.basicCancel:
            let tag = decoded!.assumingMemoryBound(to: amqp_basic_cancel_t.self).pointee.consumer_tag.string
            if let consumer = ch.consumers.removeValue(forKey: tag) {
                logger.warning("the broker cancelled a consumer", metadata: ["consumer": "\(tag)", "queue": "\(consumer.spec.queue)"])
                consumer.buffer.finish(AMQPError(.consumerCancelled,
                    "the broker cancelled consumer '\(tag)' on queue '\(consumer.spec.queue)' (the queue was deleted or is unavailable)"))
            }
        case Method.channelClose:
            let close = decoded!.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let error = AMQPError.fromBroker(replyCode: close.reply_code, replyText: close.reply_text.string, scope: "channel \(id)")
            var ok = amqp_channel_close_ok_t(dummy: 0)
            if let conn { _ = amqp_send_method(conn, id, Method.channelCloseOk, &ok) }
            channelClosed(ch, error)
        case Method.channelFlow:
            let active = decoded!.assumingMemoryBound(to: amqp_channel_flow_t.self).pointee.active
            var ok = amqp_channel_flow_ok_t(active: active)
            if let conn { _ = amqp_send_method(conn, id, Method.channelFlowOk, &ok) }
        default:
            logger.debug("ignored a channel method", metadata: ["channel": "\(id)", "method": "\(method.id)"])
        }
    }

    private func contentComplete(_ content: IncomingContent, on ch: ChannelState) {
        switch content.kind {
        case let .delivery(consumerTag, deliveryTag, redelivered, exchange, routingKey):
            let delivery = AMQPDelivery(body: content.body, bodySize: content.bodySize, bodyDiscarded: content.discardBody,
                                        properties: content.properties, deliveryTag: deliveryTag,
                                        redelivered: redelivered, exchange: exchange, routingKey: routingKey,
                                        consumerTag: consumerTag, channel: ch.handle, generation: generation)
            if let consumer = ch.consumers[consumerTag] {
                if consumer.pending.isEmpty { consumersWithPending.append(consumer) }
                consumer.pending.append(delivery)
            } else if let conn {
                // Its consumer was cancelled while the delivery was on the wire: give it back.
                _ = amqp_basic_reject(conn, ch.id, deliveryTag, 1)
            }
        case let .returned(replyCode, replyText, exchange, routingKey):
            let error = AMQPError(.unroutable, "the broker returned the message published to exchange '\(exchange)' "
                + "with routing key '\(routingKey)': \(replyCode) \(replyText); no queue is bound for it", replyCode: replyCode)
            if ch.confirmMode {
                ch.pendingReturn = error
            } else {
                logger.warning("a mandatory message was returned", metadata: ["error": "\(error.message)"])
            }
        }
    }

    /// Hands the deliveries of this pass over the socket to their consumers, one handover each.
    func handOverDeliveries() {
        guard !consumersWithPending.isEmpty else { return }
        for consumer in consumersWithPending {
            let deliveries = consumer.pending
            consumer.pending.removeAll(keepingCapacity: true)
            // Deliveries of a connection lost during this pass are dropped: the broker redelivers them.
            if conn != nil, !consumer.buffer.push(deliveries) {
                giveBack(deliveries)  // the consumer's task stopped iterating
            }
        }
        consumersWithPending.removeAll(keepingCapacity: true)
    }

    /// Requeues deliveries no one will see, when their channel still lives.
    func giveBack(_ deliveries: [AMQPDelivery]) {
        guard let conn else { return }
        for d in deliveries where d.generation == generation && channels[d.channel.id] != nil {
            _ = amqp_basic_reject(conn, d.channel.id, d.deliveryTag, 1)
        }
    }

    /// The broker (or this client) closed a channel: everything on it fails or ends.
    func channelClosed(_ ch: ChannelState, _ error: AMQPError) {
        channels.removeValue(forKey: ch.id)
        ch.handle.status.withLock { $0 = .closed(error) }
        ch.failInFlight(AMQPError(.channelClosed, "channel \(ch.id) closed before the broker confirmed the message: \(error.message)",
                                  replyCode: error.replyCode))
        ch.finishConsumers(error.code == .channelClosed ? nil : error)
        if error.code != .channelClosed {
            logger.info("the broker closed a channel", metadata: ["channel": "\(ch.id)", "error": "\(error.message)"])
        }
    }
}
