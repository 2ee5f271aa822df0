// The REST notification endpoints, through nakama-js 2.8.0 and raw fetch (NAKAMA-SPEC §1, §2, §3,
// plus Tidings deviations 1 and 2 in /work/shared/README.md).
//
// What nakama-js sends:
//   listNotifications(session, limit, cursor) -> GET /v2/notification?limit=<n>&cacheable_cursor=<urlencoded>&
//     (a key whose value is undefined/null is left out; the URL always ends in "?" or "&")
//   deleteNotifications(session, ids)         -> DELETE /v2/notification?ids=<a>&ids=<b>&   (no body)
//   Both send Accept: application/json and Content-Type: application/json, even without a body.
// What nakama-js does with the reply:
//   listNotifications always returns { cacheable_cursor, notifications: [] } -- the array is
//   created by the client, so an absent "notifications" key shows up as []. Each item's content
//   is JSON.parse'd and code defaults to 0.
//   deleteNotifications resolves `response != undefined`, i.e. true for any 2xx JSON body; the
//   body must be JSON ({}), an empty 200 body would make response.json() throw.
//
// ---------------------------------------------------------------------------------------------
// The send/receive flow through Lua RPCs is in flow.test.mjs.
// ---------------------------------------------------------------------------------------------
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

import { useServer, makeClient, api, httpError, newDeviceId } from "./server.mjs";

const server = useServer();

async function newSession(opts) {
  const client = makeClient(server, opts);
  const session = await client.authenticateDevice(newDeviceId(), true);
  return { client, session };
}

test("listNotifications on a new user: no notifications, a cacheable cursor", async () => {
  // Default client (auto-refreshing), as a game would use it.
  const { client, session } = await newSession();
  const list = await client.listNotifications(session, 10);
  assert.deepEqual(list.notifications, [], "nakama-js turns an absent key into []");
  assert.equal(typeof list.cacheable_cursor, "string");
  assert.ok(list.cacheable_cursor.length > 0, "an empty page without a cursor still returns one");
  assert.deepEqual(Object.keys(list).sort(), ["cacheable_cursor", "notifications"]);

  // No limit at all (server default 1) is fine too.
  const one = await client.listNotifications(session);
  assert.deepEqual(one.notifications, []);
  assert.equal(typeof one.cacheable_cursor, "string");
});

test("listNotifications with a cursor on an empty page echoes that cursor", async () => {
  const { client, session } = await newSession({ autoRefresh: false });
  const first = await client.listNotifications(session, 10);
  const cursor = first.cacheable_cursor;
  assert.equal(typeof cursor, "string");

  const again = await client.listNotifications(session, 10, cursor);
  assert.deepEqual(again.notifications, []);
  assert.equal(again.cacheable_cursor, cursor);

  const again100 = await client.listNotifications(session, 100, cursor);
  assert.equal(again100.cacheable_cursor, cursor);

  // A cursor is a position, not tied to a user.
  const other = await newSession({ autoRefresh: false });
  const foreign = await other.client.listNotifications(other.session, 5, cursor);
  assert.deepEqual(foreign.notifications, []);
  assert.equal(foreign.cacheable_cursor, cursor);
});

test("deleteNotifications with unknown UUIDs resolves true", async () => {
  const { client, session } = await newSession({ autoRefresh: false });
  assert.equal(await client.deleteNotifications(session, [randomUUID()]), true);
  assert.equal(await client.deleteNotifications(session, [randomUUID(), randomUUID(), randomUUID()]), true);
  // Spellings PostgreSQL accepts as a UUID.
  const id = randomUUID();
  assert.equal(await client.deleteNotifications(session, [id.toUpperCase()]), true);
  assert.equal(await client.deleteNotifications(session, [id.replaceAll("-", "")]), true);
  assert.equal(await client.deleteNotifications(session, [`{${id}}`]), true);
  // No ids: DELETE /v2/notification? -> 200 {}.
  assert.equal(await client.deleteNotifications(session, []), true);
  assert.equal(await client.deleteNotifications(session), true);
});

test("deleteNotifications with a non-UUID id rejects with 400 code 3 (Tidings deviation 2)", async () => {
  const { client, session } = await newSession({ autoRefresh: false });
  const bad = await httpError(client.deleteNotifications(session, ["not-a-uuid"]), 400);
  assert.equal(bad.body.code, 3);
  assert.equal(typeof bad.body.message, "string");
  assert.ok(bad.body.message.length > 0);
  assert.deepEqual(Object.keys(bad.body).sort(), ["code", "message"]);

  // One bad id among good ones fails the whole call.
  const mixed = await httpError(client.deleteNotifications(session, [randomUUID(), "nope"]), 400);
  assert.equal(mixed.body.code, 3);
});

