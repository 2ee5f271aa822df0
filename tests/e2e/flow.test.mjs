// The send/receive flow through the Lua runtime, driven by nakama-js 2.8.0 (NAKAMA-SPEC §4.4,
// §4.5, §5, §9, plus Tidings deviations 4-8 in /work/shared/README.md).
//
// Two servers are started for this file:
//   server    --runtime.path tests/e2e/modules  (fixtures: clientrpc.lua, e2e.lua, lib/e2e_util.lua)
//             --runtime.lua_call_timeout_ms 1000 --runtime.lua_memory_limit_bytes 33554432
//   examples  --runtime.path modules            (the designer examples: reward, typing, announce,
//                                                 inbox_cleanup)
//
// What nakama-js does with RPCs (dist/nakama-js.esm.mjs):
//   client.rpc(session, id, obj)  POST /v2/rpc/<id>? with body JSON.stringify(JSON.stringify(obj)),
//                                 i.e. a JSON string literal holding the JSON text; the Lua function
//                                 gets JSON.stringify(obj) as its payload. It resolves
//                                 { id: response.id (undefined over HTTP), payload: JSON.parse(payload) },
//                                 or payload undefined when the server's payload is "" (nil result).
//                                 A non-2xx answer rejects with the fetch Response.
//   client.rpcHttpKey(key, id, obj)  GET /v2/rpc/<id>?payload=<JSON>&http_key=<key>& -- GET has no
//                                 payload on the server (it is "" in Lua); ?payload= only shows up in
//                                 ctx.query_params.payload.
//   socket.rpc(id, payload)       {"cid":"N","rpc":{"id":id,"payload":payload}}; payload must be a
//                                 string. Resolves with the reply's `rpc` object { id, payload } (the
//                                 payload is NOT parsed); rejects with the reply's `error` object
//                                 { code, message }.
// Pushed notifications: socket.onnotification(n) per item of a cid-less
// {"notifications":{"notifications":[...]}} frame, with n.content already JSON.parse'd. The tests
// also listen to the raw frames (socket.adapter._socket) to check frame counts and the exact
// content text.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { randomUUID } from "node:crypto";

import { useServer, makeClient, api, httpError, newDeviceId, newUsername, UUID_RE } from "./server.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FIXTURES = path.resolve(HERE, "modules");
const EXAMPLES = path.resolve(HERE, "../../modules");

const server = useServer([
  "--runtime.path", FIXTURES,
  "--runtime.lua_call_timeout_ms", "1000",
  "--runtime.lua_memory_limit_bytes", "33554432",
]);
const examples = useServer(["--runtime.path", EXAMPLES]);

