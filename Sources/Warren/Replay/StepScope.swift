import Synchronization

/// The steps a run starts with `beginRun`, run as child tasks of the run itself: the run does
/// not end before they do, and cancelling the run cancels them. The workflow's code runs as one
/// child of a task group, and each step it starts becomes another: the group's own loop takes
/// them from a queue (a child cannot add to its group). The loop ends once the code has
/// returned and no step is queued or running.
final class StepScope: Sendable {
    typealias Job = @Sendable () async -> Void
    private struct State {
        var queued: [Job] = []
        var waiter: CheckedContinuation<Job?, Never>?
        var running = 0
        var bodyDone = false
        var finished: Bool { bodyDone && running == 0 && queued.isEmpty }
    }
    private let state = Mutex(State())

    /// Runs `body` and every step it (or a step) starts, and returns once all have finished.
    /// Every step started is run, even after cancellation (it sees the cancellation itself), so
    /// that no handle waits for a step that never began.
    func run<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async -> Result<T, any Error> {
        let outcome = Outcome<T>()
        await withDiscardingTaskGroup { group in
            group.addTask {
                do { outcome.set(.success(try await body())) } catch { outcome.set(.failure(error)) }
                self.finished(body: true)
            }
            while let job = await next() {
                group.addTask {
                    await job()
                    self.finished(body: false)
                }
            }
        }
        return outcome.result ?? .failure(CancellationError())
    }

    /// Starts `job` beside the run's code.
    func start(_ job: @escaping Job) {
        let waiter: CheckedContinuation<Job?, Never>? = state.withLock { s in
            s.running += 1
            guard let w = s.waiter else { s.queued.append(job); return nil }
            s.waiter = nil
            return w
        }
        waiter?.resume(returning: job)
    }

    /// The next step to start, or `nil` once the code has returned and every step has finished.
    private func next() async -> Job? {
        await withCheckedContinuation { (c: CheckedContinuation<Job?, Never>) in
            let now: Job?? = state.withLock { s in
                if !s.queued.isEmpty { return .some(s.queued.removeFirst()) }
                if s.finished { return .some(nil) }
                s.waiter = c
                return nil
            }
            if let now { c.resume(returning: now) }
        }
    }

    private func finished(body: Bool) {
        let waiter: CheckedContinuation<Job?, Never>? = state.withLock { s in
            if body { s.bodyDone = true } else { s.running -= 1 }
            guard s.finished, let w = s.waiter else { return nil }
            s.waiter = nil
            return w
        }
        waiter?.resume(returning: nil)
    }
}

/// A value set once and awaited by any number of tasks: a step's outcome. A waiter that is
/// cancelled stops waiting (with `CancellationError`); the value stays for the others.
final class Outcome<R: Sendable>: Sendable {
    private struct State {
        var result: Result<R, any Error>?
        var waiters: [Int: CheckedContinuation<R, any Error>] = [:]
        var next = 0
    }
    private let state = Mutex(State())

    init() {}

    init(_ result: Result<R, any Error>) {
        state.withLock { $0.result = result }
    }

    /// The outcome, if it is set.
    var result: Result<R, any Error>? { state.withLock { $0.result } }

    func set(_ result: Result<R, any Error>) {
        let waiters: [CheckedContinuation<R, any Error>] = state.withLock { s in
            guard s.result == nil else { return [] }
            s.result = result
            defer { s.waiters.removeAll() }
            return Array(s.waiters.values)
        }
        for w in waiters { w.resume(with: result) }
    }

    var value: R {
        get async throws {
            let ticket = state.withLock { s in s.next += 1; return s.next }
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (c: CheckedContinuation<R, any Error>) in
                    let now: Result<R, any Error>? = state.withLock { s in
                        if let r = s.result { return r }
                        if Task.isCancelled { return .failure(CancellationError()) }
                        s.waiters[ticket] = c
                        return nil
                    }
                    if let now { c.resume(with: now) }
                }
            } onCancel: {
                state.withLock { $0.waiters.removeValue(forKey: ticket) }?.resume(throwing: CancellationError())
            }
        }
    }
}
