// Several nodes behind a load balancer, as the README's "Several nodes" walkthrough runs them:
// three server processes on one PostgreSQL schema, a plain round-robin TCP proxy in front
// (no sticky sessions), and nakama-js clients that only know the proxy's port. A player's
// socket, the RPC that notifies them and the REST calls that list their inbox land on
// whichever node the proxy picks; then a node is killed and its players carry on elsewhere.
//
// Needs PostgreSQL: TIDINGS_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/test),
// and `psql` to create the test's schema (scripts/postgres makes sure both exist).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { randomUUID } from "node:crypto";

import { startServer, makeClient, api, newDeviceId, newUsername, HOST } from "./server.mjs";

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), "modules");
const PG_URL = process.env.TIDINGS_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const HTTP_KEY = "defaulthttpkey";

/** psql from PATH, or from Debian's versioned directory when only the server is installed. */
function psql() {
  const onPath = spawnSync("psql", ["--version"]);
  if (onPath.status === 0) return "psql";
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => b - a) : [];
  const found = versions.map((v) => path.join(root, v, "bin", "psql")).find((p) => existsSync(p));
  assert.ok(found, "psql is needed to create the test's schema (install postgresql-client)");
  return found;
}

const nodes = [];
let proxy;
const placed = new Map(); // backend port -> connections the proxy sent there

/** A round-robin TCP proxy: each new connection goes to the next node. */
function startProxy(backends) {
  let next = 0;
  const server = net.createServer((down) => {
    const target = backends[next++ % backends.length];
    placed.set(target.port, (placed.get(target.port) ?? 0) + 1);
    const up = net.connect(target.port, HOST);
    const close = () => {
      down.destroy();
      up.destroy();
    };
    down.on("error", close);
    up.on("error", close);
    down.on("close", close);
    up.on("close", close);
    down.pipe(up);
    up.pipe(down);
  });
  return new Promise((resolve) => {
    server.listen(0, HOST, () => resolve({ server, port: server.address().port }));
  });
}

before(async () => {
  const schema = `t_${randomUUID().replaceAll("-", "")}`;
  const made = spawnSync(psql(), [PG_URL, "-qc", `CREATE SCHEMA ${schema}`], { encoding: "utf8" });
  assert.equal(made.status, 0, `psql could not create the schema: ${made.stderr}`);
  const url = `${PG_URL}${PG_URL.includes("?") ? "&" : "?"}options=-c%20search_path%3D${schema}`;
  for (const name of ["node1", "node2", "node3"]) {
    nodes.push(
      await startServer([
        "--database.url", url,
        "--name", name,
        "--runtime.path", FIXTURES,
        "--database.node_heartbeat_ms", "200",
        "--database.node_timeout_ms", "2000",
      ]),
    );
  }
  proxy = await startProxy(nodes);
});

after(async () => {
  proxy?.server.close();
  for (const node of nodes) await node.stop();
});

/** A player whose client (REST and socket) only knows `port`; notifications go to `inbox`. */
async function player(prefix, port) {
  const client = makeClient({ port }, { autoRefresh: false });
  const username = newUsername(prefix);
  const session = await client.authenticateDevice(newDeviceId(), true, username);
  const inbox = [];
  let disconnected = false;
  const connect = async (viaPort) => {
    const c = makeClient({ port: viaPort }, { autoRefresh: false });
    const socket = c.createSocket(false, false);
    socket.onnotification = (n) => inbox.push(n);
    socket.ondisconnect = () => {
      disconnected = true;
    };
    await socket.connect(session, true, 5000);
    return socket;
  };
  const socket = await connect(port);
  return { client, session, username, inbox, socket, connect, disconnected: () => disconnected };
}

async function until(what, check, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const send = (client, session, to, subject) =>
  client.rpc(session, "e2e.send", { user_id: to, subject, content: { n: subject }, code: 7, persistent: true });

test("behind a round-robin load balancer every player gets exactly what was sent to them", async () => {
  const players = [];
  for (let i = 0; i < 6; i++) players.push(await player(`lb${i}`, proxy.port));
  try {
    // The sockets really are spread over the nodes (every node answers for the cluster).
    const listed = await api(nodes[0], `/v2/console/cluster?http_key=${HTTP_KEY}`);
    assert.equal(listed.status, 200, listed.text);
    assert.deepEqual(listed.json.nodes.map((n) => n.name), ["node1", "node2", "node3"]);
    const withSockets = listed.json.nodes.filter((n) => n.sessions > 0).length;
    assert.ok(withSockets >= 2, `sockets on ${withSockets} node(s): ${listed.text}`);

    for (let i = 0; i < players.length; i++) {
      const from = players[i];
      const to = players[(i + 1) % players.length];
      await send(from.client, from.session, to.session.user_id, `from ${from.username}`);
    }
    for (let i = 0; i < players.length; i++) {
      const me = players[i];
      const sender = players[(i + players.length - 1) % players.length];
      await until(`${me.username}'s notification`, () => me.inbox.length >= 1);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(me.inbox.length, 1, "exactly once");
      assert.equal(me.inbox[0].subject, `from ${sender.username}`);
      assert.equal(me.inbox[0].persistent, true);
      const listedInbox = await me.client.listNotifications(me.session, 10);
      assert.deepEqual(listedInbox.notifications.map((n) => n.subject), [`from ${sender.username}`]);
    }
  } finally {
    for (const p of players) p.socket.disconnect(false);
  }
});

test("a killed node loses nothing: its player reconnects to another node and lists everything", async () => {
  const [one, two, three] = nodes;
  const victim = await player("victim", two.port);
  const sender = await player("sender", one.port);
  const to = victim.session.user_id;
  for (let i = 1; i <= 10; i++) await send(sender.client, sender.session, to, `n${i}`);
  await until("the first ten on node2", () => victim.inbox.length >= 10);

  await two.kill();
  await until("the socket on node2 to drop", () => victim.disconnected());
  for (let i = 11; i <= 20; i++) await send(sender.client, sender.session, to, `n${i}`);

  // Reconnect to another node, as a load balancer would route a new connection.
  const again = await victim.connect(three.port);
  try {
    const listed = await makeClient({ port: three.port }, { autoRefresh: false }).listNotifications(
      victim.session,
      100,
    );
    const subjects = listed.notifications.map((n) => n.subject).sort((a, b) => a.slice(1) - b.slice(1));
    assert.deepEqual(subjects, Array.from({ length: 20 }, (_, i) => `n${i + 1}`));

    // New sends reach the new socket, once.
    await send(sender.client, sender.session, to, "n21");
    await until("n21 on node3", () => victim.inbox.some((n) => n.subject === "n21"));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(victim.inbox.filter((n) => n.subject === "n21").length, 1);

    // The dead node drops out of the cluster once its heartbeat is older than the timeout.
    const deadline = Date.now() + 6000;
    let names = [];
    while (Date.now() < deadline) {
      const res = await api(one, `/v2/console/cluster?http_key=${HTTP_KEY}`);
      names = res.json.nodes.map((n) => n.name);
      if (!names.includes("node2")) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(names, ["node1", "node3"]);
  } finally {
    again.disconnect(false);
    sender.socket.disconnect(false);
  }
});
