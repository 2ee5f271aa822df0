// The realtime socket at /ws, through nakama-js 2.8.0 and raw `ws` (NAKAMA-SPEC §4.1-4.3, §4.6).
//
// nakama-js connects with  ws://host:port/ws?lang=en&status=<true|false>&token=<urlencoded JWT>
// (never `format`), sends {"cid":"1","ping":{}} as soon as the socket opens and then every
// heartbeat interval (10 s by default), and closes the socket if a ping gets no reply in time.
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  useServer, makeClient, newDeviceId, newUsername, rawSocket, nextFrame, UUID_RE,
} from "./server.mjs";

const server = useServer();

/** Wrap socket.send to count pings sent and pongs received (pingPong() calls this.send). */
function countPings(socket) {
  const counts = { pings: 0, pongs: 0, heartbeatTimeouts: 0 };
  const send = socket.send.bind(socket);
  socket.send = (message, timeout) => {
    if (message && message.ping) counts.pings++;
    return send(message, timeout).then((reply) => {
      if (reply && reply.pong) counts.pongs++;
      return reply;
    });
  };
  socket.onheartbeattimeout = () => {
    counts.heartbeatTimeouts++;
  };
  return counts;
}

test("socket.connect succeeds and a ping gets a pong with the same cid", async () => {
  const client = makeClient(server, { autoRefresh: false });
  const session = await client.authenticateDevice(newDeviceId(), true);
  const socket = client.createSocket(false, false);
  const counts = countPings(socket);
  try {
    const connected = await socket.connect(session, true, 5000);
    assert.equal(connected, session, "connect resolves with the session it was given");

    // socket.send resolves with the whole reply envelope matched by cid.
    const reply = await socket.send({ ping: {} });
    assert.equal(typeof reply.cid, "string");
    assert.deepEqual(reply.pong, {});
    assert.deepEqual(Object.keys(reply).sort(), ["cid", "pong"]);
    assert.equal(counts.heartbeatTimeouts, 0);
  } finally {
    socket.disconnect(false);
  }
});

test("connect with status=true pushes the user's own status_presence_event", async () => {
  const client = makeClient(server, { autoRefresh: false });
  const username = newUsername("st");
  const session = await client.authenticateDevice(newDeviceId(), true, username);
  const socket = client.createSocket(false, false);
  const event = new Promise((resolve) => {
    socket.onstatuspresence = resolve;
  });
  try {
    await socket.connect(session, true, 5000);
    const timeout = new Promise((_, reject) =>
      setTimeout(() => reject(new Error("no status_presence_event within 3 s")), 3000),
    );
    const presence = await Promise.race([event, timeout]);
    assert.ok(Array.isArray(presence.joins), JSON.stringify(presence));
    assert.equal(presence.joins.length, 1);
    const [join] = presence.joins;
    assert.equal(join.user_id, session.user_id);
    assert.equal(join.username, username);
    assert.match(join.session_id, UUID_RE);
  } finally {
    socket.disconnect(false);
  }
});

test("nakama-js heartbeat pings are answered", async () => {
  const client = makeClient(server, { autoRefresh: false });
  const session = await client.authenticateDevice(newDeviceId(), true);
  const socket = client.createSocket(false, false);
  socket.setHeartbeatTimeoutMs(300); // ping every 300 ms, give up after 300 ms without a pong
  const counts = countPings(socket);
  try {
    await socket.connect(session, false, 5000);
    await new Promise((r) => setTimeout(r, 1300));
    assert.equal(counts.heartbeatTimeouts, 0, "no heartbeat timeout");
    assert.ok(counts.pings >= 3, `pings sent: ${counts.pings}`);
    assert.ok(counts.pongs >= 3, `pongs received: ${counts.pongs}`);
    assert.equal(socket.adapter.isOpen(), true);
  } finally {
    socket.disconnect(false);
  }
});

test("a logged-out session's token cannot open a socket (Tidings deviation 3)", async () => {
  const client = makeClient(server, { autoRefresh: false });
  const session = await client.authenticateDevice(newDeviceId(), true);
  assert.equal(await client.sessionLogout(session, session.token, session.refresh_token), true);

  const socket = client.createSocket(false, false);
  let connected = false;
  let error;
  try {
    await socket.connect(session, true, 5000);
    connected = true;
  } catch (err) {
    error = err;
  } finally {
    socket.disconnect(false);
  }
  assert.equal(connected, false, "connect must reject");
  // nakama-js rejects with the WebSocket error event; `ws` reports the refused upgrade's status.
  assert.match(String(error?.message ?? error), /Unexpected server response: 401/);

  // The same refusal seen raw.
  const raw = await rawSocket(server, `lang=en&status=true&token=${encodeURIComponent(session.token)}`);
  assert.equal(raw.status, 401);
  assert.equal(raw.body.trim(), "Missing or invalid token");
});

test("raw socket: missing or invalid token is HTTP 401, bad format is HTTP 400", async () => {
  const client = makeClient(server, { autoRefresh: false });
  const session = await client.authenticateDevice(newDeviceId(), true);

  const missing = await rawSocket(server, "lang=en&status=false");
  assert.equal(missing.status, 401);
  assert.equal(missing.body.trim(), "Missing or invalid token");

  const garbage = await rawSocket(server, "token=not.a.jwt");
  assert.equal(garbage.status, 401);
  assert.equal(garbage.body.trim(), "Missing or invalid token");

  const badFormat = await rawSocket(server, `format=xml&token=${encodeURIComponent(session.token)}`);
  assert.equal(badFormat.status, 400);
  assert.equal(badFormat.body.trim(), "Invalid format parameter");
});

test("raw socket: token in the Authorization header; ping/pong envelopes", async () => {
  const client = makeClient(server, { autoRefresh: false });
  const session = await client.authenticateDevice(newDeviceId(), true);

  const { open: ws, status, body } = await rawSocket(server, "format=json", {
    Authorization: `Bearer ${session.token}`,
  });
  assert.ok(ws, `upgrade refused: ${status} ${body}`);
  try {
    ws.send(JSON.stringify({ cid: "7", ping: {} }));
    assert.deepEqual(await nextFrame(ws), { cid: "7", pong: {} });

    ws.send(JSON.stringify({ ping: {} }));
    assert.deepEqual(await nextFrame(ws), { pong: {} });
  } finally {
    ws.terminate();
  }
});

test("raw socket: an envelope with an unknown field closes the connection", async () => {
  const client = makeClient(server, { autoRefresh: false });
  const session = await client.authenticateDevice(newDeviceId(), true);

  const { open: ws } = await rawSocket(server, `token=${encodeURIComponent(session.token)}`);
  assert.ok(ws, "upgrade accepted");
  try {
    const closed = new Promise((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.send(JSON.stringify({ cid: "15", bogus: {} }));
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error("socket not closed within 5 s")), 5000));
    const { code, reason } = await Promise.race([closed, timeout]);
    assert.equal(code, 1000);
    assert.equal(reason, "received malformed payload");
  } finally {
    ws.terminate();
  }
});
