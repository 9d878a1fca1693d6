import Foundation

/// The cursors the public APIs hand out carry their search, as the Durable Promise server's do: a
/// client that follows only `cursor` gets the same search's next page, not every promise after
/// that id. A cursor is `q!` and the base64url JSON of the query and the last id returned (`!`
/// is no id character, so a cursor can never be mistaken for an id). Inside, the store pages by
/// the last id alone.
extension PromiseSearch {
    static let cursorPrefix = "q!"

    /// The cursor of the page after `lastID` of this search.
    public func cursor(after lastID: String) -> String {
        var f: [String: JSONValue] = ["id": .string(id), "limit": .int(Int64(limit)), "after": .string(lastID)]
        if let states { f["states"] = .array(states.map(\.rawValue).sorted().map(JSONValue.string)) }
        if !tags.isEmpty { f["tags"] = .object(tags.mapValues(JSONValue.string)) }
        let b64 = Data(JSONValue.object(f).jsonText.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        return Self.cursorPrefix + b64
    }

    /// The search whose next page `cursor` names: its own query, continuing after its last id.
    /// A cursor that is a plain id (as Warren handed out before 0.3) continues this search after it.
    public func continuing(_ cursor: String) throws(StoreError) -> PromiseSearch {
        guard cursor.hasPrefix(Self.cursorPrefix) else {
            var s = self
            s.cursor = cursor
            return s
        }
        let bad = StoreError(.invalidArgument, "the cursor '\(cursor.prefix(40))…' is not one this server handed out; start the search again")
        var b64 = String(cursor.dropFirst(Self.cursorPrefix.count)).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        guard b64.utf8.count <= 8192 else { throw bad }
        while b64.utf8.count % 4 != 0 { b64 += "=" }
        guard let data = Data(base64Encoded: b64), let f = (try? JSONValue.parse(Array(data)))?.objectValue,
              let id = f["id"]?.stringValue, case .int(let limit)? = f["limit"], let after = f["after"]?.stringValue,
              (1...Int64(PromiseSearch.maximumLimit)).contains(limit)
        else { throw bad }
        var states: Set<PromiseState>? = nil
        if case .array(let names)? = f["states"] {
            states = []
            for n in names {
                guard let state = n.stringValue.flatMap(PromiseState.init(rawValue:)) else { throw bad }
                states!.insert(state)
            }
        }
        var tags: [String: String] = [:]
        for (k, v) in f["tags"]?.objectValue ?? [:] {
            guard let s = v.stringValue else { throw bad }
            tags[k] = s
        }
        return PromiseSearch(id: id, states: states, tags: tags, limit: Int(limit), cursor: after)
    }

    /// `page` with its cursor as the public APIs hand it out.
    public func publicPage(_ page: PromisePage) -> PromisePage {
        var page = page
        page.cursor = page.cursor.map { cursor(after: $0) }
        return page
    }
}
