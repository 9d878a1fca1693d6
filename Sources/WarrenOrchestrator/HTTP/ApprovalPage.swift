import HTTPTypes

/// The approval page (`GET /ui`): pending promises tagged `human: "true"` with Approve and Reject
/// buttons, and recent outcomes. Plain HTML and a little JavaScript over the promise API: Approve
/// resolves with `"approved"`, Reject rejects with `"rejected"`, the optional comment travels in
/// the value's `comment` header. When the API needs a token, the page asks for one (an `approve`
/// token) and keeps it for the browser tab only (`sessionStorage`).
///
/// For an operator (a caller that may read `/tasks`: an `admin` token, or an open API) the page
/// also lists what needs one: blocked tasks, with their reason and Retry and Fail buttons
/// (`POST /workflows/{root}/retry|fail`), and tasks that have waited more than 30 seconds
/// (`/ui?waitingAfter=SECONDS`) for a worker (a code version no running worker serves, a group with no workers). Other callers do
/// not see that section.
enum ApprovalPage {
    /// The page's headers: no framing, no sniffing, no caching, and a policy that lets it talk to
    /// its own origin only.
    static let headers: HTTPFields = [
        .contentType: "text/html; charset=utf-8",
        .contentSecurityPolicy: "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
            + "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        HTTPField.Name("X-Frame-Options")!: "DENY",
        HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        .cacheControl: "no-store",
        HTTPField.Name("Referrer-Policy")!: "no-referrer",
    ]

    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Warren · approvals</title>
<style>
  :root { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330; background: #f5f6f8; }
  body { margin: 0 auto; max-width: 52rem; padding: 1rem; }
  h1 { font-size: 1.4rem; margin: .5rem 0 1rem; }
  h2 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; color: #4a5368; }
  .card { background: #fff; border: 1px solid #dde1e8; border-radius: .6rem; padding: .9rem 1rem; margin: .6rem 0; }
  .what { font-weight: 600; word-break: break-all; }
  .meta { color: #5b6478; font-size: .9rem; margin: .3rem 0 .6rem; line-height: 1.5; }
  .row { display: flex; gap: .5rem; flex-wrap: wrap; align-items: center; }
  input[type=text] { flex: 1 1 12rem; padding: .55rem; border: 1px solid #c4cad6; border-radius: .4rem; font-size: 1rem; }
  button { padding: .55rem 1.1rem; border: 0; border-radius: .4rem; font-size: 1rem; cursor: pointer; }
  button.approve { background: #1f8a4c; color: #fff; }
  button.reject { background: #c0392b; color: #fff; }
  button.retry { background: #2d5fa8; color: #fff; }
  .reason { font-family: ui-monospace, monospace; font-size: .85rem; white-space: pre-wrap; word-break: break-word; color: #7a2e22; }
  button:disabled { opacity: .5; cursor: default; }
  .outcome { font-size: .95rem; }
  .RESOLVED { color: #1f8a4c; } .REJECTED, .REJECTED_CANCELED, .REJECTED_TIMEDOUT { color: #c0392b; }
  .empty { color: #5b6478; font-style: italic; }
  #status { min-height: 1.2rem; color: #5b6478; font-size: .9rem; }
</style>
</head>
<body>
<h1>Waiting for a decision</h1>
<form id="login" hidden class="row card"><input type="password" id="token" placeholder="Approval token" aria-label="token">
<button class="approve" type="submit">Sign in</button></form>
<div id="status"></div>
<div id="pending"><p class="empty">Loading…</p></div>
<h2>Recent outcomes</h2>
<div id="recent"></div>
<section id="operator-section" hidden>
<h2>Needs an operator</h2>
<div id="operator"></div>
</section>
<script>
"use strict";
// A pending task counts as waiting for a worker after this long (?waitingAfter=SECONDS; 30 s).
const waitingAfter = 1000 * Number(new URLSearchParams(location.search).get("waitingAfter") || 30);
const fmt = (ms) => ms ? new Date(ms).toLocaleString() : "";
const text = (s) => { const d = document.createElement("span"); d.textContent = s; return d.innerHTML; };
function decode(value) {
  if (!value || !value.data) return "";
  try { return JSON.stringify(JSON.parse(atob(value.data))); } catch (e) { return ""; }
}
const auth = () => { const t = sessionStorage.getItem("warren-token"); return t ? { authorization: "Bearer " + t } : {}; };
document.getElementById("login").onsubmit = (e) => {
  e.preventDefault();
  sessionStorage.setItem("warren-token", document.getElementById("token").value.trim());
  document.getElementById("login").hidden = true;
  refresh();
};
async function search(state) {
  const r = await fetch("/promises?state=" + state + "&tags%5Bhuman%5D=true&limit=100", { headers: auth() });
  if (r.status === 401) { document.getElementById("login").hidden = false; throw new Error("Sign in with an approval token."); }
  if (!r.ok) throw new Error("search failed: " + r.status);
  return (await r.json()).promises;
}
async function decide(id, approve, comment, buttons) {
  buttons.forEach(b => b.disabled = true);
  const value = { headers: comment ? { comment } : {}, data: btoa(JSON.stringify(approve ? "approved" : "rejected")) };
  const r = await fetch("/promises/" + encodeURIComponent(id), {
    method: "PATCH",
    headers: Object.assign({ "content-type": "application/json", "idempotency-key": "ui:" + id }, auth()),
    body: JSON.stringify({ state: approve ? "RESOLVED" : "REJECTED", value })
  });
  const body = await r.json();
  document.getElementById("status").textContent = r.ok
    ? (approve ? "Approved " : "Rejected ") + id
    : "Could not settle " + id + ": " + (body.error ? body.error.message : r.status);
  await refresh();
}
async function operatorDecision(root, action, reason, buttons) {
  buttons.forEach(b => b.disabled = true);
  const r = await fetch("/workflows/" + encodeURIComponent(root) + "/" + action, {
    method: "POST",
    headers: Object.assign({ "content-type": "application/json" }, auth()),
    body: JSON.stringify(action === "fail" ? { reason: reason || "failed from the approval page" } : {})
  });
  const body = await r.json();
  document.getElementById("status").textContent = r.ok
    ? (action === "retry" ? "Retried " : "Failed ") + root
    : "Could not " + action + " " + root + ": " + (body.error ? body.error.message : r.status);
  await refresh();
}
function blockedCard(t) {
  const root = t.id.split(".")[0];
  const div = document.createElement("div");
  div.className = "card";
  div.dataset.task = t.id;
  div.innerHTML =
    '<div class="what">Blocked: task ' + text(t.id) + '</div>' +
    '<div class="meta">workflow <b>' + text(root) + '</b> · group ' + text(t.group) +
    (t.code ? ' · code ' + text(t.code.function + " v" + t.code.version) : '') + ' · since ' + text(fmt(t.updatedOn)) + '</div>' +
    '<div class="reason">' + text(t.blocked || "") + '</div>' +
    '<div class="row" style="margin-top:.6rem"><input type="text" placeholder="Why fail it (optional)" aria-label="reason">' +
    '<button class="retry">Retry</button><button class="reject">Fail</button></div>';
  const input = div.querySelector("input");
  const buttons = [div.querySelector(".retry"), div.querySelector(".reject")];
  buttons[0].onclick = () => operatorDecision(root, "retry", "", buttons);
  buttons[1].onclick = () => operatorDecision(root, "fail", input.value.trim(), buttons);
  return div;
}
function waitingCard(t) {
  const div = document.createElement("div");
  div.className = "card";
  div.dataset.task = t.id;
  div.innerHTML =
    '<div class="what">Waiting for a worker: task ' + text(t.id) + '</div>' +
    '<div class="meta">' + (t.code
      ? 'in ' + text(t.code.queue) + ', for a worker that serves ' + text(t.code.function + " v" + t.code.version)
      : 'for a worker of group ' + text(t.group)) + ' · since ' + text(fmt(t.updatedOn)) + '</div>';
  return div;
}
async function tasks(state, limit) {
  const r = await fetch("/tasks?state=" + state + "&limit=" + limit, { headers: auth() });
  if (r.status === 401 || r.status === 403) return null;  // not an operator: no such section
  if (!r.ok) throw new Error("listing tasks failed: " + r.status);
  return (await r.json()).tasks;
}
async function operator() {
  const blocked = await tasks("blocked", 100);
  const section = document.getElementById("operator-section");
  if (blocked === null) { section.hidden = true; return; }
  const now = Date.now();
  const waiting = ((await tasks("pending", 1000)) || []).filter(t => now - t.updatedOn > waitingAfter);
  const box = document.getElementById("operator");
  const ids = blocked.map(t => t.id + ":" + t.version).concat(waiting.map(t => t.id)).join(" ");
  if (box.dataset.ids !== ids) {
    box.dataset.ids = ids;
    box.replaceChildren(...blocked.map(blockedCard), ...waiting.map(waitingCard));
    if (!blocked.length && !waiting.length) box.innerHTML = '<p class="empty">Nothing is blocked; no task waits for a worker.</p>';
  }
  section.hidden = false;
}
function card(p) {
  const tags = p.tags || {};
  const div = document.createElement("div");
  div.className = "card";
  div.dataset.id = p.id;
  div.innerHTML =
    '<div class="what">' + text(tags.title || tags.description || p.id) + '</div>' +
    '<div class="meta">workflow <b>' + text(tags["warren:workflow"] || p.id.split(".")[0]) + '</b> · promise ' + text(p.id) +
    '<br>waiting since ' + text(fmt(p.createdOn)) + ' · deadline ' + text(fmt(p.timeout)) + '</div>' +
    '<div class="row"><input type="text" placeholder="Comment (optional)" aria-label="comment">' +
    '<button class="approve">Approve</button><button class="reject">Reject</button></div>';
  const input = div.querySelector("input");
  const buttons = [div.querySelector(".approve"), div.querySelector(".reject")];
  buttons[0].onclick = () => decide(p.id, true, input.value.trim(), buttons);
  buttons[1].onclick = () => decide(p.id, false, input.value.trim(), buttons);
  return div;
}
async function refresh() {
  try {
    const pending = await search("pending");
    const box = document.getElementById("pending");
    // Rebuild the cards only when the list changed, so that a comment being typed stays.
    const ids = pending.map(p => p.id).join(" ");
    if (box.dataset.ids !== ids) {
      box.dataset.ids = ids;
      box.replaceChildren(...pending.map(card));
      if (!pending.length) box.innerHTML = '<p class="empty">Nothing is waiting for a decision.</p>';
    }
    const settled = (await search("resolved")).concat(await search("rejected"))
      .sort((a, b) => (b.completedOn || 0) - (a.completedOn || 0)).slice(0, 20);
    document.getElementById("recent").innerHTML = settled.map(p =>
      '<div class="card outcome"><span class="' + p.state + '">' + text(p.state) + '</span> · ' + text(p.id) +
      ' ' + text(decode(p.value)) + (p.value.headers && p.value.headers.comment ? ' · “' + text(p.value.headers.comment) + '”' : '') +
      ' · ' + text(fmt(p.completedOn)) + '</div>').join("") || '<p class="empty">None yet.</p>';
    await operator();
  } catch (e) {
    document.getElementById("status").textContent = String(e);
  }
}
refresh();
setInterval(refresh, 5000);
</script>
</body>
</html>
"""#
}
