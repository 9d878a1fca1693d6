import Testing
import WarrenStore

/// The task state machine as values: no store at all.
@Suite("Task rules")
struct TaskRulesTests {
    let task = TaskRecord(id: "wf", group: "g", state: .pending, version: 1, worker: nil, updatedOn: 0)

    @Test func aPendingVersionIsTakenByItsFirstReportOnly() throws {
        let held = try TaskRules.fence(task, version: 1, worker: "a")
        let acquired = TaskRules.acquire(held, worker: "a", now: 5)
        #expect(acquired.state == .acquired && acquired.worker == "a" && acquired.updatedOn == 5)
        #expect(try TaskRules.fence(acquired, version: 1, worker: "a") == acquired)
        #expect(throws: StoreError.self) { try TaskRules.fence(acquired, version: 1, worker: "b") }
        #expect(throws: StoreError.self) { try TaskRules.fence(acquired, version: 2, worker: "a") }
    }

    @Test func aClaimAgainByItsHolderChangesNothing() throws {
        let (claimed, changed) = try TaskRules.claim(task, version: 1, worker: "a", now: 1)
        #expect(changed && claimed.state == .acquired)
        let (again, changedAgain) = try TaskRules.claim(claimed, version: 1, worker: "a", now: 2)
        #expect(!changedAgain && again == claimed)
        #expect(throws: StoreError.self) { try TaskRules.claim(claimed, version: 1, worker: "b", now: 3) }
    }

    @Test func handingOutRaisesTheVersionAndLetsGoOfTheWorker() throws {
        let out = TaskRules.handOut(TaskRules.acquire(task, worker: "a", now: 1), now: 2)
        #expect(out.state == .pending && out.version == 2 && out.worker == nil)
        #expect(throws: StoreError.self) { try TaskRules.redispatch(TaskRules.suspend(task, now: 1), now: 2) }
        #expect(try TaskRules.redispatch(task, now: 2).version == 2)
    }

    @Test func retriesCountTheFailuresOfOneStepAndStartAgainForAnother() {
        let once = TaskRules.retry(task, failedStep: "wf.1", now: 1)
        #expect(once.state == .suspended && once.retry == TaskRetry(step: "wf.1", failures: 1))
        #expect(TaskRules.retry(once, failedStep: "wf.1", now: 2).retry == TaskRetry(step: "wf.1", failures: 2))
        #expect(TaskRules.retry(once, failedStep: "wf.2", now: 2).retry == TaskRetry(step: "wf.2", failures: 1))
        #expect(TaskRules.resumes(once) && !TaskRules.resumes(task))
        #expect(TaskRules.complete(once, now: 3).state == .completed)
    }

    @Test func aLeaseLapsesOnlyForTheTaskItHeld() {
        let running = TaskRules.acquire(task, worker: "a", now: 1)
        #expect(TaskRules.leaseLapsed(running, until: 10, now: 10))
        #expect(!TaskRules.leaseLapsed(running, until: 10, now: 9))
        #expect(!TaskRules.leaseLapsed(TaskRules.suspend(running, now: 2), until: 10, now: 11))
    }

    @Test func reportsAreCheckedBeforeAnythingIsWritten() throws {
        #expect(throws: StoreError.self) { try TaskRules.awaitList([], limits: .default) }
        #expect(try TaskRules.awaitList(["a", "b", "a"], limits: .default) == ["a", "b"])
        #expect(throws: StoreError.self) { try TaskRules.validate([StepOutcome(id: "other.1", value: .empty)], of: "wf", limits: .default) }
        #expect(throws: StoreError.self) { try TaskRules.validate([StepOutcome(id: "wf.1", completion: .cancel, value: .empty)], of: "wf", limits: .default) }
    }
}
