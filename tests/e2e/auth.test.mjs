// Authentication, session refresh/logout and account, through nakama-js 2.8.0 (NAKAMA-SPEC §1.3, §7).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Session } from "@heroiclabs/nakama-js";

import {
  useServer, makeClient, api, httpError, decodeJwt, newDeviceId, newUsername, UUID_RE, SERVER_KEY,
} from "./server.mjs";

const server = useServer();

const sleepToNextSecond = () => new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 50));

function assertJwtSession(session) {
  assert.equal(typeof session.token, "string");
  assert.equal(typeof session.refresh_token, "string");
  assert.equal(session.token.split(".").length, 3, "token is a JWT");
  assert.equal(session.refresh_token.split(".").length, 3, "refresh_token is a JWT");
  assert.match(session.user_id, UUID_RE);
  assert.equal(typeof session.username, "string");
  assert.ok(session.username.length > 0);
}

test("authenticateDevice creates an account once, then logs into it", async () => {
  const client = makeClient(server, { autoRefresh: false });
  const deviceId = newDeviceId();
  const username = newUsername("dev");

  const first = await client.authenticateDevice(deviceId, true, username);
  assertJwtSession(first);
  assert.equal(first.created, true);
  assert.equal(first.username, username, "username parameter honoured on creation");

  // create omitted: nakama-js leaves it out of the query string; the server defaults it to true.
  const again = await client.authenticateDevice(deviceId);
  assertJwtSession(again);
  assert.equal(again.created, false, "created is absent on the wire for an existing account, nakama-js maps that to false");
  assert.equal(again.user_id, first.user_id);
  assert.equal(again.username, username);

  // On an existing account the username parameter is ignored.
  const renamed = await client.authenticateDevice(deviceId, true, newUsername("other"));
  assert.equal(renamed.created, false);
  assert.equal(renamed.user_id, first.user_id);
  assert.equal(renamed.username, username);

  // Each login is a new token id.
  assert.notEqual(decodeJwt(again.token).payload.tid, decodeJwt(first.token).payload.tid);
});

test("authenticateDevice without a username generates a random 10-letter one", async () => {
  const client = makeClient(server, { autoRefresh: false });
  const session = await client.authenticateDevice(newDeviceId(), true);
  assert.equal(session.created, true);
  assert.match(session.username, /^[A-Za-z]{10}$/);
});

test("session JWTs carry the Nakama claims and default lifetimes", async () => {
  const client = makeClient(server, { autoRefresh: false });
  const username = newUsername("jwt");
  const session = await client.authenticateDevice(newDeviceId(), true, username, { team: "red" });

  const tok = decodeJwt(session.token);
  const ref = decodeJwt(session.refresh_token);
  assert.deepEqual(tok.header, { alg: "HS256", typ: "JWT" });
  assert.deepEqual(ref.header, { alg: "HS256", typ: "JWT" });
  assert.deepEqual(Object.keys(tok.payload).sort(), ["exp", "iat", "tid", "uid", "usn", "vrs"]);
  assert.match(tok.payload.tid, UUID_RE);
  assert.equal(tok.payload.uid, session.user_id);
  assert.equal(tok.payload.usn, username);
  assert.deepEqual(tok.payload.vrs, { team: "red" });
  assert.deepEqual(session.vars, { team: "red" }, "nakama-js exposes vrs as session.vars");
  assert.equal(tok.payload.exp - tok.payload.iat, 60, "session.token_expiry_sec defaults to 60");
  assert.equal(ref.payload.tid, tok.payload.tid, "session and refresh token share the token id");
  assert.equal(ref.payload.uid, session.user_id);
  assert.equal(ref.payload.exp - ref.payload.iat, 3600, "session.refresh_token_expiry_sec defaults to 3600");
  assert.equal(session.expires_at, tok.payload.exp);
  assert.equal(session.refresh_expires_at, ref.payload.exp);

  // No vars: the vrs claim is omitted.
  const plain = await client.authenticateDevice(newDeviceId(), true);
  assert.equal("vrs" in decodeJwt(plain.token).payload, false);
});

test("authenticateDevice rejects a too-short device id with 400 code 3", async () => {
  const client = makeClient(server, { autoRefresh: false });
  await httpError(client.authenticateDevice("short", true), 400, {
    code: 3,
    message: "Device ID invalid, must be 10-128 bytes.",
  });
});

test("authenticateDevice with create=false on an unknown device is 404", async () => {
  const client = makeClient(server, { autoRefresh: false });
  await httpError(client.authenticateDevice(newDeviceId(), false), 404, {
    code: 5,
    message: "User account not found.",
  });
});