const HTTP_KEY = "defaulthttpkey";
const NIL_UUID = "00000000-0000-0000-0000-000000000000";
const RFC3339_SECONDS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll `cond` every 10 ms until it is truthy; fail after timeoutMs naming `what`. */
async function until(cond, what, timeoutMs = 3000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await cond();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** A fresh player on `srv`: { client, session, id, username, deviceId } (no auto-refresh). */
async function player(srv = server, prefix = "p") {
  const client = makeClient(srv, { autoRefresh: false });
  const deviceId = newDeviceId();
  const username = newUsername(prefix);
  const session = await client.authenticateDevice(deviceId, true, username);
  return { client, session, id: session.user_id, username, deviceId };
}

/**
 * Open a nakama-js socket for `p`. Returns { socket, items, frames, presence, close() }:
 * items are the notifications handed to socket.onnotification (content parsed), frames the raw
 * cid-less notification envelopes as received (content still a string).
 */
async function online(p, { status = false } = {}) {
  const socket = p.client.createSocket(false, false);
  const conn = { socket, items: [], frames: [], presence: null };
  socket.onnotification = (n) => conn.items.push(n);
  socket.onstatuspresence = (event) => {
    conn.presence = event;
  };
  await socket.connect(p.session, status, 5000);
  socket.adapter._socket.addEventListener("message", (evt) => {
    const msg = JSON.parse(typeof evt.data === "string" ? evt.data : evt.data.toString());
    if (msg.notifications) conn.frames.push(msg);
  });
  // connect() resolves on the WebSocket open event; one ping round trip makes sure the server's
  // session loop runs, i.e. the socket is registered for delivery, before a test sends anything.
  const pong = await socket.send({ ping: {} });
  assert.deepEqual(pong.pong, {});
  conn.close = () => socket.disconnect(false);
  return conn;
}

/** client.rpc as player `p`, for calls that must fail: rejects with the fetch Response. */
const rpcRaw = (p, id, input) => p.client.rpc(p.session, id, input);

/** client.rpc as player `p`, for calls that must succeed: a failure names the RPC and shows its body. */
async function rpc(p, id, input) {
  try {
    return await rpcRaw(p, id, input);
  } catch (err) {
    if (err instanceof Response) {
      throw new Error(`RPC ${id} ${JSON.stringify(input)} failed: HTTP ${err.status} ${await err.text()}`);
    }
    throw err;
  }
}

/** e2e.send: nk.notification_send(user_id, subject, content, code, sender_id, persistent). */
async function send(p, args) {
  const res = await rpc(p, "e2e.send", args);
  assert.equal(res.payload, undefined, "e2e.send returns nothing");
}

/** A raw HTTP call to /v2/rpc/<id>. opts: method, query (without "?"), token, basic, body, headers. */
function rawRpc(srv, id, { method = "POST", query = "", ...opts } = {}) {
  return api(srv, `/v2/rpc/${encodeURIComponent(id)}${query ? "?" + query : ""}`, { method, ...opts });
}

/** All of a player's listed notifications, through nakama-js, following the cursor. */
async function listAll(p) {
  const out = [];
  let cursor;
  for (let page = 0; page < 20; page++) {
    const res = await p.client.listNotifications(p.session, 100, cursor);
    out.push(...res.notifications);
    if (res.notifications.length < 100) return out;
    cursor = res.cacheable_cursor;
  }
  throw new Error("more than 20 pages");
}

/** Checks shared by every pushed notification. */
function assertPushed(n, { subject, content, code, sender = NIL_UUID, persistent }) {
  assert.match(n.id, UUID_RE);
  assert.equal(n.subject, subject);
  assert.deepEqual(n.content, content);
  assert.equal(n.code, code);
  assert.equal(n.sender_id, sender);
  assert.equal(n.persistent, persistent ? true : undefined, "persistent is omitted when false");
  assert.match(n.create_time, RFC3339_SECONDS);
}

// ---------------------------------------------------------------------------------------------
// nakama-js's own suite (packages/nakama-js-test/socket-notification.test.ts, client-rpc.test.ts)
// ---------------------------------------------------------------------------------------------

test("nakama-js: rpc clientrpc.send_notification twice, then list them one page at a time", async () => {
  const p = await player();
  for (let i = 0; i < 2; i++) {
    const res = await rpc(p, "clientrpc.send_notification", { user_id: p.id });
    assert.equal(res.payload, undefined, "the RPC returns nothing");
  }

  // As in the nakama-js test: limit 1 with an empty cursor, then limit 1 with the cursor.
  const first = await p.client.listNotifications(p.session, 1, "");
  assert.equal(first.notifications.length, 1);
  assert.equal(typeof first.cacheable_cursor, "string");
  const second = await p.client.listNotifications(p.session, 1, first.cacheable_cursor);
  assert.equal(second.notifications.length, 1);

  for (const n of [first.notifications[0], second.notifications[0]]) {
    assert.match(n.id, UUID_RE);
    assert.deepEqual(n.content, { reward_coins: 1000 });
    assert.equal(n.subject, "You've unlocked level 100!");
    assert.equal(n.code, 1);
    assert.equal(n.sender_id, p.id, "clientrpc sends from the caller");
    assert.equal(n.persistent, true);
    assert.match(n.create_time, RFC3339_SECONDS);
  }
  assert.notEqual(first.notifications[0].id, second.notifications[0].id);

  // Nothing after the second one; the cursor comes back unchanged.
  const third = await p.client.listNotifications(p.session, 1, second.cacheable_cursor);
  assert.deepEqual(third.notifications, []);
  assert.equal(third.cacheable_cursor, second.cacheable_cursor);
});

test("nakama-js: rpc clientrpc.send_notification, delete everything listed, list is empty", async () => {
  const p = await player();
  await rpc(p, "clientrpc.send_notification", { user_id: p.id });
  const listed = await p.client.listNotifications(p.session, 100, "");
  assert.equal(listed.notifications.length, 1);
  assert.equal(listed.notifications[0].subject, "You've unlocked level 100!");

  assert.equal(await p.client.deleteNotifications(p.session, listed.notifications.map((n) => n.id)), true);
  const after = await p.client.listNotifications(p.session, 1, "");
  assert.deepEqual(after.notifications, []);
});

test("nakama-js: clientrpc.rpc echoes an object, clientrpc.rpc_get over the http key, rpc_error", async () => {
  const p = await player();
  const echoed = await rpc(p, "clientrpc.rpc", { hello: "world" });
  assert.deepEqual(echoed.payload, { hello: "world" });

  const pong = await p.client.rpcHttpKey(HTTP_KEY, "clientrpc.rpc_get");
  assert.deepEqual(pong.payload, { message: "PONG" });

  // error("...") in Lua: HTTP 500, code 13, the "clientrpc.lua:N: " position prefix removed.
  await httpError(rpcRaw(p, "clientrpc.rpc_error", {}), 500, {
    code: 13,
    error: {},
    message: "Some error occured.",
  });
});

// ---------------------------------------------------------------------------------------------
// RPC → nk.notification_send → socket / list
// ---------------------------------------------------------------------------------------------

test("RPC over REST sends persistent and non-persistent notifications to the caller's socket", async () => {
  const a = await player();
  const b = await player();
  const conn = await online(a);
  try {
    await send(a, { user_id: a.id, subject: "persisted", content: { b: 1, a: "x", h: "<&>", f: 1.5 }, code: 5, persistent: true });
    await send(a, { user_id: a.id, subject: "pushed only", content: { n: 2 }, code: 6 });
    await send(a, { user_id: a.id, subject: "from b", content: {}, code: 7, sender_id: b.id, persistent: false });
    await until(() => conn.items.length >= 3, "3 pushed notifications");
    await sleep(200);
    assert.equal(conn.items.length, 3, "nothing else was pushed");

    const [p, np, fromB] = conn.items;
    assertPushed(p, { subject: "persisted", content: { a: "x", b: 1, f: 1.5, h: "<&>" }, code: 5, persistent: true });
    assertPushed(np, { subject: "pushed only", content: { n: 2 }, code: 6, persistent: false });
    assertPushed(fromB, { subject: "from b", content: {}, code: 7, sender: b.id, persistent: false });
    assert.equal(new Set(conn.items.map((n) => n.id)).size, 3, "ids are distinct");

    // One cid-less frame per send call; pushed content is Go's compact JSON (sorted keys, <>& escaped).
    assert.equal(conn.frames.length, 3);
    for (const frame of conn.frames) {
      assert.deepEqual(Object.keys(frame), ["notifications"], "no cid on a push");
      assert.equal(frame.notifications.notifications.length, 1);
    }
    assert.equal(conn.frames[0].notifications.notifications[0].content, '{"a":"x","b":1,"f":1.5,"h":"\\u003c\\u0026\\u003e"}');
    assert.equal(conn.frames[1].notifications.notifications[0].content, '{"n":2}');
    assert.equal(conn.frames[2].notifications.notifications[0].content, "{}");
    assert.equal("persistent" in conn.frames[1].notifications.notifications[0], false);

    // Only the persistent one is listed; the list omits a system sender (nil UUID).
    const listed = await listAll(a);
    assert.equal(listed.length, 1);
    const [l] = listed;
    assert.equal(l.id, p.id);
    assert.equal(l.subject, "persisted");
    assert.deepEqual(l.content, { a: "x", b: 1, f: 1.5, h: "<&>" });
    assert.equal(l.code, 5);
    assert.equal(l.sender_id, undefined);
    assert.equal(l.persistent, true);
    assert.match(l.create_time, RFC3339_SECONDS);
  } finally {
    conn.close();
  }
});

test("array content is stored and pushed as null (NAKAMA-SPEC §5.2)", async () => {
  const a = await player();
  const conn = await online(a);
  try {
    await send(a, { user_id: a.id, subject: "array", content: [1, 2, 3], code: 8, persistent: true });
    await until(() => conn.items.length >= 1, "the push");
    assert.equal(conn.frames[0].notifications.notifications[0].content, "null");
    assert.equal(conn.items[0].content, null);
    const [l] = await listAll(a);
    assert.equal(l.subject, "array");
    assert.equal(l.content, null);
  } finally {
    conn.close();
  }
});

test("offline: persistent sends are listed later, non-persistent ones are dropped", async () => {
  const a = await player();
  const sender = await player();
  await send(sender, { user_id: a.id, subject: "while offline 1", content: { i: 1 }, code: 1, persistent: true });
  await send(sender, { user_id: a.id, subject: "never stored", content: { i: 2 }, code: 2, persistent: false });
  await send(sender, { user_id: a.id, subject: "while offline 2", content: { i: 3 }, code: 3, persistent: true });

  const listed = await listAll(a);
  assert.deepEqual(listed.map((n) => n.subject), ["while offline 1", "while offline 2"]);
  assert.deepEqual(listed.map((n) => n.content), [{ i: 1 }, { i: 3 }]);

  // Connecting afterwards replays nothing.
  const conn = await online(a);
  try {
    await sleep(300);
    assert.deepEqual(conn.items, []);
  } finally {
    conn.close();
  }

  // A non-persistent send to a user id that does not exist succeeds and does nothing.
  await send(sender, { user_id: randomUUID(), subject: "nobody", content: {}, code: 1 });
});

test("paging at limit 1 through 3 notifications; a cached cursor later yields only newer ones", async () => {
  const a = await player();
  for (const i of [1, 2, 3]) {
    await send(a, { user_id: a.id, subject: `n${i}`, content: { i }, code: i, persistent: true });
  }
  const seen = [];
  let cursor;
  for (const i of [1, 2, 3]) {
    const page = await a.client.listNotifications(a.session, 1, cursor);
    assert.equal(page.notifications.length, 1, `page ${i}`);
    assert.equal(page.notifications[0].subject, `n${i}`);
    assert.deepEqual(page.notifications[0].content, { i });
    assert.equal(typeof page.cacheable_cursor, "string");
    assert.notEqual(page.cacheable_cursor, cursor, "each page moves the cursor");
    seen.push(page.notifications[0].id);
    cursor = page.cacheable_cursor;
  }
  assert.equal(new Set(seen).size, 3);

  // The end: an empty page echoes the cursor, which the client caches.
  const end = await a.client.listNotifications(a.session, 1, cursor);
  assert.deepEqual(end.notifications, []);
  assert.equal(end.cacheable_cursor, cursor);

  await send(a, { user_id: a.id, subject: "n4", content: { i: 4 }, code: 4, persistent: true });
  const later = await a.client.listNotifications(a.session, 100, cursor);
  assert.deepEqual(later.notifications.map((n) => n.subject), ["n4"]);
  assert.notEqual(later.cacheable_cursor, cursor);
});

test("deleteNotifications removes listed notifications; then the list is empty", async () => {
  const a = await player();
  for (const i of [1, 2, 3]) {
    await send(a, { user_id: a.id, subject: `d${i}`, content: {}, code: 1, persistent: true });
  }
  const listed = await listAll(a);
  assert.deepEqual(listed.map((n) => n.subject), ["d1", "d2", "d3"]);

  assert.equal(await a.client.deleteNotifications(a.session, [listed[1].id]), true);
  assert.deepEqual((await listAll(a)).map((n) => n.subject), ["d1", "d3"]);

  // Another player cannot delete a's notifications.
  const b = await player();
  assert.equal(await b.client.deleteNotifications(b.session, [listed[0].id]), true);
  assert.deepEqual((await listAll(a)).map((n) => n.subject), ["d1", "d3"]);

  assert.equal(await a.client.deleteNotifications(a.session, [listed[0].id, listed[2].id]), true);
  const empty = await a.client.listNotifications(a.session, 100);
  assert.deepEqual(empty.notifications, []);
});

test("notifications_send to two users: each socket gets only its own, one frame per user", async () => {
  const a = await player();
  const b = await player();
  const connA = await online(a);
  const connB = await online(b);
  try {
    const res = await rpc(a, "e2e.send_many", {
      notifications: [
        { user_id: a.id, subject: "for a 1", content: { i: 1 }, code: 11, persistent: true },
        { user_id: b.id, subject: "for b", content: { i: 2 }, code: 12, persistent: false, sender_id: a.id },
        { user_id: a.id, subject: "for a 2", content: { i: 3 }, code: 13, persistent: false },
      ],
    });
    assert.equal(res.payload, undefined);
    await until(() => connA.items.length >= 2 && connB.items.length >= 1, "a: 2 and b: 1 notifications");
    await sleep(200);

    assert.deepEqual(connA.items.map((n) => n.subject), ["for a 1", "for a 2"]);
    assertPushed(connA.items[0], { subject: "for a 1", content: { i: 1 }, code: 11, persistent: true });
    assertPushed(connA.items[1], { subject: "for a 2", content: { i: 3 }, code: 13, persistent: false });
    assert.deepEqual(connB.items.map((n) => n.subject), ["for b"]);
    assertPushed(connB.items[0], { subject: "for b", content: { i: 2 }, code: 12, sender: a.id, persistent: false });

    assert.equal(connA.frames.length, 1, "a's two notifications arrive in one frame");
    assert.equal(connA.frames[0].notifications.notifications.length, 2);
    assert.equal(connB.frames.length, 1);

    assert.deepEqual((await listAll(a)).map((n) => n.subject), ["for a 1"]);
    assert.deepEqual(await listAll(b), []);
  } finally {
    connA.close();
    connB.close();
  }
});

test("two sockets of one user both receive every notification", async () => {
  const a = await player();
  const first = await online(a);
  const second = await online(a);
  try {
    await send(a, { user_id: a.id, subject: "both 1", content: { k: 1 }, code: 31, persistent: true });
    await send(a, { user_id: a.id, subject: "both 2", content: { k: 2 }, code: 32 });
    await until(() => first.items.length >= 2 && second.items.length >= 2, "2 notifications on each socket");
    for (const conn of [first, second]) {
      assert.deepEqual(conn.items.map((n) => n.subject), ["both 1", "both 2"]);
      assert.deepEqual(conn.items.map((n) => n.content), [{ k: 1 }, { k: 2 }]);
    }
    assert.deepEqual(first.items.map((n) => n.id), second.items.map((n) => n.id));
  } finally {
    first.close();
    second.close();
  }
});

// ---------------------------------------------------------------------------------------------
// RPC semantics: socket, HTTP, payloads, errors, context
// ---------------------------------------------------------------------------------------------

test("RPC over the socket: payload round trip, id case, nil result, unknown id, errors", async () => {
  const a = await player();
  const conn = await online(a);
  const { socket } = conn;
  try {
    assert.deepEqual(await socket.rpc("e2e.echo", "hi"), { id: "e2e.echo", payload: "hi" });
    // The id matches case-insensitively and comes back as the client wrote it.
    assert.deepEqual(await socket.rpc("E2E.Echo", "x"), { id: "E2E.Echo", payload: "x" });
    // A JSON text is passed through as text.
    assert.deepEqual(await socket.rpc("e2e.echo", '{"a":1}'), { id: "e2e.echo", payload: '{"a":1}' });

    // A nil result: the reply has no payload. This one also pushes to the same socket.
    const sent = await socket.rpc(
      "e2e.send",
      JSON.stringify({ user_id: a.id, subject: "via socket rpc", content: { s: 1 }, code: 41 }),
    );
    assert.deepEqual(sent, { id: "e2e.send" });
    await until(() => conn.items.length >= 1, "the push triggered by the socket RPC");
    assertPushed(conn.items[0], { subject: "via socket rpc", content: { s: 1 }, code: 41, persistent: false });

    await assert.rejects(socket.rpc("e2e.no_such_rpc", "x"), (err) => {
      assert.deepEqual(err, { code: 6, message: "RPC function not found" });
      return true;
    });
    await assert.rejects(socket.rpc("", "x"), (err) => {
      assert.deepEqual(err, { code: 3, message: "RPC ID must be set" });
      return true;
    });
    // Function errors are code 7 (RUNTIME_FUNCTION_EXCEPTION) whatever code the script gave.
    await assert.rejects(socket.rpc("e2e.fail", JSON.stringify({ message: "custom message", code: 3 })), (err) => {
      assert.deepEqual(err, { code: 7, message: "custom message" });
      return true;
    });
    await assert.rejects(socket.rpc("e2e.fail", JSON.stringify({ plain: "boom plain" })), (err) => {
      assert.deepEqual(err, { code: 7, message: "boom plain" });
      return true;
    });

    // The socket survives errors.
    assert.deepEqual(await socket.rpc("e2e.echo", "still here"), { id: "e2e.echo", payload: "still here" });
  } finally {
    conn.close();
  }
});

test("client.rpc with an object payload round-trips through JSON (double-encoded body)", async () => {
  const a = await player();
  const input = { s: "text", n: 3, f: 1.25, t: true, nested: { list: [1, "two", { three: 3 }] }, u: "é✓" };
  const res = await rpc(a, "e2e.echo", input);
  assert.deepEqual(res.payload, input);
  assert.equal(res.id, undefined, "the HTTP answer has no id");

  // What is on the wire: the body is a JSON string literal; Lua sees the inner text verbatim and
  // the answer wraps the returned text the same way.
  const text = JSON.stringify(input);
  const raw = await rawRpc(server, "e2e.echo", { token: a.session.token, body: JSON.stringify(text) });
  assert.equal(raw.status, 200, raw.text);
  assert.deepEqual(raw.json, { payload: text });
  assert.match(raw.headers.get("content-type") ?? "", /^application\/json/);
});

test("error({msg, code}) maps to an HTTP status and an RPC error body", async () => {
  const a = await player();
  const fail = (args) => rpcRaw(a, "e2e.fail", args);
  await httpError(fail({ message: "custom message", code: 3 }), 400, { code: 3, error: {}, message: "custom message" });
  await httpError(fail({ message: "go away", code: 7 }), 403, { code: 7, error: {}, message: "go away" });
  await httpError(fail({ message: "no such thing", code: 5 }), 404, { code: 5, error: {}, message: "no such thing" });
  await httpError(fail({ message: "slow down", code: 8 }), 429, { code: 8, error: {}, message: "slow down" });
  await httpError(fail({ message: "who are you", code: 16 }), 401, { code: 16, error: {}, message: "who are you" });
  // A code outside 1..16 becomes 13.
  await httpError(fail({ message: "odd code", code: 99 }), 500, { code: 13, error: {}, message: "odd code" });
  await httpError(fail({ message: "zero code", code: 0 }), 500, { code: 13, error: {}, message: "zero code" });
  // error("...") is code 13; the "e2e.lua:N: " prefix is removed (same file as the RPC function).
  await httpError(fail({ plain: "boom plain" }), 500, { code: 13, error: {}, message: "boom plain" });

  // The body's keys, in order, as Nakama writes them.
  const raw = await rawRpc(server, "e2e.fail", {
    token: a.session.token,
    body: JSON.stringify(JSON.stringify({ message: "custom message", code: 3 })),
  });
  assert.equal(raw.status, 400);
  assert.equal(raw.text, '{"code":3,"error":{},"message":"custom message"}');
});

test("raw HTTP RPC: auth, http key, unknown id, body rules, nil and invalid results", async () => {
  const a = await player();
  const echo = (opts) => rawRpc(server, "e2e.echo", opts);

  // Nakama's own end-to-end check (TestRuntimeRegisterRPCWithPayloadEndToEnd).
  const hello = await echo({ query: `http_key=${HTTP_KEY}`, body: '"Hello World"' });
  assert.equal(hello.status, 200, hello.text);
  assert.deepEqual(hello.json, { payload: "Hello World" });

  const basic = await echo({ basic: HTTP_KEY, body: '"via basic"' });
  assert.equal(basic.status, 200, basic.text);
  assert.deepEqual(basic.json, { payload: "via basic" });

  const bearer = await echo({ token: a.session.token, body: '"via bearer"' });
  assert.deepEqual(bearer.json, { payload: "via bearer" });

  const upper = await rawRpc(server, "E2E.ECHO", { token: a.session.token, body: '"case"' });
  assert.equal(upper.status, 200, upper.text);
  assert.deepEqual(upper.json, { payload: "case" });

  const canned = (msg, code) => ({ error: msg, message: msg, code });
  const none = await echo({ body: '"x"' });
  assert.equal(none.status, 401);
  assert.deepEqual(none.json, canned("Auth token or HTTP key required", 16));
  const badKey = await echo({ query: "http_key=wrong", body: '"x"' });
  assert.equal(badKey.status, 401);
  assert.deepEqual(badKey.json, canned("HTTP key invalid", 16));
  const badBasic = await echo({ basic: "wrong", body: '"x"' });
  assert.equal(badBasic.status, 401);
  assert.deepEqual(badBasic.json, canned("HTTP key invalid", 16));
  const badToken = await echo({ headers: { Authorization: "Bearer not.a.jwt" }, body: '"x"' });
  assert.equal(badToken.status, 401);
  assert.deepEqual(badToken.json, canned("Auth token invalid", 16));

  const unknown = await rawRpc(server, "e2e.no_such_rpc", { token: a.session.token, body: '"x"' });
  assert.equal(unknown.status, 404);
  assert.deepEqual(unknown.json, canned("RPC function not found", 5));

  // The body must be a JSON string; anything else gets one fixed message.
  const object = await echo({ token: a.session.token, body: '{"a":1}' });
  assert.equal(object.status, 400);
  assert.deepEqual(object.json, canned("json: cannot unmarshal object into Go value of type string", 3));

  // No body: the payload is "".
  const empty = await echo({ token: a.session.token });
  assert.equal(empty.status, 200, empty.text);
  assert.deepEqual(empty.json, { payload: "" });

  // ?unwrap: the raw body in, the raw result out.
  const unwrapped = await echo({ query: "unwrap=true", token: a.session.token, body: '{"raw":true}' });
  assert.equal(unwrapped.status, 200, unwrapped.text);
  assert.equal(unwrapped.text, '{"raw":true}');

  // A nil result is {"payload":""}.
  const nilResult = await rawRpc(server, "e2e.send", {
    token: a.session.token,
    body: JSON.stringify(JSON.stringify({ user_id: randomUUID(), subject: "x", content: {}, code: 1 })),
  });
  assert.equal(nilResult.status, 200, nilResult.text);
  assert.deepEqual(nilResult.json, { payload: "" });

  const invalid = await rawRpc(server, "e2e.bad_return", { token: a.session.token, body: '""' });
  assert.equal(invalid.status, 500);
  assert.deepEqual(invalid.json, {
    code: 13,
    error: {},
    message: "Runtime function returned invalid data - only allowed one return value of type String/Byte.",
  });
});

test("the context table over HTTP (bearer and http key) and over the socket", async () => {
  const a = await player();

  // HTTP with a session.
  const viaHttp = JSON.parse((await rawRpc(server, "e2e.ctx", {
    token: a.session.token,
    query: "x=1&x=2",
    body: JSON.stringify("hello"),
  })).text).payload;
  const h = JSON.parse(viaHttp);
  assert.equal(h.user_id, a.id);
  assert.equal(h.username, a.username);
  assert.equal(h.execution_mode, "rpc");
  assert.equal(h.node, "tidings");
  assert.equal(h.get_context_node, "tidings");
  assert.deepEqual(h.env, {});
  assert.deepEqual(h.query_params, { x: ["1", "2"] });
  assert.equal(h.authorization, `Bearer ${a.session.token}`);
  assert.equal(h.authorization_canonical, `Bearer ${a.session.token}`, 'ctx.headers["Authorization"] (Go canonical names)');
  assert.ok(h.header_count >= 2, `headers: ${h.header_count}`);
  assert.equal(h.user_session_exp, a.session.expires_at);
  assert.equal(h.payload, "hello");
  assert.equal(h.session_id, undefined);
  assert.equal(h.lang, undefined);
  for (const key of ["env", "execution_mode", "headers", "node", "query_params", "user_id", "user_session_exp", "username"]) {
    assert.ok(h.keys.includes(key), `ctx.${key} over HTTP (keys: ${h.keys})`);
  }
  for (const key of ["session_id", "lang", "vars"]) {
    assert.ok(!h.keys.includes(key), `no ctx.${key} over HTTP`);
  }

  // nakama-js client.rpc gives the same through its double encoding.
  const viaClient = (await rpc(a, "e2e.ctx", { k: "v" })).payload;
  assert.equal(viaClient.user_id, a.id);
  assert.equal(viaClient.payload, '{"k":"v"}');
  assert.deepEqual(viaClient.query_params, {});

  // HTTP with the http key: no user; ?http_key is not in query_params; GET has no payload.
  const viaKey = (await a.client.rpcHttpKey(HTTP_KEY, "e2e.ctx", { q: 1 })).payload;
  assert.equal(viaKey.user_id, undefined);
  assert.equal(viaKey.username, undefined);
  assert.equal(viaKey.execution_mode, "rpc");
  assert.equal(viaKey.payload, "");
  assert.deepEqual(viaKey.query_params, { payload: ['{"q":1}'] });
  assert.equal(viaKey.authorization, undefined);
  for (const key of ["user_id", "username", "user_session_exp", "session_id"]) {
    assert.ok(!viaKey.keys.includes(key), `no ctx.${key} with the http key`);
  }

  // The socket: session_id (the same one the status presence shows) and lang; empty headers.
  const conn = await online(a, { status: true });
  try {
    await until(() => conn.presence, "the status presence event");
    const reply = await conn.socket.rpc("e2e.ctx", "from socket");
    assert.equal(reply.id, "e2e.ctx");
    const s = JSON.parse(reply.payload);
    assert.equal(s.user_id, a.id);
    assert.equal(s.username, a.username);
    assert.equal(s.execution_mode, "rpc");
    assert.match(s.session_id, UUID_RE);
    assert.equal(s.session_id, conn.presence.joins[0].session_id);
    assert.equal(s.lang, "en");
    assert.equal(s.header_count, 0);
    assert.deepEqual(s.query_params, {});
    assert.equal(s.payload, "from socket");
  } finally {
    conn.close();
  }
});

// ---------------------------------------------------------------------------------------------
// The nk notification functions as Lua sees them
// ---------------------------------------------------------------------------------------------

test("nk.notifications_list: camelCase items, JSON-text content, nil cursor on the last page", async () => {
  const a = await player();
  const b = await player();
  await send(a, { user_id: a.id, subject: "s1", content: { i: 1 }, code: 1, persistent: true });
  await send(a, { user_id: a.id, subject: "s2", content: { i: 2 }, code: 2, persistent: true, sender_id: b.id });
  await send(a, { user_id: a.id, subject: "s3", content: { i: 3 }, code: 3, persistent: true });
  const nowSec = Date.now() / 1000;

  const page1 = (await rpc(a, "e2e.list", { limit: 2 })).payload;
  assert.equal(page1.count, 2);
  assert.deepEqual(page1.items.map((n) => n.subject), ["s1", "s2"]);
  assert.equal(typeof page1.cursor, "string", "more rows exist, so a cursor");
  const [first, second] = page1.items;
  assert.deepEqual(Object.keys(first).sort(), ["code", "content", "createTime", "id", "persistent", "senderId", "subject"]);
  assert.match(first.id, UUID_RE);
  assert.equal(first.content, '{"i":1}', "content is the JSON text (deviation 8: as sent)");
  assert.equal(first.code, 1);
  assert.equal(first.senderId, "", "a system sender is an empty string here");
  assert.equal(second.senderId, b.id);
  assert.equal(first.persistent, true);
  assert.equal(typeof first.createTime, "number");
  assert.ok(Math.abs(first.createTime - nowSec) < 60, `createTime ${first.createTime} is unix seconds`);

  const page2 = (await rpc(a, "e2e.list", { limit: 2, cursor: page1.cursor })).payload;
  assert.equal(page2.count, 1);
  assert.equal(page2.items[0].subject, "s3");
  assert.equal(page2.cursor, undefined, "no cursor when there is no next page");

  // The Lua cursor is the same kind as REST's.
  const rest = await a.client.listNotifications(a.session, 100, page1.cursor);
  assert.deepEqual(rest.notifications.map((n) => n.subject), ["s3"]);

  const all = (await rpc(a, "e2e.list", {})).payload; // default limit 100
  assert.equal(all.count, 3);
  assert.equal(all.cursor, undefined);

  const nobody = await player();
  const empty = (await rpc(nobody, "e2e.list", {})).payload;
  assert.equal(empty.count, 0);
  assert.equal(empty.cursor, undefined);
});

test("nk.notifications_get_id / update / delete / delete_id", async () => {
  const a = await player();
  const b = await player();
  await send(a, { user_id: a.id, subject: "g1", content: { i: 1 }, code: 1, persistent: true });
  await send(a, { user_id: a.id, subject: "g2", content: { i: 2 }, code: 2, persistent: true, sender_id: b.id });
  await send(a, { user_id: a.id, subject: "g3", content: { i: 3 }, code: 3, persistent: true });
  const [n1, n2, n3] = await listAll(a);
  assert.deepEqual([n1.subject, n2.subject, n3.subject], ["g1", "g2", "g3"]);

  // get_id: snake_case, content as a table, sender_id only when set, and no id key.
  const got = (await rpc(a, "e2e.get", { ids: [n1.id, n2.id], user_id: a.id })).payload;
  assert.equal(got.count, 2);
  const bySubject = Object.fromEntries(got.items.map((n) => [n.subject, n]));
  assert.deepEqual(Object.keys(bySubject.g1).sort(), ["code", "content", "create_time", "persistent", "subject", "user_id"]);
  assert.deepEqual(bySubject.g1.content, { i: 1 });
  assert.equal(bySubject.g1.code, 1);
  assert.equal(bySubject.g1.user_id, a.id);
  assert.equal(bySubject.g1.persistent, true);
  assert.equal(typeof bySubject.g1.create_time, "number");
  assert.equal(bySubject.g2.sender_id, b.id);
  // Scoped to another user: nothing. Unscoped: found. Empty list: empty result (deviation 4).
  assert.equal((await rpc(a, "e2e.get", { ids: [n1.id], user_id: b.id })).payload.count, 0);
  assert.equal((await rpc(a, "e2e.get", { ids: [n1.id] })).payload.count, 1);
  assert.equal((await rpc(a, "e2e.get", { ids: [] })).payload.count, 0);
  assert.equal((await rpc(a, "e2e.get", { ids: [randomUUID()] })).payload.count, 0);

  // update: subject/content/sender change in place; nothing else moves.
  await rpc(a, "e2e.update", { updates: [{ id: n1.id, subject: "g1 updated", content: { i: 10 } }, { id: n3.id, sender: b.id }] });
  const updated = await listAll(a);
  assert.deepEqual(updated.map((n) => n.subject), ["g1 updated", "g2", "g3"]);
  assert.deepEqual(updated[0].content, { i: 10 });
  assert.equal(updated[0].id, n1.id);
  assert.equal(updated[2].sender_id, b.id);
  const again = (await rpc(a, "e2e.get", { ids: [n1.id] })).payload.items[0];
  assert.equal(again.subject, "g1 updated");
  assert.deepEqual(again.content, { i: 10 });

  // delete: scoped by the item's user_id.
  await rpc(a, "e2e.delete", { items: [{ user_id: b.id, notification_id: n1.id }] });
  assert.equal((await listAll(a)).length, 3, "b's scope does not reach a's row");
  await rpc(a, "e2e.delete", { items: [{ user_id: a.id, notification_id: n1.id }] });
  assert.deepEqual((await listAll(a)).map((n) => n.subject), ["g2", "g3"]);

  // delete_id: scoped when a user id is given, global otherwise; [] is a no-op (deviation 4).
  await rpc(a, "e2e.delete_id", { ids: [n2.id], user_id: b.id });
  assert.deepEqual((await listAll(a)).map((n) => n.subject), ["g2", "g3"]);
  await rpc(a, "e2e.delete_id", { ids: [] });
  await rpc(a, "e2e.delete_id", { ids: [n2.id] });
  assert.deepEqual((await listAll(a)).map((n) => n.subject), ["g3"]);
});

test("nk notification functions raise NAKAMA-SPEC §5.1's exact errors (HTTP 500, code 13)", async () => {
  const a = await player();
  const ok = { user_id: a.id, subject: "s", content: {}, code: 1 };
  const item = { user_id: a.id, subject: "s", content: {}, code: 1 };
  const without = (obj, key) => Object.fromEntries(Object.entries(obj).filter(([k]) => k !== key));
  const ns = (m) => `bad argument #1 to notifications_send (${m})`;
  const id = randomUUID();

  const cases = [
    // nk.notification_send
    ["e2e.send", { ...ok, user_id: "nope" }, "bad argument #1 to notification_send (expects user_id to be a valid UUID)"],
    ["e2e.send", without(ok, "user_id"), "bad argument #1 to notification_send (string expected, got nil)"],
    ["e2e.send", { ...ok, subject: "" }, "bad argument #2 to notification_send (expects subject to be a non-empty string)"],
    ["e2e.send", without(ok, "content"), "bad argument #3 to notification_send (table expected, got nil)"],
    ["e2e.send", { ...ok, content: "text" }, "bad argument #3 to notification_send (table expected, got string)"],
    ["e2e.send", { ...ok, code: 0 }, "bad argument #4 to notification_send (expects code number to be a positive integer)"],
    ["e2e.send", { ...ok, code: -5 }, "bad argument #4 to notification_send (expects code number to be a positive integer)"],
    ["e2e.send", { ...ok, sender_id: "zz" }, "bad argument #5 to notification_send (expects sender_id to either be not set, empty string or a valid UUID)"],
    ["e2e.send", { ...ok, persistent: "yes" }, "bad argument #6 to notification_send (boolean expected, got string)"],
    // nk.notifications_send
    ["e2e.send_many", {}, "bad argument #1 to notifications_send (table expected, got nil)"],
    ["e2e.send_many", { notifications: ["x"] }, ns("expects a valid set of notifications")],
    ["e2e.send_many", { notifications: [{ ...item, subject: "" }] }, ns("expects subject to be provided and to be non-empty")],
    ["e2e.send_many", { notifications: [without(item, "content")] }, ns("expects content to be provided and be valid JSON")],
    ["e2e.send_many", { notifications: [without(item, "user_id")] }, ns("expects user_id to be provided and be a valid UUID")],
    ["e2e.send_many", { notifications: [without(item, "code")] }, ns("expects code to be provided and be a number above 0")],
    ["e2e.send_many", { notifications: [{ ...item, code: 0 }] }, ns("expects code to number above 0")],
    ["e2e.send_many", { notifications: [{ ...item, code: -1500 }] }, ns("expects code to number above 0")],
    ["e2e.send_many", { notifications: [{ ...item, user_id: "nope" }] }, ns("expects user_id to be a valid UUID")],
    ["e2e.send_many", { notifications: [{ ...item, user_id: 5 }] }, ns("expects user_id to be string")],
    ["e2e.send_many", { notifications: [{ ...item, content: "x" }] }, ns("expects content to be a table")],
    ["e2e.send_many", { notifications: [{ ...item, code: "1" }] }, ns("expects code to be number")],
    ["e2e.send_many", { notifications: [{ ...item, persistent: "yes" }] }, ns("expects persistent to be boolean")],
    ["e2e.send_many", { notifications: [{ ...item, sender_id: "" }] }, ns("expects sender_id to be a valid UUID")],
    ["e2e.send_many", { notifications: [{ ...item, sender_id: 5 }] }, ns("expects sender_id to be string")],
    // nk.notification_send_all
    ["e2e.send_all", { subject: "", content: {}, code: 1 }, "bad argument #1 to notification_send_all (expects subject to be a non-empty string)"],
    ["e2e.send_all", { subject: "s", code: 1 }, "bad argument #2 to notification_send_all (table expected, got nil)"],
    ["e2e.send_all", { subject: "s", content: {}, code: 0 }, "bad argument #3 to notification_send_all (expects code number to be a positive integer)"],
    ["e2e.send_all", { subject: "s", content: {}, code: -1500 }, "bad argument #3 to notification_send_all (expects code number to be a positive integer)"],
    ["e2e.send_all", { subject: "s", content: {}, code: 1, persistent: "x" }, "bad argument #4 to notification_send_all (boolean expected, got string)"],
    // nk.notifications_list
    ["e2e.list", { user_id: "nope" }, "bad argument #1 to notifications_list (expects user_id to be a valid uuid)"],
    ["e2e.list", { limit: 0 }, "bad argument #2 to notifications_list (expects limit to be value between 1 and 1000)"],
    ["e2e.list", { limit: 1001 }, "bad argument #2 to notifications_list (expects limit to be value between 1 and 1000)"],
    ["e2e.list", { cursor: "AAAA" }, "failed to list notifications: rpc error: code = InvalidArgument desc = Malformed cursor was used."],
    // nk.notifications_get_id / delete_id
    ["e2e.get", { ids: ["nope"] }, "bad argument #1 to notifications_get_id (each notification id must be a valid id)"],
    ["e2e.get", { ids: [""] }, "bad argument #1 to notifications_get_id (each notification id must be a string)"],
    ["e2e.get", { ids: { a: id } }, "bad argument #1 to notifications_get_id (invalid user ids list)"],
    ["e2e.delete_id", { ids: ["nope"] }, "bad argument #1 to notifications_delete_id (each notification id must be a valid id)"],
    ["e2e.delete_id", { ids: [5] }, "bad argument #1 to notifications_delete_id (each notification id must be a string)"],
    // nk.notifications_delete
    ["e2e.delete", { items: ["x"] }, "bad argument #1 to notifications_delete (expects a valid set of notifications)"],
    ["e2e.delete", { items: [{ user_id: "nope", notification_id: id }] }, "bad argument #1 to notifications_delete (expects user_id to be a valid UUID)"],
    ["e2e.delete", { items: [{ user_id: 5, notification_id: id }] }, "bad argument #1 to notifications_delete (expects user_id to be string)"],
    ["e2e.delete", { items: [{ user_id: a.id, notification_id: "nope" }] }, "bad argument #1 to notifications_delete (expects notification_id to be a valid UUID)"],
    ["e2e.delete", { items: [{ user_id: a.id, notification_id: 5 }] }, "bad argument #1 to notifications_delete (expects notification_id to be string)"],
    // nk.notifications_update
    ["e2e.update", { updates: ["x"] }, "bad argument #1 to notifications_update (expects a valid set of data)"],
    ["e2e.update", { updates: [{ id: 5 }] }, "bad argument #1 to notifications_update (expects id to be string)"],
    ["e2e.update", { updates: [{ id: "nope" }] }, "bad argument #1 to notifications_update (expects user_id to be a valid ID)"],
    ["e2e.update", { updates: [{ id, content: "x" }] }, "bad argument #1 to notifications_update (expects content to be table)"],
    ["e2e.update", { updates: [{ id, subject: 5 }] }, "bad argument #1 to notifications_update (expects subject to be string)"],
    ["e2e.update", { updates: [{ id, subject: "" }] }, "bad argument #1 to notifications_update (expects subject to be a non-empty string)"],
    ["e2e.update", { updates: [{ id, sender: 5 }] }, "bad argument #1 to notifications_update (expects sender to be string)"],
    ["e2e.update", { updates: [{ id, sender: "" }] }, "bad argument #1 to notifications_update (expects sender to be a non-empty string)"],
  ];
  for (const [rpcId, args, message] of cases) {
    const { body } = await httpError(rpcRaw(a, rpcId, args), 500);
    assert.deepEqual(body, { code: 13, error: {}, message }, `${rpcId} ${JSON.stringify(args)}`);
  }

  // Failures below the argument checks keep their prefix; the rest of the text is the store's.
  const prefixed = [
    ["e2e.send", { ...ok, user_id: randomUUID(), persistent: true }, "failed to send notifications: "],
    ["e2e.send", { ...ok, subject: "x".repeat(256), persistent: true }, "failed to send notifications: "],
    ["e2e.delete_id", {}, "bad argument #1 to notifications_delete_id ("], // deviation 4: nil is an argument error
    ["e2e.get", {}, "bad argument #1 to notifications_get_id ("],
  ];
  for (const [rpcId, args, prefix] of prefixed) {
    const { body } = await httpError(rpcRaw(a, rpcId, args), 500);
    assert.equal(body.code, 13);
    assert.ok(body.message.startsWith(prefix), `${rpcId}: ${body.message}`);
  }

  // What the rules allow: -2000..-1000 in notification_send, "" as its sender, and none of the
  // failed calls above stored anything.
  await send(a, { ...ok, code: -1500 });
  await send(a, { ...ok, sender_id: "" });
  await send(a, { ...ok, code: 1.7, persistent: true, subject: "truncated code" });
  const listed = await listAll(a);
  assert.deepEqual(listed.map((n) => [n.subject, n.code]), [["truncated code", 1]]);
});

// ---------------------------------------------------------------------------------------------
// Helpers, sandbox, modules, limits
// ---------------------------------------------------------------------------------------------

test("generic nk helpers: uuid, time, base64, sha256, json, users, account", async () => {
  const a = await player();
  const before = Date.now();
  const h = (await rpc(a, "e2e.helpers", {})).payload;
  const after = Date.now();
  const { uuid, time, ...rest } = h;
  assert.match(uuid, UUID_RE);
  assert.ok(time >= before - 1000 && time <= after + 1000, `nk.time() ${time} is milliseconds`);
  // One comparison, so a failure shows every helper that differs (a helper that raised shows
  // up as {error: "..."}).
  assert.deepEqual(rest, {
    b64: "aGVsbG8gd29ybGQ=",
    b64_back: "hello world",
    b64_unpadded: "hi", // decoding adds missing padding by default
    sha: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    encoded: '{"a":[1,2,3],"b":1,"f":1.5,"h":"\\u003c\\u0026\\u003e","t":true}',
    encoded_empty: "{}",
    decoded_gone: true, // JSON null removes the key
    decoded_list: 60,
    decoded_obj: "v",
    decoded_n: 1.5,
    logged: "e2e.helpers ran", // logger_* returns its message
    users_count: 1,
    user_id: a.id,
    user_username: a.username,
    by_name_id: a.id,
    // Nakama's account table: the profile at the top level and under `user`, plus devices.
    account_user_id: a.id,
    account_username: a.username,
    account_nested_user_id: a.id,
    account_device: a.deviceId,
  });
});

test("sandbox: no io/debug/native loading, a reduced os; require across modules by dotted path", async () => {
  const a = await player();
  const s = (await rpc(a, "e2e.sandbox", {})).payload;
  assert.equal(s.io, "nil");
  assert.equal(s.debug, "nil");
  assert.equal(s.loadlib, "nil");
  assert.deepEqual(s.os_keys, ["clock", "date", "difftime", "time"]);
  assert.equal(s.require_missing, false, "require of an unknown module fails");
  assert.equal(s.bit32_band, 8);
  assert.equal(s.string_rep, "ababab");
  assert.equal(s.math_floor, 2);
  assert.equal(s.table_concat, "x,y");

  const r = (await rpc(a, "e2e.require", {})).payload;
  assert.deepEqual(r, { name: "lib.e2e_util", keys: ["a", "b"] });
});

test("limits: a runaway script is stopped by the call timeout, a memory hog by the VM limit", async () => {
  const a = await player();

  // Tidings' answers (the runtime stops the script and replaces that VM): a timeout is
  // DeadlineExceeded (4, HTTP 504), running out of memory is ResourceExhausted (8, HTTP 429).
  const started = Date.now();
  await httpError(rpcRaw(a, "e2e.spin", {}), 504, {
    code: 4,
    error: {},
    message: "Lua call stopped: it ran longer than runtime.lua_call_timeout_ms (1000 ms)",
  });
  const took = Date.now() - started;
  assert.ok(took >= 900 && took < 4000, `stopped after ${took} ms (runtime.lua_call_timeout_ms is 1000)`);

  await httpError(rpcRaw(a, "e2e.hog", {}), 429, {
    code: 8,
    error: {},
    message: "Lua call stopped: the VM reached runtime.lua_memory_limit_bytes (33554432 bytes)",
  });

  // The server and its VM pool are fine afterwards: many calls at once all succeed.
  const inputs = Array.from({ length: 24 }, (_, i) => ({ i }));
  const results = await Promise.all(inputs.map((input) => rpc(a, "e2e.echo", input)));
  assert.deepEqual(results.map((r) => r.payload), inputs);
  const conn = await online(a);
  try {
    assert.deepEqual(await conn.socket.rpc("e2e.echo", "alive"), { id: "e2e.echo", payload: "alive" });
  } finally {
    conn.close();
  }
});

// ---------------------------------------------------------------------------------------------
// notification_send_all. Kept last on this server: a persistent send_all stores a row for every
// user that exists, which would show up in any later test's list.
// ---------------------------------------------------------------------------------------------

test("notification_send_all (non-persistent) reaches every connected socket, stores nothing", async () => {
  const a = await player();
  const b = await player();
  const offline = await player();
  const connA = await online(a);
  const connB1 = await online(b);
  const connB2 = await online(b);
  try {
    const res = await rawRpc(server, "e2e.send_all", {
      query: `http_key=${HTTP_KEY}`,
      body: JSON.stringify(JSON.stringify({ subject: "hello everyone", content: { x: 1 }, code: 21 })),
    });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { payload: "" });

    const conns = [connA, connB1, connB2];
    await until(() => conns.every((c) => c.items.length >= 1), "the broadcast on every socket");
    await sleep(200);
    for (const c of conns) {
      assert.equal(c.items.length, 1);
      assertPushed(c.items[0], { subject: "hello everyone", content: { x: 1 }, code: 21, persistent: false });
    }
    assert.equal(new Set(conns.map((c) => c.items[0].id)).size, 1, "one shared id for a non-persistent broadcast");

    assert.deepEqual(await listAll(a), []);
    assert.deepEqual(await listAll(offline), []);
  } finally {
    connA.close();
    connB1.close();
    connB2.close();
  }
});

