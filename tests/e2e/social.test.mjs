// The notifications the server sends by itself (NAKAMA-SPEC §6), seen by nakama-js 2.8.0:
// -1 direct chat request (socket.joinChat), -2/-3/-9 friends (addFriends, deleteFriends,
// blockFriends), -4/-5 groups (joinGroup on a closed group, addGroupUsers), -6 a social
// friend import (admin route), -7 single_socket (a second server with
// --session.single_socket true) and -8 a ban (admin route). Each is checked for code,
// subject, content, sender and persistence, and stored ones for being listed afterwards.
import { test } from "node:test";
import assert from "node:assert/strict";

import { useServer, makeClient, api, httpError, newDeviceId, newUsername } from "./server.mjs";

const server = useServer();
const singleSocket = useServer(["--session.single_socket", "true"]);
const HTTP_KEY = "defaulthttpkey";

/** A player with a connected socket whose notifications are collected in `inbox`. */
async function player(prefix, on = server) {
  const client = makeClient(on, { autoRefresh: false });
  const username = newUsername(prefix);
  const deviceId = newDeviceId();
  const session = await client.authenticateDevice(deviceId, true, username);
  const socket = client.createSocket(false, false);
  const inbox = [];
  const waiters = [];
  socket.onnotification = (n) => {
    inbox.push(n);
    waiters.splice(0).forEach((w) => w());
  };
  let disconnected = null;
  socket.ondisconnect = (evt) => {
    disconnected = evt;
    waiters.splice(0).forEach((w) => w());
  };
  await socket.connect(session, true, 5000);
  /** Resolves with the next notification (after `count` seen), or fails after 3 s. */
  const nth = async (count) => {
    const deadline = Date.now() + 3000;
    while (inbox.length < count) {
      if (Date.now() > deadline) throw new Error(`${username}: no notification #${count}`);
      await new Promise((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
    return inbox[count - 1];
  };
  return { client, session, socket, username, deviceId, inbox, nth, disconnected: () => disconnected };
}

const quiet = (ms = 200) => new Promise((r) => setTimeout(r, ms));

test("friend invite, accept and removal arrive as -2, -3 and -9 and are listed", async () => {
  const alice = await player("alice");
  const bob = await player("bob");
  try {
    assert.equal(await alice.client.addFriends(alice.session, [bob.session.user_id]), true);
    const invite = await bob.nth(1);
    assert.equal(invite.code, -2);
    assert.equal(invite.subject, `${alice.username} wants to add you as a friend`);
    assert.deepEqual(invite.content, { username: alice.username });
    assert.equal(invite.sender_id, alice.session.user_id);
    assert.equal(invite.persistent, true);

    const bobView = await bob.client.listFriends(bob.session);
    assert.equal(bobView.friends.length, 1);
    assert.equal(bobView.friends[0].state, 2, "invite received");
    assert.equal(bobView.friends[0].user.username, alice.username);

    await bob.client.addFriends(bob.session, undefined, [alice.username]);
    const accepted = await alice.nth(1);
    assert.equal(accepted.code, -3);
    assert.equal(accepted.subject, `${bob.username} accepted your friend request`);
    assert.deepEqual(accepted.content, { username: bob.username });
    assert.equal(accepted.sender_id, bob.session.user_id);

    const friends = await alice.client.listFriends(alice.session, 0);
    assert.equal(friends.friends.length, 1);
    assert.equal(friends.friends[0].state, 0, "state 0 is written for friends");
    assert.equal(friends.friends[0].user.id, bob.session.user_id);
    assert.equal(friends.friends[0].user.online, true);

    await alice.client.deleteFriends(alice.session, [bob.session.user_id]);
    const removed = await bob.nth(2);
    assert.equal(removed.code, -9);
    assert.equal(removed.subject, `${alice.username} removed you as a friend`);
    assert.deepEqual(removed.content, { username: alice.username });
    assert.deepEqual((await bob.client.listFriends(bob.session)).friends, [], "empty list");

    // All three were stored: Bob lists -2 and -9, Alice -3.
    const bobList = await bob.client.listNotifications(bob.session, 10);
    assert.deepEqual(bobList.notifications.map((n) => n.code), [-2, -9]);
    const aliceList = await alice.client.listNotifications(alice.session, 10);
    assert.deepEqual(aliceList.notifications.map((n) => n.code), [-3]);
  } finally {
    alice.socket.disconnect(false);
    bob.socket.disconnect(false);
  }
});

test("a blocked user's invite notifies nobody; bad friend requests are rejected", async () => {
  const carol = await player("carol");
  const dave = await player("dave");
  try {
    await carol.client.blockFriends(carol.session, [dave.session.user_id]);
    await dave.client.addFriends(dave.session, [carol.session.user_id]);
    await quiet();
    assert.equal(carol.inbox.length, 0);
    const blocked = await carol.client.listFriends(carol.session, 3);
    assert.equal(blocked.friends[0].user.id, dave.session.user_id);

    await httpError(carol.client.addFriends(carol.session, [carol.session.user_id]), 400, {
      code: 3,
      message: "Cannot add self as friend.",
    });
    await httpError(carol.client.addFriends(carol.session, undefined, ["nobody-here"]), 400, {
      code: 3,
      message: "No valid ID or username was provided.",
    });
    await quiet();
    assert.equal(dave.inbox.length, 0, "no notification on a rejected action");
  } finally {
    carol.socket.disconnect(false);
    dave.socket.disconnect(false);
  }
});

test("a ban sends -8, closes the socket and refuses the account", async () => {
  const eve = await player("eve");
  try {
    const res = await api(server, `/v2/console/account/${eve.session.user_id}/ban?http_key=${HTTP_KEY}`, {
      method: "POST",
    });
    assert.equal(res.status, 200, res.text);
    const banned = await eve.nth(1);
    assert.equal(banned.code, -8);
    assert.equal(banned.subject, "banned");
    assert.deepEqual(banned.content, {});
    assert.equal(banned.sender_id, undefined);
    assert.equal(banned.persistent, undefined);
    const deadline = Date.now() + 3000;
    while (!eve.disconnected() && Date.now() < deadline) await quiet(20);
    assert.ok(eve.disconnected(), "the socket was closed");
    await httpError(eve.client.getAccount(eve.session), 401);
    await httpError(eve.client.authenticateDevice(eve.deviceId, false), 403, {
      code: 7,
      message: "User account banned.",
    });
  } finally {
    eve.socket.disconnect(false);
  }
});

test("joining a direct chat sends -1; messages and history reach nakama-js", async () => {
  const fay = await player("fay");
  const gus = await player("gus");
  try {
    const channel = await fay.socket.joinChat(gus.session.user_id, 2, true, false);
    const ids = [fay.session.user_id, gus.session.user_id].sort();
    assert.equal(channel.id, `4.${ids[0]}.${ids[1]}.`);
    assert.equal(channel.self.user_id, fay.session.user_id);

    const request = await gus.nth(1);
    assert.equal(request.code, -1);
    assert.equal(request.subject, `${fay.username} wants to chat`);
    assert.deepEqual(request.content, { username: fay.username });
    assert.equal(request.sender_id, fay.session.user_id);
    assert.equal(request.persistent, true);

    const received = new Promise((resolve) => {
      gus.socket.onchannelmessage = resolve;
    });
    const joined = await gus.socket.joinChat(fay.session.user_id, 2, true, false);
    assert.equal(joined.id, channel.id);
    assert.equal(joined.presences[0].user_id, fay.session.user_id);
    await quiet();
    assert.equal(fay.inbox.length, 0, "no -1 when the other user is already in the channel");

    const ack = await fay.socket.writeChatMessage(channel.id, { text: "hello" });
    assert.equal(ack.channel_id, channel.id);
    const message = await received;
    assert.equal(message.message_id, ack.message_id);
    assert.deepEqual(message.content, { text: "hello" });
    assert.equal(message.sender_id, fay.session.user_id);

    const history = await gus.client.listChannelMessages(gus.session, channel.id, 10, true);
    assert.equal(history.messages.length, 1);
    assert.deepEqual(history.messages[0].content, { text: "hello" });
    await gus.socket.leaveChat(channel.id);
  } finally {
    fay.socket.disconnect(false);
    gus.socket.disconnect(false);
  }
});

test("a closed group's join request (-5) and the add (-4) reach nakama-js", async () => {
  const owner = await player("owner");
  const hopeful = await player("hopeful");
  try {
    const name = newUsername("guild");
    const group = await owner.client.createGroup(owner.session, { name, open: false, max_count: 10 });
    assert.equal(group.name, name);
    assert.equal(group.open, false);
    assert.equal(group.edge_count, 1);

    assert.equal(await hopeful.client.joinGroup(hopeful.session, group.id), true);
    const request = await owner.nth(1);
    assert.equal(request.code, -5);
    assert.equal(request.subject, `User ${hopeful.username} wants to join your group`);
    assert.deepEqual(request.content, { group_id: group.id, username: hopeful.username });
    assert.equal(request.sender_id, hopeful.session.user_id);
    assert.equal(request.persistent, true);

    const pending = await owner.client.listGroupUsers(owner.session, group.id, 3);
    assert.equal(pending.group_users.length, 1);
    assert.equal(pending.group_users[0].user.id, hopeful.session.user_id);

    await owner.client.addGroupUsers(owner.session, group.id, [hopeful.session.user_id]);
    const added = await hopeful.nth(1);
    assert.equal(added.code, -4);
    assert.equal(added.subject, `You've been added to group ${name}`);
    assert.deepEqual(added.content, { group_id: group.id, name });
    assert.equal(added.sender_id, owner.session.user_id);

    const mine = await hopeful.client.listUserGroups(hopeful.session, hopeful.session.user_id);
    assert.equal(mine.user_groups[0].group.id, group.id);
    assert.equal(mine.user_groups[0].state, 2);
  } finally {
    owner.socket.disconnect(false);
    hopeful.socket.disconnect(false);
  }
});

test("a social friend import sends -6 to the friend who already plays", async () => {
  const early = await player("early");
  const newcomer = await player("newcomer");
  try {
    const importFriends = (who, body) =>
      api(server, `/v2/console/account/${who}/import_friends?http_key=${HTTP_KEY}`, { method: "POST", body });
    let res = await importFriends(early.session.user_id, { provider: "steam", social_id: `st-${early.username}`, friend_ids: [] });
    assert.equal(res.status, 200, res.text);
    res = await importFriends(newcomer.session.user_id, {
      provider: "steam",
      social_id: `st-${newcomer.username}`,
      friend_ids: [`st-${early.username}`],
    });
    assert.equal(res.status, 200, res.text);
    const joined = await early.nth(1);
    assert.equal(joined.code, -6);
    assert.equal(joined.subject, "Your friend has just joined the game");
    assert.deepEqual(joined.content, { username: newcomer.username });
    assert.equal(joined.sender_id, newcomer.session.user_id);
    assert.equal(joined.persistent, true);
    const friends = await early.client.listFriends(early.session, 0);
    assert.equal(friends.friends[0].user.id, newcomer.session.user_id);
  } finally {
    early.socket.disconnect(false);
    newcomer.socket.disconnect(false);
  }
});

test("with single_socket, a second socket ends the first with -7", async () => {
  const first = await player("solo", singleSocket);
  try {
    const second = first.client.createSocket(false, false);
    await second.connect(first.session, true, 5000);
    try {
      const kicked = await first.nth(1);
      assert.equal(kicked.code, -7);
      assert.equal(kicked.subject, "single_socket");
      assert.deepEqual(kicked.content, {});
      assert.equal(kicked.sender_id, undefined);
      assert.equal(kicked.persistent, undefined);
      const deadline = Date.now() + 3000;
      while (!first.disconnected() && Date.now() < deadline) await quiet(20);
      assert.ok(first.disconnected(), "the older socket was closed");
      const reply = await second.send({ ping: {} });
      assert.deepEqual(reply.pong, {}, "the newer socket stays");
    } finally {
      second.disconnect(false);
    }
  } finally {
    first.socket.disconnect(false);
  }
});
