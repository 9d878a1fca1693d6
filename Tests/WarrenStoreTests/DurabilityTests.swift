import Foundation
import GRDB
import Testing
@testable import WarrenStore

#if canImport(Glibc)
import Glibc
#endif

/// What survives a crash, and what readers see while a writer commits.
@Suite("Durability")
struct DurabilityTests {
    /// The folder of the built products (the test bundle sits beside the executables).
    static var productsDirectory: String {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        if FileManager.default.isExecutableFile(atPath: beside + "/StoreBenchmark") { return beside }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path + "/.build/debug"
    }

    /// Starts `StoreBenchmark crash-writer DB` with its standard output on a pipe.
    static func startWriter(db: String) throws -> (pid: pid_t, output: Int32) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw StoreError(.databaseError, "pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        let executable = productsDirectory + "/StoreBenchmark"
        let words: [String] = [executable, "crash-writer", db]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        close(fds[1])
        guard rc == 0 else { throw StoreError(.databaseError, "cannot start \(executable): errno \(rc)") }
        return (pid, fds[0])
    }

    static func readAll(_ fd: Int32) -> String {
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            data += buffer[0..<n]
        }
        close(fd)
        return String(decoding: data, as: UTF8.self)
    }

    /// A child process applies batches of 100 creates, each in one transaction, and prints each
    /// batch number once its commit returned. It is killed with SIGKILL at random moments; after
    /// reopening, every reported batch is there whole and no batch is there in part.
    @Test func everyCommittedBatchSurvivesSIGKILLWholeAndNoneInPart() async throws {
        let temp = try TempStore()
        defer { temp.remove() }
        var reported = Set<Int>()
        for round in 0..<6 {
            let (pid, output) = try Self.startWriter(db: temp.path)
            try await Task.sleep(for: .milliseconds(Int.random(in: 150...600)))
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            #expect(status & 0x7f == SIGKILL, "round \(round): the writer must die by SIGKILL, status \(status)")
            let lines = Self.readAll(output).split(separator: "\n")
            for line in lines where line.hasPrefix("committed ") {
                reported.insert(Int(line.dropFirst("committed ".count))!)
            }
            // Reopen (recovering the WAL) and count each batch's promises.
            let queue = try DatabaseQueue(path: temp.path)
            let counts = try await queue.read { db in
                try Row.fetchAll(db, sql: """
                    SELECT CAST(substr(id, 2, instr(id, '-') - 2) AS INTEGER) AS batch, count(*) AS n
                    FROM promises GROUP BY batch
                    """).map { (batch: $0["batch"] as Int, n: $0["n"] as Int) }
            }
            try queue.close()
            for c in counts { #expect(c.n == 100, "round \(round): batch \(c.batch) has \(c.n) of its 100 promises") }
            let present = Set(counts.map(\.batch))
            #expect(reported.isSubset(of: present), "round \(round): reported batches missing: \(reported.subtracting(present).sorted())")
        }
        #expect(reported.count > 6, "the writer committed too few batches to prove anything (\(reported.count))")
        print("crash test: 6 SIGKILLs, \(reported.count) batches reported committed, all present and whole")
    }

    /// Readers see whole batches only, while a writer commits batches concurrently.
    @Test func readersSeeConsistentSnapshotsWhileAWriterCommits() async throws {
        let temp = try TempStore()
        defer { temp.remove() }
        let store = temp.store
        let batches = 150, size = 40
        try await withThrowingTaskGroup(of: Int.self) { group in
            group.addTask {
                for b in 0..<batches {
                    _ = try await store.write { tx in
                        for i in 0..<size {
                            _ = try tx.createPromise(CreatePromise(id: "s\(b)-\(i)", timeout: t0 + hour), now: t0)
                        }
                        // The batch also resolves the previous batch's promises: a reader must
                        // never see a batch half resolved either.
                        if b > 0 {
                            for i in 0..<size { _ = try tx.settlePromise(SettlePromise(id: "s\(b - 1)-\(i)", completion: .resolve), now: t0) }
                        }
                    }
                }
                return 0
            }
            for _ in 0..<2 {
                group.addTask {
                    var snapshots = 0
                    var lastTotal = 0
                    while lastTotal < batches * size {
                        let (perBatch, total) = try await store.read { tx in
                            var perBatch: [String: (all: Int, resolved: Int)] = [:]
                            var cursor: String? = nil
                            var total = 0
                            repeat {
                                let page = try tx.search(PromiseSearch(id: "s*", limit: 1000, cursor: cursor), now: t0)
                                for p in page.promises {
                                    let batch = String(p.id.prefix { $0 != "-" })
                                    var entry = perBatch[batch] ?? (0, 0)
                                    entry.all += 1
                                    if p.state == .resolved { entry.resolved += 1 }
                                    perBatch[batch] = entry
                                }
                                total += page.promises.count
                                cursor = page.cursor
                            } while cursor != nil
                            return (perBatch, total)
                        }
                        for (batch, entry) in perBatch {
                            #expect(entry.all == size, "batch \(batch) seen with \(entry.all) of \(size) promises")
                            #expect(entry.resolved == 0 || entry.resolved == size, "batch \(batch) seen half resolved")
                        }
                        #expect(total >= lastTotal, "a later snapshot saw less")
                        lastTotal = total
                        snapshots += 1
                    }
                    return snapshots
                }
            }
            var snapshots = 0
            for try await n in group { snapshots += n }
            #expect(snapshots > 2)
        }
    }
}