test("notification_send_all (persistent) is pushed to online users and stored for everyone", async () => {
  const a = await player();
  const offline = await player();
  const connA = await online(a);
  try {
    const res = await rpc(a, "e2e.send_all", { subject: "stored for all", content: { y: 2 }, code: 22, persistent: true });
    assert.equal(res.payload, undefined);

    await until(() => connA.items.length >= 1, "the persistent broadcast");
    assertPushed(connA.items[0], { subject: "stored for all", content: { y: 2 }, code: 22, persistent: true });

    // Persistent send_all may finish in the background; poll the lists.
    const listedA = await until(async () => {
      const l = await listAll(a);
      return l.length >= 1 && l;
    }, "a's stored copy");
    const listedOffline = await until(async () => {
      const l = await listAll(offline);
      return l.length >= 1 && l;
    }, "the offline user's stored copy");
    for (const l of [listedA, listedOffline]) {
      assert.equal(l.length, 1);
      assert.equal(l[0].subject, "stored for all");
      assert.deepEqual(l[0].content, { y: 2 });
      assert.equal(l[0].code, 22);
      assert.equal(l[0].sender_id, undefined);
      assert.equal(l[0].persistent, true);
    }
    assert.equal(listedA[0].id, connA.items[0].id, "the pushed copy is the stored one");
    assert.notEqual(listedA[0].id, listedOffline[0].id, "each user gets their own id");
  } finally {
    connA.close();
  }
});

