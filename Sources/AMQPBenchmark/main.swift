// The Swift side of Scripts/bench-amqp.sh: the same three measurements as Scripts/bench/amqp_bench.c,
// through Warren's AMQP layer.
//   AMQPBenchmark URL MESSAGES WINDOW LATENCY_SAMPLES
// Prints: publish_confirm=<msg/s> consume_ack=<msg/s> latency_p50_us=<us> latency_p99_us=<us>
import AMQP
import Foundation

let args = CommandLine.arguments
guard args.count == 5, let n = Int(args[2]), let window = Int(args[3]), let samples = Int(args[4]), n > 0, window > 0, samples > 0 else {
    FileHandle.standardError.write(Data("usage: AMQPBenchmark URL MESSAGES WINDOW LATENCY_SAMPLES\n".utf8))
    exit(64)
}
let url = args[1]
let queue = "bench.swift"
let body = [UInt8](repeating: UInt8(ascii: "x"), count: 64)
let persistent = BasicProperties(deliveryMode: .persistent)

func seconds(since start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

/// Runs off the main actor, as a server's code would: on the main actor every await would hop threads.
nonisolated func benchmark() async throws {
    // 1. Publish with confirms, a window of WINDOW in flight.
    let publisher = try await AMQPConnection.connect(url: url, name: "bench-publisher")
    let pch = try await publisher.openChannel()
    try await pch.queueDeclare(queue, durable: true)
    try await pch.queuePurge(queue)
    try await pch.confirmSelect()
    var inFlight: [PublishConfirmation?] = Array(repeating: nil, count: window)
    var start = ContinuousClock.now
    for i in 0..<n {
        if let oldest = inFlight[i % window] { try await oldest.wait() }
        inFlight[i % window] = try pch.basicPublish(body, exchange: "", routingKey: queue, properties: persistent)
    }
    for c in inFlight { try await c?.wait() }
    let publishRate = Double(n) / seconds(since: start)

    // 2. Consume the same messages, one ack each.
    let consumerConnection = try await AMQPConnection.connect(url: url, name: "bench-consumer")
    let cch = try await consumerConnection.openChannel()
    try await cch.basicQos(prefetchCount: UInt16(min(window, 65535)))
    let consumer = try await cch.basicConsume(queue: queue)
    var iterator = consumer.makeAsyncIterator()
    start = ContinuousClock.now
    for _ in 0..<n {
        guard let d = try await iterator.next() else { fatalError("consumer ended") }
        try d.ack()
    }
    let consumeRate = Double(n) / seconds(since: start)

    // 3. Latency: publish one persistent message, wait for its delivery, ack; repeat.
    let lch = try await publisher.openChannel()
    var latencies: [Double] = []
    latencies.reserveCapacity(samples)
    for _ in 0..<samples {
        let s = ContinuousClock.now
        try lch.basicPublish(body, exchange: "", routingKey: queue, properties: persistent)
        guard let d = try await iterator.next() else { fatalError("consumer ended") }
        latencies.append(seconds(since: s) * 1e6)
        try d.ack()
    }
    latencies.sort()
    print(String(format: "publish_confirm=%.0f consume_ack=%.0f latency_p50_us=%.0f latency_p99_us=%.0f",
                 publishRate, consumeRate, latencies[samples / 2], latencies[samples * 99 / 100]))
    await consumerConnection.close()
    await publisher.close()
}

do {
    try await benchmark()
} catch {
    FileHandle.standardError.write(Data("AMQPBenchmark: \(error)\n".utf8))
    exit(1)
}
