// The Tidings admin console: plain DOM and fetch, no framework. Every action is one call to
// the console routes (src/api/console.rs) with the token from /v2/console/authenticate.
"use strict";

const $ = (sel) => document.querySelector(sel);
let token = sessionStorage.getItem("tidings-console-token");
let usersCursor = null;
let inboxUser = null;
let inboxCursor = null;

function say(text, isError = false) {
  const status = $("#status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({}));
  if (res.status === 401) {
    logout();
    throw new Error("Session expired: log in again.");
  }
  if (!res.ok) throw new Error(data.message || `HTTP ${res.status}`);
  return data;
}

function cell(row, text, asCode = false) {
  const td = row.insertCell();
  if (asCode) {
    const code = document.createElement("code");
    code.textContent = text;
    td.append(code);
  } else {
    td.textContent = text;
  }
  return td;
}

function button(label, onClick, danger = false) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (danger) b.className = "danger";
  b.addEventListener("click", onClick);
  return b;
}

function showApp(loggedIn) {
  $("#login-view").hidden = loggedIn;
  $("#app").hidden = !loggedIn;
  $("#logout").hidden = !loggedIn;
}

function logout() {
  token = null;
  sessionStorage.removeItem("tidings-console-token");
  showApp(false);
}

$("#login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const res = await fetch("/v2/console/authenticate", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: $("#login-username").value, password: $("#login-password").value }),
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    alert(data.message || "Login failed");
    return;
  }
  token = data.token;
  sessionStorage.setItem("tidings-console-token", token);
  showApp(true);
  say("Logged in.");
  await Promise.all([searchUsers(false), refreshLive()]);
});

$("#logout").addEventListener("click", logout);

async function searchUsers(more) {
  const filter = $("#search-filter").value;
  const params = new URLSearchParams({ filter, limit: "50" });
  if (more && usersCursor) params.set("cursor", usersCursor);
  try {
    const data = await api("GET", `/v2/console/account?${params}`);
    const body = $("#users tbody");
    if (!more) body.replaceChildren();
    for (const u of data.users) {
      const row = body.insertRow();
      cell(row, u.username);
      cell(row, u.id, true);
      cell(row, u.online ? "yes" : "no");
      cell(row, u.banned ? "yes" : "no");
      const actions = row.insertCell();
      actions.append(
        button(`Inbox of ${u.username}`, () => openInbox(u.id, false)),
        " ",
        button(`Send to ${u.username}`, () => {
          document.querySelector('input[name=target][value=user]').checked = true;
          $("#send-user").value = u.id;
          $("#send-subject").focus();
        }),
      );
    }
    usersCursor = data.next_cursor || null;
    $("#users-more").hidden = !usersCursor;
    say(`${body.rows.length} player(s) listed.`);
  } catch (err) {
    say(err.message, true);
  }
}

$("#search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  searchUsers(false);
});
$("#users-more").addEventListener("click", () => searchUsers(true));

async function openInbox(userId, more) {
  const params = new URLSearchParams({ limit: "100" });
  if (more && inboxCursor) params.set("cursor", inboxCursor);
  try {
    const data = await api("GET", `/v2/console/account/${userId}/inbox?${params}`);
    inboxUser = userId;
    $("#inbox-view").hidden = false;
    $("#inbox-title").textContent = `Inbox of ${data.user.username}`;
    $("#inbox-summary").textContent = `${data.unread} unread, ${data.unseen} unseen.`;
    const body = $("#inbox tbody");
    if (!more) body.replaceChildren();
    for (const n of data.notifications) {
      const row = body.insertRow();
      cell(row, n.create_time);
      cell(row, String(n.code ?? 0));
      cell(row, n.subject);
      cell(row, n.content, true);
      cell(row, n.read ? "read" : "unread");
      cell(row, n.seen ? "seen" : "unseen");
      row.insertCell().append(
        button(`Delete ${n.subject}`, () => deleteNotification(userId, n.id), true),
      );
    }
    inboxCursor = data.cursor || null;
    $("#inbox-more").hidden = !inboxCursor;
  } catch (err) {
    say(err.message, true);
  }
}

$("#inbox-more").addEventListener("click", () => openInbox(inboxUser, true));

async function deleteNotification(userId, id) {
  if (!confirm("Delete this notification?")) return;
  try {
    const data = await api("DELETE", `/v2/console/account/${userId}/notification?ids=${id}`);
    say(`Deleted ${data.deleted} notification(s).`);
    await openInbox(userId, false);
  } catch (err) {
    say(err.message, true);
  }
}

$("#send-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const all = document.querySelector("input[name=target]:checked").value === "all";
  let content;
  try {
    content = JSON.parse($("#send-content").value || "{}");
  } catch {
    say("Content must be a JSON object.", true);
    return;
  }
  const body = {
    subject: $("#send-subject").value,
    content,
    code: Number($("#send-code").value || 0),
    persistent: $("#send-persistent").checked,
  };
  if (all) body.all = true;
  else body.user_id = $("#send-user").value.trim();
  try {
    await api("POST", "/v2/console/notification", body);
    say(all ? "Sent to everyone." : `Sent to ${body.user_id}.`);
    if (!all && inboxUser === body.user_id) await openInbox(inboxUser, false);
  } catch (err) {
    say(err.message, true);
  }
});

async function refreshLive() {
  try {
    const data = await api("GET", "/v2/console/status");
    const rt = data.runtime;
    const dl = $("#runtime");
    dl.replaceChildren();
    const entry = (term, value) => {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      dl.append(dt, dd);
    };
    entry("Generation", `${rt.generation} (loaded ${rt.loaded_at || "?"})`);
    entry("Modules", rt.modules.join(", ") || "none");
    entry("RPCs", rt.rpcs.join(", ") || "none");
    entry("Reloads", `${rt.reload_attempts} attempted, ${rt.reload_failures} failed`);
    entry("Last reload error", rt.last_error || "none");
    const nodes = $("#nodes tbody");
    nodes.replaceChildren();
    for (const n of data.nodes) {
      const row = nodes.insertRow();
      cell(row, n.name);
      cell(row, new Date(n.started_at / 1000).toISOString());
      cell(row, String(n.sessions));
    }
    const sockets = $("#sockets tbody");
    sockets.replaceChildren();
    for (const s of data.sockets) {
      const row = sockets.insertRow();
      cell(row, s.username);
      cell(row, s.user_id, true);
      cell(row, s.session_id, true);
      cell(row, s.opened_at);
    }
  } catch (err) {
    say(err.message, true);
  }
}

$("#live-refresh").addEventListener("click", refreshLive);

showApp(Boolean(token));
if (token) {
  searchUsers(false);
  refreshLive();
}