// ---------------------------------------------------------------------------------------------
// The designer examples in modules/ (second server, --runtime.path modules)
// ---------------------------------------------------------------------------------------------

test("examples/reward.lua: reward_claim stores and pushes a code 101 notification; bad input is 400", async () => {
  const p = await player(examples, "reward");
  const conn = await online(p);
  try {
    const res = await rpc(p, "reward_claim", { coins: 10 });
    assert.deepEqual(res.payload, { ok: true });
    await until(() => conn.items.length >= 1, "the reward notification");
    assertPushed(conn.items[0], { subject: "You earned 10 coins", content: { coins: 10 }, code: 101, persistent: true });
    const listed = await listAll(p);
    assert.equal(listed.length, 1);
    assert.equal(listed[0].id, conn.items[0].id);
    assert.deepEqual(listed[0].content, { coins: 10 });

    const bad = { code: 3, error: {}, message: "coins must be 1..10000" };
    for (const input of [{ coins: 0 }, { coins: 10001 }, { coins: 2.5 }, { coins: "10" }, {}]) {
      await httpError(rpcRaw(p, "reward_claim", input), 400, bad);
    }
    await httpError(rpcRaw(p, "reward_claim", "not an object"), 400, {
      code: 3,
      error: {},
      message: 'payload must be JSON like {"coins":10}',
    });

    // The README's curl form.
    const raw = await rawRpc(examples, "reward_claim", { token: p.session.token, body: '"{\\"coins\\":5}"' });
    assert.equal(raw.status, 200, raw.text);
    assert.deepEqual(raw.json, { payload: '{"ok":true}' });
    await until(() => conn.items.length >= 2, "the second reward");
    assert.equal(conn.items[1].subject, "You earned 5 coins");

    const server2server = await rawRpc(examples, "reward_claim", { query: `http_key=${HTTP_KEY}`, body: '"{\\"coins\\":5}"' });
    assert.equal(server2server.status, 403);
    assert.deepEqual(server2server.json, { code: 7, error: {}, message: "reward_claim must be called by a player" });
  } finally {
    conn.close();
  }
});