test("raw GET /v2/notification: empty page shape and headers", async () => {
  const { session } = await newSession({ autoRefresh: false });
  const res = await api(server, "/v2/notification?limit=10&", { token: session.token });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(Object.keys(res.json), ["cacheable_cursor"], "notifications key absent on an empty page");
  assert.equal(typeof res.json.cacheable_cursor, "string");
  assert.equal(res.headers.get("cache-control"), "no-store, no-cache, must-revalidate");

  // Unknown query parameters are ignored; limit=1 and limit=100 are in range.
  for (const q of ["limit=1", "limit=100", "limit=5&whatever=1"]) {
    const ok = await api(server, `/v2/notification?${q}`, { token: session.token });
    assert.equal(ok.status, 200, `${q}: ${ok.text}`);
  }

  // Echo through the raw endpoint, cursor URL-encoded as nakama-js does.
  const c = res.json.cacheable_cursor;
  const echoed = await api(server, `/v2/notification?limit=10&cacheable_cursor=${encodeURIComponent(c)}&`, {
    token: session.token,
  });
  assert.equal(echoed.status, 200, echoed.text);
  assert.deepEqual(echoed.json, { cacheable_cursor: c });
});

test("raw GET /v2/notification without auth is 401 with WWW-Authenticate", async () => {
  const res = await api(server, "/v2/notification?limit=10");
  assert.equal(res.status, 401);
  assert.deepEqual(res.json, { code: 16, message: "Auth token required" });
  assert.equal(res.headers.get("www-authenticate"), "Auth token required");

  // REST does not take ?token=.
  const { session } = await newSession({ autoRefresh: false });
  const viaQuery = await api(server, `/v2/notification?limit=10&token=${encodeURIComponent(session.token)}`);
  assert.equal(viaQuery.status, 401);
  assert.deepEqual(viaQuery.json, { code: 16, message: "Auth token required" });
});

test("raw GET /v2/notification with a bad token is 401 Auth token invalid", async () => {
  const { session } = await newSession({ autoRefresh: false });
  const cases = [
    { Authorization: "Bearer not.a.jwt" },
    { Authorization: `bearer ${session.token}` }, // the scheme is case-sensitive
    { Authorization: `Bearer ${session.refresh_token}` }, // signed with the refresh key
  ];
  for (const headers of cases) {
    const res = await api(server, "/v2/notification?limit=10", { headers });
    assert.equal(res.status, 401, headers.Authorization);
    assert.deepEqual(res.json, { code: 16, message: "Auth token invalid" }, headers.Authorization);
    assert.equal(res.headers.get("www-authenticate"), "Auth token invalid");
  }
});

test("raw GET /v2/notification rejects limits outside 1..100", async () => {
  const { session } = await newSession({ autoRefresh: false });
  for (const limit of ["0", "-1", "101"]) {
    const res = await api(server, `/v2/notification?limit=${limit}`, { token: session.token });
    assert.equal(res.status, 400, `limit=${limit}`);
    assert.deepEqual(res.json, { code: 3, message: "Invalid limit - limit must be between 1 and 100." }, `limit=${limit}`);
  }

  // A client going through nakama-js sees the same.
  const client = makeClient(server, { autoRefresh: false });
  await httpError(client.listNotifications(session, 0), 400, {
    code: 3,
    message: "Invalid limit - limit must be between 1 and 100.",
  });

  const text = await api(server, "/v2/notification?limit=abc", { token: session.token });
  assert.equal(text.status, 400);
  assert.equal(text.json.code, 3);
  assert.ok(text.json.message.startsWith('parsing field "limit":'), text.json.message);
});

test("raw GET /v2/notification with a malformed cursor is 400 (Tidings deviation 1)", async () => {
  const { session } = await newSession({ autoRefresh: false });
  for (const cursor of ["notbase64!!", "AAAA"]) {
    const res = await api(server, `/v2/notification?limit=10&cacheable_cursor=${encodeURIComponent(cursor)}`, {
      token: session.token,
    });
    assert.equal(res.status, 400, `cursor ${cursor}: ${res.text}`);
    assert.deepEqual(res.json, { code: 3, message: "Malformed cursor was used." });
  }
});

test("raw DELETE /v2/notification: repeated ids, empty and malformed ids", async () => {
  const { session } = await newSession({ autoRefresh: false });
  const del = (query) => api(server, `/v2/notification${query}`, { method: "DELETE", token: session.token });

  const ok = await del(`?ids=${randomUUID()}&ids=${randomUUID()}&`);
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(ok.json, {});

  const none = await del("?");
  assert.equal(none.status, 200, none.text);
  assert.deepEqual(none.json, {});

  for (const query of ["?ids=not-a-uuid", "?ids=", `?ids=${randomUUID()},${randomUUID()}`, `?ids=${randomUUID()}&ids=x`]) {
    const res = await del(query);
    assert.equal(res.status, 400, `${query}: ${res.text}`);
    assert.equal(res.json.code, 3, query);
    assert.equal(typeof res.json.message, "string");
  }

  // Without auth.
  const anon = await api(server, `/v2/notification?ids=${randomUUID()}`, { method: "DELETE" });
  assert.equal(anon.status, 401);
  assert.deepEqual(anon.json, { code: 16, message: "Auth token required" });
});

test("wrong method on /v2/notification is 501 Method Not Allowed, before auth", async () => {
  const { session } = await newSession({ autoRefresh: false });
  for (const method of ["PUT", "POST"]) {
    for (const token of [undefined, session.token]) {
      const res = await api(server, "/v2/notification", { method, token, body: {} });
      assert.equal(res.status, 501, `${method} token=${Boolean(token)}: ${res.text}`);
      assert.deepEqual(res.json, { code: 12, message: "Method Not Allowed" });
    }
  }
});
