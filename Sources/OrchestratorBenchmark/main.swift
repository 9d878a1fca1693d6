// Measures a running orchestrator (`warren serve`) through the message contract, as any client
// would: promises created and resolved per second with many in flight, and the idle latency from
// a resolve message to its settled event. Run by Scripts/bench-orchestrator.sh.
//   OrchestratorBenchmark URL PREFIX PROMISES IN_FLIGHT LATENCY_SAMPLES
// Prints: promises_per_s=<n> settle_p50_us=<us> settle_p99_us=<us>
import AMQP
import Foundation

let args = CommandLine.arguments
guard args.count == 6, let total = Int(args[3]), let inFlight = Int(args[4]), let samples = Int(args[5]),
      total > 0, inFlight > 0, samples > 0 else {
    FileHandle.standardError.write(Data("usage: OrchestratorBenchmark URL PREFIX PROMISES IN_FLIGHT LATENCY_SAMPLES\n".utf8))
    exit(64)
}
let (url, prefix) = (args[1], args[2])

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

nonisolated func benchmark() async throws {
    let connection = try await AMQPConnection.connect(url: url, name: "orchestrator-bench")
    let channel = try await connection.openChannel()
    try await channel.confirmSelect()
    let events = try await channel.queueDeclare("", exclusive: true).queue
    try await channel.queueBind(events, exchange: prefix, routingKey: "settled.#")
    try await channel.basicQos(prefetchCount: 1000)
    var settled = try await channel.basicConsume(queue: events).makeAsyncIterator()
    let run = UUID().uuidString.prefix(8)
    let json = BasicProperties(contentType: "application/json", deliveryMode: .persistent)

    func send(_ i: Int) throws {
        try channel.basicPublish(#"{"id": "b\#(run)-\#(i)", "timeout": "1h"}"#, exchange: prefix, routingKey: "promise.create", properties: json)
        try channel.basicPublish(#"{"id": "b\#(run)-\#(i)", "value": \#(i)}"#, exchange: prefix, routingKey: "promise.resolve", properties: json)
    }

    // Throughput: keep IN_FLIGHT promises between their create and their settled event.
    let start = ContinuousClock.now
    var sent = 0, done = 0
    while sent < min(inFlight, total) { try send(sent); sent += 1 }
    while done < total {
        let batch = try await settled.next(upTo: 1000)
        guard let last = batch.last else { fatalError("the event consumer ended") }
        done += batch.count
        try last.ack(multiple: true)
        while sent < total, sent - done < inFlight { try send(sent); sent += 1 }
    }
    let rate = Double(total) / seconds(ContinuousClock.now - start)

    // Idle latency: one pending promise at a time, from the resolve's publish to its event.
    var latencies: [Double] = []
    for i in 0..<samples {
        try await channel.basicPublish(#"{"id": "l\#(run)-\#(i)", "timeout": "1h"}"#, exchange: prefix, routingKey: "promise.create", properties: json).wait()
        let s = ContinuousClock.now
        try channel.basicPublish(#"{"id": "l\#(run)-\#(i)", "value": true}"#, exchange: prefix, routingKey: "promise.resolve", properties: json)
        guard let d = try await settled.next() else { fatalError("the event consumer ended") }
        latencies.append(seconds(ContinuousClock.now - s) * 1e6)
        try d.ack()
    }
    latencies.sort()
    print(String(format: "promises_per_s=%.0f settle_p50_us=%.0f settle_p99_us=%.0f", rate,
                 latencies[samples / 2], latencies[samples * 99 / 100]))
    await connection.close()
}

do {
    try await benchmark()
} catch {
    FileHandle.standardError.write(Data("OrchestratorBenchmark: \(error)\n".utf8))
    exit(1)
}
