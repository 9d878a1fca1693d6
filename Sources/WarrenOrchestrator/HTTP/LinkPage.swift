import Foundation
import HTTPTypes
import Hummingbird
import WarrenContract
import WarrenLinks
import WarrenKernel
import WarrenStore

/// Signed approval links (docs/http.md#approval-links): `GET /approve/{id}?…` shows what the
/// link decides and its buttons, and settles nothing (mail scanners and link previews open
/// links); the buttons `POST` the same URL with `{"outcome": "approved", "comment": "…"}`. The
/// link is the credential: it settles only its own promise, with an outcome it offers, until it
/// expires, and only while the promise is pending.
extension HTTPAPI {
    /// The longest comment kept with a decision.
    static let maximumCommentBytes = 2000

    /// `GET /approve/{id}`: the confirmation page, or a page saying why the link does not work.
    func linkPage(_ id: String, _ request: Request) async throws -> Response {
        do {
            let link = try verifiedLink(id, request)
            guard let p = try await store.read({ tx in try tx.promise(id: id, now: Self.now()) }) else {
                throw HTTPProblem(.notFound, "notFound", "this link's promise does not exist (any more)")
            }
            if let refusal = Self.internalRefusal(p) { throw HTTPProblem(refusal) }
            guard p.state == .pending else { throw Self.alreadyDecided(p) }
            return LinkPageHTML.response(.ok, LinkPageHTML.confirmation(promise: p, link: link))
        } catch let p as HTTPProblem {
            return LinkPageHTML.response(p.status, LinkPageHTML.refusal(p))
        }
    }

    /// `POST /approve/{id}`: settles the promise with the outcome asked for, recording who
    /// (`link:<key id>`), when and through what in the value's headers.
    func settleByLink(_ id: String, _ request: Request) async throws -> Response {
        struct Body: Decodable { var outcome: String; var comment: String? }
        let link = try verifiedLink(id, request)
        let body = try await decode(Body.self, request)
        do { try link.check(outcome: body.outcome) } catch { throw HTTPProblem(.forbidden, "outcomeNotOffered", error.message) }
        var headers = ["warren:settled-by": "link:\(link.keyID)", "warren:settled-via": "link", "warren:settled-on": "\(Self.now())"]
        if let comment = body.comment?.trimmingCharacters(in: .whitespacesAndNewlines), !comment.isEmpty {
            guard comment.utf8.count <= Self.maximumCommentBytes else {
                throw HTTPProblem(.contentTooLarge, "payloadTooLarge", "a comment may hold \(Self.maximumCommentBytes) bytes")
            }
            headers["comment"] = comment
        }
        let settle = SettlePromise(id: id, completion: .resolve, value: PromiseValue(headers: headers, data: JSONValue.string(body.outcome).jsonText))
        let kernel = Kernel(config.kernel)
        let logger = self.logger
        do {
            let result = try await batcher.write { tx in
                let now = Self.now()
                guard let p = try tx.promise(id: id, now: now) else { throw StoreError(.notFound, "this link's promise does not exist (any more)") }
                if let refusal = Self.internalRefusal(p) { throw refusal }
                let (result, effects) = try kernel.settlePromise(settle, tx: tx, now: now)
                try tx.enqueue(effects)
                return result
            }
            logger.info("promise settled through a signed link", metadata: ["promise": "\(id)", "outcome": "\(body.outcome)", "key": "\(link.keyID)"])
            return Self.json(.ok, HTTPPromise(result.promise))
        } catch let e as StoreError where e.code == .alreadySettled {
            throw e.promise.map(Self.alreadyDecided) ?? HTTPProblem(e)
        }
    }

    /// The link the request carries, checked against the orchestrator's keys and the clock.
    private func verifiedLink(_ id: String, _ request: Request) throws(HTTPProblem) -> ApprovalLink {
        guard !config.linkKeys.isEmpty else {
            throw HTTPProblem(.notFound, "linksNotConfigured", "this orchestrator has no link keys (--link-keys-file), so it accepts no approval links")
        }
        var query: [String: String] = [:]
        for (key, value) in request.uri.queryParameters { query[String(key)] = String(value) }
        do {
            let link = try ApprovalLink.parse(promiseID: id, query: query)
            try link.verify(keys: config.linkKeys, now: Self.now())
            return link
        } catch {
            let status: HTTPResponse.Status = switch error.code {
            case .invalid: .badRequest
            case .expired: .gone
            default: .forbidden
            }
            if error.code != .invalid { logger.notice("approval link refused", metadata: ["promise": "\(id)", "why": "\(error.code.rawValue)"]) }
            throw HTTPProblem(status, error.code.rawValue, error.message)
        }
    }

    /// A link never settles a workflow's machinery, whoever signed it.
    private static func internalRefusal(_ p: PromiseRecord) -> StoreError? {
        PromiseRules.isInternal(p) ? StoreError(.internalPromise, "'\(p.id)' is part of a workflow's own machinery; no link settles it") : nil
    }