test("examples/typing.lua: typing_ping reaches an online friend only, never stored", async () => {
  const alice = await player(examples, "alice");
  const bob = await player(examples, "bob");
  const carol = await player(examples, "carol");
  const connBob = await online(bob);
  try {
    assert.deepEqual((await rpc(alice, "typing_ping", { to: bob.id })).payload, { ok: true });
    await until(() => connBob.items.length >= 1, "bob's typing ping");
    assertPushed(connBob.items[0], {
      subject: `${alice.username} is typing`,
      content: { from: alice.id, username: alice.username },
      code: 102,
      sender: alice.id,
      persistent: false,
    });
    assert.deepEqual(await listAll(bob), []);

    // carol is offline: the call succeeds, and she never sees it.
    assert.deepEqual((await rpc(alice, "typing_ping", { to: carol.id })).payload, { ok: true });
    assert.deepEqual(await listAll(carol), []);

    await httpError(rpcRaw(alice, "typing_ping", { to: "nope" }), 400, { code: 3, error: {}, message: "to must be a user id" });
  } finally {
    connBob.close();
  }
});

test("examples/announce.lua: announce is server-only and reaches every connected player", async () => {
  const a = await player(examples, "ann");
  const b = await player(examples, "ann");
  const connA = await online(a);
  const connB = await online(b);
  try {
    await httpError(rpcRaw(a, "announce", { subject: "nope" }), 403, { code: 7, error: {}, message: "server only" });

    const payload = JSON.stringify({ subject: "Maintenance", message: "Back at 10:00 UTC" });
    const res = await rawRpc(examples, "announce", { query: `http_key=${HTTP_KEY}`, body: JSON.stringify(payload) });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { payload: '{"ok":true}' });
    await until(() => connA.items.length >= 1 && connB.items.length >= 1, "the announcement on both sockets");
    for (const c of [connA, connB]) {
      assertPushed(c.items[0], { subject: "Maintenance", content: { message: "Back at 10:00 UTC" }, code: 103, persistent: false });
    }
    assert.deepEqual(await listAll(a), [], "not persistent unless asked");

    // Basic auth with the http key works too; a missing subject is 400.
    const missing = await rawRpc(examples, "announce", { basic: HTTP_KEY, body: JSON.stringify('{"message":"x"}') });
    assert.equal(missing.status, 400);
    assert.deepEqual(missing.json, {
      code: 3,
      error: {},
      message: "subject must be a non-empty string of at most 255 characters",
    });
  } finally {
    connA.close();
    connB.close();
  }
});

test("examples/inbox_cleanup.lua: pages through 105 notifications and keeps the newest", async () => {
  const p = await player(examples, "inbox");
  for (let coins = 1; coins <= 105; coins++) {
    await rpc(p, "reward_claim", { coins });
  }
  const before = await listAll(p);
  assert.equal(before.length, 105);
  assert.deepEqual(before.slice(-3).map((n) => n.content.coins), [103, 104, 105]);

  assert.deepEqual((await rpc(p, "inbox_cleanup", { keep: 3 })).payload, { deleted: 102 });
  const after = await listAll(p);
  assert.deepEqual(after.map((n) => n.id), before.slice(-3).map((n) => n.id));

  assert.deepEqual((await rpc(p, "inbox_cleanup", {})).payload, { deleted: 0 }, "default keep 50");
  await httpError(rpcRaw(p, "inbox_cleanup", { keep: -1 }), 400, {
    code: 3,
    error: {},
    message: "keep must be a whole number, 0 or more",
  });
  assert.deepEqual((await rpc(p, "inbox_cleanup", { keep: 0 })).payload, { deleted: 3 });
  assert.deepEqual(await listAll(p), []);
});
