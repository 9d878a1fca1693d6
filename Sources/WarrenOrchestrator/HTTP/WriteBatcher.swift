import Synchronization
import WarrenKernel
import WarrenStore

/// Applies the writes of concurrent HTTP requests together: whatever is waiting when the writer
/// is free goes into one transaction (one commit, one fsync), and each request gets its own
/// result after the commit. A refused command leaves no trace and does not affect the others
/// (the store's check-before-write contract). When the shared transaction fails for anything but
/// the storage, each request is applied again in a transaction of its own, so that one bad
/// request fails alone; a storage fault fails them all (503), and nothing of it was applied.
final class WriteBatcher: Sendable {
    private struct Job: Sendable {
        /// Applies the job; returns what to do after the commit (resume its caller).
        let apply: @Sendable (any StoreTransaction) throws -> @Sendable () -> Void
        let fail: @Sendable (any Error) -> Void
    }

    private let storeWrite: @Sendable (@escaping @Sendable (any StoreTransaction) throws -> [@Sendable () -> Void]) async throws -> [@Sendable () -> Void]
    private let queue = Mutex<(jobs: [Job], open: Bool)>(([], true))
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    /// `write` runs a transaction (the orchestrator's: its outbox relay publishes what it wrote).
    init(write: @escaping @Sendable (@escaping @Sendable (any StoreTransaction) throws -> [@Sendable () -> Void]) async throws -> [@Sendable () -> Void]) {
        self.storeWrite = write
        (wakeups, wake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Runs `body` in a write transaction shared with the other requests waiting now.
    func write<T: Sendable>(_ body: @escaping @Sendable (any StoreTransaction) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            let job = Job(apply: { tx in
                do {
                    let value = try body(tx)
                    return { c.resume(returning: value) }
                } catch let e as StoreError {
                    return { c.resume(throwing: e) }
                }
            }, fail: { c.resume(throwing: $0) })
            let accepted = queue.withLock { q in
                if q.open { q.jobs.append(job) }
                return q.open
            }
            if accepted { wake.yield() } else { job.fail(ShuttingDown()) }
        }
    }

    struct ShuttingDown: Error, CustomStringConvertible {
        var description: String { "the orchestrator is shutting down" }
    }

    /// Applies jobs until ``finish()``, everything waiting in one transaction.
    func run() async {
        for await _ in wakeups {
            while true {
                let jobs = queue.withLock { q in defer { q.jobs.removeAll() }; return q.jobs }
                if jobs.isEmpty { break }
                await apply(jobs)
            }
        }
    }

    private func apply(_ jobs: [Job]) async {
        do {
            let resumptions = try await storeWrite { tx in try jobs.map { try $0.apply(tx) } }
            resumptions.forEach { $0() }
        } catch let e as StoreError where e.code == .storageUnavailable {
            jobs.forEach { $0.fail(e) }
        } catch {
            if jobs.count == 1 { return jobs[0].fail(error) }
            for job in jobs { await apply([job]) }
        }
    }

    /// Stops accepting writes; ``run()`` ends after what is queued.
    func finish() {
        queue.withLock { $0.open = false }
        wake.finish()
    }
}