test("a new account cannot take a username that is in use (409)", async () => {
  const client = makeClient(server, { autoRefresh: false });
  const username = newUsername("taken");
  await client.authenticateDevice(newDeviceId(), true, username);
  await httpError(client.authenticateDevice(newDeviceId(), true, username), 409, {
    code: 6,
    message: "Username is already in use.",
  });
});

test("a wrong server key is rejected with 401 and WWW-Authenticate", async () => {
  const client = makeClient(server, { serverKey: "wrongkey", autoRefresh: false });
  const err = await httpError(client.authenticateDevice(newDeviceId(), true), 401, {
    code: 16,
    message: "Server key invalid",
  });
  assert.equal(err.headers.get("www-authenticate"), "Server key invalid");
});

test("raw authenticate: Basic auth required, created omitted when false", async () => {
  const id = newDeviceId();
  const path = "/v2/account/authenticate/device?create=true&";

  const noAuth = await api(server, path, { method: "POST", body: { id } });
  assert.equal(noAuth.status, 401);
  assert.deepEqual(noAuth.json, { code: 16, message: "Server key required" });
  assert.equal(noAuth.headers.get("www-authenticate"), "Server key required");

  const created = await api(server, path, { method: "POST", basic: SERVER_KEY, body: { id } });
  assert.equal(created.status, 200, created.text);
  assert.deepEqual(Object.keys(created.json).sort(), ["created", "refresh_token", "token"]);
  assert.equal(created.json.created, true);

  // Unknown body fields are dropped silently (DiscardUnknown).
  const again = await api(server, path, { method: "POST", basic: SERVER_KEY, body: { id, extra: 1 } });
  assert.equal(again.status, 200, again.text);
  assert.deepEqual(Object.keys(again.json).sort(), ["refresh_token", "token"], "created:false is omitted");
});

test("authenticateCustom creates then logs in; short ids are rejected", async () => {
  const client = makeClient(server, { autoRefresh: false });
  const customId = `custom-${newUsername("c")}`;
  const username = newUsername("cus");

  const first = await client.authenticateCustom(customId, true, username);
  assertJwtSession(first);
  assert.equal(first.created, true);
  assert.equal(first.username, username);

  const again = await client.authenticateCustom(customId, false);
  assert.equal(again.created, false);
  assert.equal(again.user_id, first.user_id);
  assert.equal(again.username, username);

  await httpError(client.authenticateCustom("abc12", true), 400, {
    code: 3,
    message: "Custom ID invalid, must be 6-128 bytes.",
  });

  const account = await client.getAccount(again);
  assert.equal(account.user.id, first.user_id);
  assert.equal(account.custom_id, customId);
});

test("authenticateEmail creates then logs in with the same password; a wrong password is 401", async () => {
  const client = makeClient(server, { autoRefresh: false });
  const email = `${newUsername("mail")}@example.com`;
  const password = "correct-horse-battery";
  const username = newUsername("em");

  const first = await client.authenticateEmail(email, password, true, username);
  assertJwtSession(first);
  assert.equal(first.created, true);
  assert.equal(first.username, username);

  const login = await client.authenticateEmail(email, password, false);
  assert.equal(login.created, false);
  assert.equal(login.user_id, first.user_id);
  assert.equal(login.username, username);

  const loginDefaultCreate = await client.authenticateEmail(email, password);
  assert.equal(loginDefaultCreate.created, false);
  assert.equal(loginDefaultCreate.user_id, first.user_id);

  const err = await httpError(client.authenticateEmail(email, "wrong-password-123", false), 401, {
    code: 16,
    message: "Invalid credentials.",
  });
  assert.equal(err.headers.get("www-authenticate"), "Invalid credentials.");

  const account = await client.getAccount(login);
  assert.equal(account.user.id, first.user_id);
  assert.equal(account.email, email);
});

