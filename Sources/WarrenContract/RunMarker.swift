/// The runs of a workflow that continued as new (`ctx.continueAsNew`): the first run's calls are
/// `<workflow>.<n>`; run `k` (2, 3, …) records its calls as `<workflow>.r<k>.<n>`, and the run
/// before it records a marker promise `<workflow>.warren:run:<k>`, resolved with
/// `{"run":k,"args":[…]}` (tag `warren:kind: continue`), the arguments the new run starts with.
///
/// The orchestrator sends the workers only the latest run's promises (and the markers), so a
/// workflow that loops for ever through `continueAsNew` resumes as cheaply as a short one.
public enum RunMarker {
    /// The `warren:kind` tag of a run marker.
    public static let kind = "continue"

    /// The id of the marker that starts run `run` of `workflow`.
    public static func markerID(of workflow: String, run: Int) -> String { workflow + ".warren:run:\(run)" }

    /// The prefix of run `run`'s calls: the workflow's id for the first, `<workflow>.r<k>` after.
    public static func prefix(of workflow: String, run: Int) -> String { run <= 1 ? workflow : workflow + ".r\(run)" }

    /// The run a marker of `workflow` starts, if `id` is one.
    public static func run(ofMarker id: String, workflow: String) -> Int? {
        let prefix = workflow + ".warren:run:"
        guard id.hasPrefix(prefix), let k = Int(id.dropFirst(prefix.count)), k >= 2 else { return nil }
        return k
    }

    /// The latest run of `workflow` its history (the promises below it) has, with its marker;
    /// `nil` for a workflow that never continued as new.
    public static func latest(of workflow: String, in history: [PromiseRecord]) -> (run: Int, marker: PromiseRecord)? {
        var best: (run: Int, marker: PromiseRecord)? = nil
        for p in history {
            guard let k = run(ofMarker: p.id, workflow: workflow), k > (best?.run ?? 1) else { continue }
            best = (k, p)
        }
        return best
    }
}
