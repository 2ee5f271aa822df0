// The socket's protobuf format through the official adapter, @heroiclabs/nakama-js-protobuf
// 1.4.0 (WebSocketAdapterPb: `/ws?...&format=protobuf`, binary nakama.realtime.Envelope
// frames): ping, RPC with and without errors, pushed notifications (content parsed by
// nakama-js, create_time a Date from the protobuf Timestamp), chat join/send/presence, and
// the frames the adapter decodes being the same as a JSON socket's.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { WebSocketAdapterPb } from "@heroiclabs/nakama-js-protobuf";

import { useServer, makeClient, newDeviceId, newUsername, rawSocket } from "./server.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const server = useServer(["--runtime.path", path.resolve(HERE, "modules")]);

async function player(prefix) {
  const client = makeClient(server, { autoRefresh: false });
  const username = newUsername(prefix);
  const session = await client.authenticateDevice(newDeviceId(), true, username);
  return { client, session, id: session.user_id, username };
}

/** A nakama-js socket on the protobuf adapter, with what it received. */
async function pbSocket(p, createStatus = false) {
  const socket = p.client.createSocket(false, false, new WebSocketAdapterPb());
  const got = { notifications: [], messages: [], presences: [], status: [] };
  socket.onnotification = (n) => got.notifications.push(n);
  socket.onchannelmessage = (m) => got.messages.push(m);
  socket.onchannelpresence = (e) => got.presences.push(e);
  socket.onstatuspresence = (e) => got.status.push(e);
  await socket.connect(p.session, createStatus, 5000);
  return { socket, got };
}

/** e2e.send (nk.notification_send) over HTTP; a failure shows the server's answer. */
async function send(p, args) {
  try {
    await p.client.rpc(p.session, "e2e.send", args);
  } catch (err) {
    throw new Error(`e2e.send failed: ${err.status} ${await err.text?.()}`);
  }
}

async function until(check, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("ping, RPC and errors over protobuf frames", async () => {
  const p = await player("pb");
  const { socket } = await pbSocket(p);
  const pong = await socket.send({ ping: {} });
  assert.ok(pong.pong !== undefined, JSON.stringify(pong));

  const echoed = await socket.rpc("e2e.echo", '{"hello":"pb"}');
  assert.equal(echoed.id, "e2e.echo");
  assert.equal(echoed.payload, '{"hello":"pb"}');

  await assert.rejects(socket.rpc("no.such.rpc", "{}"), (err) => {
    assert.equal(err.code, 6);
    assert.equal(err.message, "RPC function not found");
    return true;
  });
  await assert.rejects(
    socket.rpc("e2e.fail", JSON.stringify({ message: "custom message", code: 3 })),
    (err) => {
      assert.equal(err.code, 7);
      assert.equal(err.message, "custom message");
      return true;
    },
  );
  socket.disconnect(false);
});

test("pushed notifications arrive through the adapter as nakama-js hands them to games", async () => {
  const p = await player("pbn");
  const { socket, got } = await pbSocket(p);
  const content = { gift: "sword", n: 3 };
  await send(p, { user_id: p.id, subject: "a gift", content, code: 101, persistent: true });
  await send(p, { user_id: p.id, subject: "a ping", content: {}, code: 7, persistent: false });
  // A server notification with a negative code: a friend request (-2).
  const friend = await player("pbf");
  await friend.client.addFriends(friend.session, [p.id]);
  await until(() => got.notifications.length === 3, "three notifications");
  const [stored, pushed, invite] = got.notifications;
  assert.equal(stored.subject, "a gift");
  assert.deepEqual(stored.content, content);
  assert.equal(stored.code, 101);
  assert.equal(stored.persistent, true);
  assert.ok(stored.create_time instanceof Date, "a protobuf Timestamp decodes to a Date");
  assert.ok(Math.abs(stored.create_time.getTime() - Date.now()) < 60_000);
  assert.equal(pushed.code, 7);
  assert.equal(pushed.persistent, false);
  assert.equal(invite.code, -2, "negative int32 codes survive the varint");
  assert.equal(invite.sender_id, friend.id);
  assert.equal(invite.subject, `${friend.username} wants to add you as a friend`);

  // As on a JSON socket: a runtime send without sender carries the nil UUID (Nakama's push).
  assert.equal(stored.sender_id, "00000000-0000-0000-0000-000000000000");
  const list = await p.client.listNotifications(p.session, 10);
  assert.equal(list.notifications[0].id, stored.id);
  socket.disconnect(false);
});

test("chat over protobuf: join, presence events, messages and acks", async () => {
  const a = await player("pba");
  const b = await player("pbb");
  const sa = await pbSocket(a);
  const sb = await pbSocket(b);
  const room = `pbroom${Date.now()}`;
  const joinedA = await sa.socket.joinChat(room, 1, false, false);
  assert.equal(joinedA.room_name, room);
  assert.equal(joinedA.self.user_id, a.id);
  const joinedB = await sb.socket.joinChat(room, 1, false, false);
  assert.equal(joinedB.id, joinedA.id);
  assert.ok(joinedB.presences.some((pr) => pr.user_id === a.id), JSON.stringify(joinedB));
  const bJoined = () => sa.got.presences.find((e) => e.joins?.some((j) => j.user_id === b.id));
  await until(bJoined, "a hears b join");
  assert.equal(bJoined().joins[0].username, b.username);
  assert.equal(bJoined().channel_id, joinedA.id);

  const ack = await sb.socket.writeChatMessage(joinedA.id, { text: "hi over protobuf" });
  assert.equal(ack.channel_id, joinedA.id);
  assert.equal(ack.username, b.username);
  assert.ok(ack.create_time instanceof Date);
  await until(() => sa.got.messages.length === 1, "a's message");
  const m = sa.got.messages[0];
  assert.deepEqual(m.content, { text: "hi over protobuf" });
  assert.equal(m.sender_id, b.id);
  assert.equal(m.code, 0, "code is an Int32Value; the adapter defaults it");
  sa.socket.disconnect(false);
  sb.socket.disconnect(false);
});

test("status=true: the session's own status presence event arrives in protobuf", async () => {
  const p = await player("pbs");
  const { socket, got } = await pbSocket(p, true);
  await until(() => got.status.length === 1, "the status presence event");
  const join = got.status[0].joins[0];
  assert.equal(join.user_id, p.id);
  assert.equal(join.username, p.username);
  socket.disconnect(false);
});

test("a text frame on a protobuf socket closes it as Nakama does", async () => {
  const p = await player("pbt");
  const { open: ws } = await rawSocket(server, `token=${p.session.token}&format=protobuf`);
  assert.ok(ws, "the protobuf upgrade is accepted");
  const closed = new Promise((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  ws.send('{"cid":"1","ping":{}}');
  const { code, reason } = await closed;
  assert.equal(code, 1000);
  assert.equal(reason, "received unexpected WebSocket message type");
});

test("tidings_inbox needs format=json; an unknown format is refused", async () => {
  const p = await player("pbx");
  const inbox = await rawSocket(server, `token=${p.session.token}&format=protobuf&tidings_inbox=true`);
  assert.equal(inbox.status, 400);
  assert.equal(inbox.body, "tidings_inbox and tidings_since need format=json");
  const other = await rawSocket(server, `token=${p.session.token}&format=xml`);
  assert.equal(other.status, 400);
  assert.equal(other.body, "Invalid format parameter");
});