test("getAccount returns the user and its device", async () => {
  const client = makeClient(server, { autoRefresh: false });
  const deviceId = newDeviceId();
  const username = newUsername("acct");
  const session = await client.authenticateDevice(deviceId, true, username);

  const account = await client.getAccount(session);
  assert.equal(account.user.id, session.user_id);
  assert.equal(account.user.username, username);
  assert.match(account.user.create_time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  assert.match(account.user.update_time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  assert.ok(Array.isArray(account.devices), `devices: ${JSON.stringify(account.devices)}`);
  assert.deepEqual(account.devices, [{ id: deviceId }]);
  // Zero-valued fields are omitted on the wire.
  assert.equal("email" in account, false);
  assert.equal("custom_id" in account, false);
});

test("sessionRefresh returns a refreshed session for the same user and token id", async () => {
  const client = makeClient(server, { autoRefresh: false });
  const username = newUsername("ref");
  const session = await client.authenticateDevice(newDeviceId(), true, username);
  const before = {
    user_id: session.user_id,
    username: session.username,
    claims: decodeJwt(session.token).payload,
  };

  // nakama-js updates the Session in place and returns it.
  const refreshed = await client.sessionRefresh(session);
  assertJwtSession(refreshed);
  assert.equal(refreshed.user_id, before.user_id);
  assert.equal(refreshed.username, before.username);
  const claims = decodeJwt(refreshed.token).payload;
  assert.equal(claims.tid, before.claims.tid, "refresh keeps the token id");
  assert.equal(claims.iat, before.claims.iat, "refresh keeps iat");
  assert.ok(claims.exp >= before.claims.exp);
  assert.equal(decodeJwt(refreshed.refresh_token).payload.tid, before.claims.tid);

  const account = await client.getAccount(refreshed);
  assert.equal(account.user.id, before.user_id);

  // Vars sent with the refresh replace the token's vars.
  const withVars = await client.sessionRefresh(refreshed, { level: "7" });
  assert.deepEqual(withVars.vars, { level: "7" });
  assert.deepEqual(decodeJwt(withVars.token).payload.vrs, { level: "7" });
});

test("sessionRefresh with something that is not a refresh token is 401", async () => {
  const client = makeClient(server, { autoRefresh: false });
  const session = await client.authenticateDevice(newDeviceId(), true);
  // A session token is a JWT but is signed with the other key.
  const bogus = Session.restore(session.token, session.token);
  await httpError(client.sessionRefresh(bogus), 401, {
    code: 16,
    message: "Refresh token invalid or expired.",
  });
});

test("sessionLogout revokes the session token and the refresh token", async () => {
  const client = makeClient(server, { autoRefresh: false });
  const deviceId = newDeviceId();
  const session = await client.authenticateDevice(deviceId, true);
  const other = await client.authenticateDevice(deviceId, true);

  assert.equal(await client.sessionLogout(session, session.token, session.refresh_token), true);

  const err = await httpError(client.getAccount(session), 401, { code: 16, message: "Auth token invalid" });
  assert.equal(err.headers.get("www-authenticate"), "Auth token invalid");
  await httpError(client.sessionRefresh(session), 401, {
    code: 16,
    message: "Refresh token invalid or expired.",
  });

  // An auto-refreshing client first tries the (revoked) refresh token: still a 401.
  const autoClient = makeClient(server);
  await httpError(autoClient.getAccount(session), 401);

  // Another login of the same user is unaffected.
  const account = await client.getAccount(other);
  assert.equal(account.user.id, session.user_id);
});

test("sessionLogout with no tokens revokes every session of the user", async () => {
  const client = makeClient(server, { autoRefresh: false });
  const deviceId = newDeviceId();
  const a = await client.authenticateDevice(deviceId, true);
  const b = await client.authenticateDevice(deviceId, true);

  // Nakama records a logout-all as a unix-second timestamp and rejects tokens whose iat is
  // strictly earlier, so tokens issued in the same second survive it. Step into the next second
  // so a and b are definitely older than the logout.
  await sleepToNextSecond();
  assert.equal(await client.sessionLogout(a, "", ""), true);

  await httpError(client.getAccount(a), 401, { code: 16, message: "Auth token invalid" });
  await httpError(client.getAccount(b), 401, { code: 16, message: "Auth token invalid" });
  await httpError(client.sessionRefresh(b), 401, { code: 16, message: "Refresh token invalid or expired." });

  // Logging in again right away works (same second as the logout: iat is not earlier than it).
  const c = await client.authenticateDevice(deviceId, true);
  assert.equal(c.user_id, a.user_id);
  assert.equal((await client.getAccount(c)).user.id, a.user_id);
});

test("the default (auto-refreshing) client works against 60 s tokens", async () => {
  // With 60 s tokens and nakama-js's 5-minute expiredTimespanMs, every call below is preceded
  // by POST /v2/account/session/refresh.
  const client = makeClient(server);
  const username = newUsername("auto");
  const session = await client.authenticateDevice(newDeviceId(), true, username);
  const tid = decodeJwt(session.token).payload.tid;

  const account = await client.getAccount(session);
  assert.equal(account.user.id, session.user_id);
  assert.equal(account.user.username, username);
  assert.equal(decodeJwt(session.token).payload.tid, tid);
  assert.equal(session.username, username);
});
