// The seed article's workflow as a library: the hitl-worker executable serves it, and
// Tests/ExamplesTests test it with WarrenTesting.
import Foundation
import Warren

/// Prints a line at once (also into a file or a pipe, where print would buffer it).
func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

/// A durable step: it runs once, and its result is recorded.
@Sendable func sendEmail(_ ctx: Context, _ link: String) async throws -> String {
    say("Email sent! Please resolve the promise by visiting: \(link)")
    return "Email sent with \(link)"
}

/// `foo-workflow`: creates a promise, mails a signed approval link for it, and waits, for as
/// long as it takes, holding no memory and no message, until someone resolves the promise.
@Sendable public func fooWorkflow(_ ctx: Context, _ workflowID: String) async throws -> String {
    let blocking = try await ctx.promise(tags: ["human": "true", "title": "Approve workflow \(workflowID)"])
    // Signed for this promise, until its timeout; the same link on every replay.
    try await ctx.run(sendEmail, try blocking.link(outcomes: ["approved", "rejected"]), name: "sendEmail")
    // Printed once: the run that resumes after the approval replays this line quietly.
    if !ctx.isReplaying { say("workflow \(workflowID) blocked, waiting on human interaction") }
    // The worker lets go here; any worker continues from this line once it is resolved.
    let data: String = try await blocking.value()
    say("workflow \(workflowID) unblocked, promise resolved with \(data)")
    return "foo workflow \(workflowID) complete"
}
