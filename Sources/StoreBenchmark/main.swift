// Measures the promise store, and serves as the writer that the crash-safety test kills.
//   StoreBenchmark bench [--dir DIR] [--single N] [--batches N] [--batch-size N]
//   StoreBenchmark crash-writer DB       applies batches of 100 creates forever, printing
//                                        "committed <batch>" after each commit returns
import Foundation
import WarrenStore

func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

func fileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil) ?? 0
}

func crashWriter(path: String) throws {
    let store = try SQLiteStore(path: path)
    // Go on after the batches an earlier (killed) writer committed.
    var batch = try store.writeSync { tx in
        var count = 0
        var cursor: String? = nil
        repeat {
            let page = try tx.search(PromiseSearch(id: "b*", limit: PromiseSearch.maximumLimit, cursor: cursor), now: 0)
            count += page.promises.count
            cursor = page.cursor
        } while cursor != nil
        return count / 100
    }
    while true {
        let b = batch
        let t = now()
        try store.writeSync { tx in
            for i in 0..<100 {
                _ = try tx.createPromise(CreatePromise(id: "b\(b)-\(i)", param: PromiseValue(data: "\"batch \(b)\""), timeout: t + 3_600_000), now: t)
            }
        }
        // Unbuffered: the parent must see each line the moment the commit has returned.
        FileHandle.standardOutput.write(Data("committed \(b)\n".utf8))
        batch += 1
    }
}

func bench(dir: String, single: Int, batches: Int, batchSize: Int) async throws {
    try? FileManager.default.removeItem(atPath: dir)
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let payload = PromiseValue(data: "\"approved\"")  // a small payload: 10 bytes of JSON
    let timeout = now() + 86_400_000

    // 1. One command per transaction.
    let singleStore = try SQLiteStore(path: dir + "/single.db")
    var start = ContinuousClock.now
    for i in 0..<single {
        _ = try await singleStore.write { tx in try tx.createPromise(CreatePromise(id: "s\(i)", param: payload, timeout: timeout), now: timeout - 1) }
    }
    let singleRate = Double(single) / seconds(ContinuousClock.now - start)

    // 2. Batches: creates and settles, batchSize commands per transaction.
    let batchStore = try SQLiteStore(path: dir + "/batched.db")
    start = ContinuousClock.now
    for b in 0..<batches {
        let (batch, now) = (b, timeout - 1)
        try await batchStore.write { tx in
            for i in 0..<batchSize {
                // Half creates, half settles of promises created by the previous batch.
                if batch > 0, i % 2 == 1 {
                    _ = try tx.settlePromise(SettlePromise(id: "p\(batch - 1)-\(i - 1)", completion: .resolve, value: payload), now: now)
                } else {
                    _ = try tx.createPromise(CreatePromise(id: "p\(batch)-\(i)", param: payload, timeout: timeout), now: now)
                }
            }
        }
    }
    let batchRate = Double(batches * batchSize) / seconds(ContinuousClock.now - start)

    // 3. Bytes on disk per pending promise with a small payload, beyond the payload itself.
    let sizePath = dir + "/size.db"
    let sizeStore = try SQLiteStore(path: sizePath)
    try sizeStore.checkpoint()
    let emptySize = fileSize(sizePath)
    let count = 100_000
    let idWidth = "w-000000.1".utf8.count
    for b in 0..<(count / 1000) {
        _ = try await sizeStore.write { tx in
            for i in 0..<1000 {
                let n = b * 1000 + i
                _ = try tx.createPromise(CreatePromise(id: "w-\(String(format: "%06d", n)).1", param: payload, timeout: timeout), now: timeout - 1)
            }
        }
    }
    try sizeStore.checkpoint()
    let perPromise = Double(fileSize(sizePath) - emptySize) / Double(count)
    let payloadBytes = payload.data!.utf8.count
    print(String(format: "single_tx_per_s=%.0f batched_cmds_per_s=%.0f bytes_per_pending_promise=%.0f payload_bytes=%d id_bytes=%d overhead_bytes=%.0f",
                 singleRate, batchRate, perPromise, payloadBytes, idWidth, perPromise - Double(payloadBytes)))
}

let args = Array(CommandLine.arguments.dropFirst())
do {
    switch args.first {
    case "crash-writer" where args.count == 2:
        try crashWriter(path: args[1])
    case "bench":
        var options: [String: String] = [:]
        var i = 1
        while i + 1 < args.count { options[args[i]] = args[i + 1]; i += 2 }
        try await bench(dir: options["--dir"] ?? NSTemporaryDirectory() + "warren-store-bench",
                        single: Int(options["--single"] ?? "") ?? 5000,
                        batches: Int(options["--batches"] ?? "") ?? 500,
                        batchSize: Int(options["--batch-size"] ?? "") ?? 100)
    default:
        FileHandle.standardError.write(Data("usage: StoreBenchmark bench [--dir DIR] [--single N] [--batches N] [--batch-size N]\n       StoreBenchmark crash-writer DB\n".utf8))
        exit(64)
    }
} catch {
    FileHandle.standardError.write(Data("StoreBenchmark: \(error)\n".utf8))
    exit(1)
}