    private static func alreadyDecided(_ p: PromiseRecord) -> HTTPProblem {
        let decision = p.state == .resolved ? (p.value.data.flatMap { try? JSONDecoder().decode(String.self, from: Data($0.utf8)) } ?? "resolved")
            : p.state.rawValue.lowercased()
        let by = p.value.headers["warren:settled-via"].map { " (through \($0))" } ?? ""
        return HTTPProblem(.conflict, "alreadySettled", "this was already decided: \(decision)\(by); the first decision stands")
    }
}

/// The HTML of the link pages: the confirmation, and the refusals.
enum LinkPageHTML {
    static func response(_ status: HTTPResponse.Status, _ html: String) -> Response {
        var headers = ApprovalPage.headers
        // The link's signature is in the URL: no page it leads to may learn it.
        headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    static func date(_ millis: Int64) -> String {
        guard millis < Int64.max else { return "none" }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "d MMM yyyy, HH:mm 'UTC'"
        return f.string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
    }

    static func confirmation(promise p: PromiseRecord, link: ApprovalLink) -> String {
        let title = p.tags["title"] ?? p.tags["description"] ?? "Decision for \(p.id)"
        let buttons = link.outcomes.enumerated().map { i, o in
            "<button type=\"button\" class=\"\(i == 0 ? "first" : "other")\" data-outcome=\"\(escape(o))\">\(escape(label(o)))</button>"
        }.joined()
        let workflow = p.tags["warren:workflow"].map { " · workflow <b>\(escape($0))</b>" } ?? ""
        return page(title: title, body: """
            <h1>\(escape(title))</h1>
            <p class="meta">promise \(escape(p.id))\(workflow)<br>waiting since \(escape(date(p.createdOn))) · this link works until \(escape(date(min(link.expires, p.timeout))))</p>
            <p>Nothing is decided until you choose:</p>
            <div class="row"><input type="text" id="comment" maxlength="500" placeholder="Comment (optional)" aria-label="comment"></div>
            <div class="row" id="choices">\(buttons)</div>
            <p id="status" role="status"></p>
            <script>
            "use strict";
            document.querySelectorAll("#choices button").forEach(b => b.onclick = async () => {
              const buttons = document.querySelectorAll("#choices button");
              buttons.forEach(x => x.disabled = true);
              const status = document.getElementById("status");
              try {
                const r = await fetch(location.href, { method: "POST", headers: { "content-type": "application/json" },
                  body: JSON.stringify({ outcome: b.dataset.outcome, comment: document.getElementById("comment").value }) });
                const body = await r.json();
                status.textContent = r.ok ? "Done: " + b.dataset.outcome + ". You can close this page." : (body.error ? body.error.message : "failed: " + r.status);
                status.className = r.ok ? "done" : "refused";
              } catch (e) {
                status.textContent = "Could not reach Warren: " + e; buttons.forEach(x => x.disabled = false);
              }
            });
            </script>
            """)
    }

    /// A button's label: the verb for the usual outcomes, else the outcome's name.
    static func label(_ outcome: String) -> String {
        switch outcome {
        case "approved": "Approve"
        case "rejected": "Reject"
        default: outcome.prefix(1).uppercased() + outcome.dropFirst().replacingOccurrences(of: "_", with: " ")
        }
    }

    static func refusal(_ p: HTTPProblem) -> String {
        let heading = switch p.code {
        case "alreadySettled": "Already decided"
        case "expired": "This link has expired"
        case "notFound": "Nothing to decide"
        default: "This link does not work"
        }
        return page(title: heading, body: "<h1>\(escape(heading))</h1><p class=\"refused\">\(escape(p.message))</p>")
    }

    static func page(title: String, body: String) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="robots" content="noindex">
        <title>\(escape(title)) · Warren</title>
        <style>
          :root { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330; background: #f5f6f8; }
          body { margin: 0 auto; max-width: 36rem; padding: 1.2rem; }
          h1 { font-size: 1.35rem; }
          .meta { color: #5b6478; font-size: .9rem; line-height: 1.5; word-break: break-all; }
          .row { display: flex; gap: .5rem; flex-wrap: wrap; margin: .6rem 0; }
          input[type=text] { flex: 1 1 12rem; padding: .6rem; border: 1px solid #c4cad6; border-radius: .4rem; font-size: 1rem; }
          button { padding: .65rem 1.3rem; border: 0; border-radius: .4rem; font-size: 1rem; cursor: pointer; }
          button.first { background: #1f8a4c; color: #fff; } button.other { background: #c0392b; color: #fff; }
          button:disabled { opacity: .5; cursor: default; }
          .done { color: #1f8a4c; font-weight: 600; } .refused { color: #c0392b; }
        </style>
        </head>
        <body>
        \(body)
        </body>
        </html>
        """
    }
}
