// The inbox extension next to a stock nakama-js 2.8.0 client: a socket opened with
// tidings_inbox=true receives `tidings_inbox` frames (stored, read), while the nakama-js socket of
// the same player, which did not ask, receives exactly Nakama's frames — every message its
// underlying WebSocket gets is recorded and checked. The extension routes work with the
// player's nakama-js session token.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { useServer, makeClient, api, rawSocket, newDeviceId, WebSocket } from "./server.mjs";

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), "modules");
const server = useServer(["--runtime.path", FIXTURES]);

// Record what every WebSocket nakama-js creates receives.
const received = [];
class RecordingWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (event) => received.push(String(event.data)));
  }
}
globalThis.WebSocket = RecordingWebSocket;

test("inbox frames reach the socket that asked, never the nakama-js one", async () => {
  const client = makeClient(server, { autoRefresh: false });
  const session = await client.authenticateDevice(newDeviceId(), true);
  const socket = client.createSocket(false, false);
  const pushed = [];
  socket.onnotification = (n) => pushed.push(n);
  await socket.connect(session, true, 5000);
  const opened = await rawSocket(server, `token=${session.token}&tidings_inbox=true`);
  const follower = opened.open;
  assert.ok(follower, `the opted-in socket opened: ${JSON.stringify(opened)}`);
  // Frames arrive while the test awaits other calls: keep them all, take them in order.
  const frames = [];
  follower.on("message", (data) => frames.push(JSON.parse(data.toString())));
  const nextFrame = async () => {
    const deadline = Date.now() + 5000;
    while (frames.length === 0) {
      if (Date.now() > deadline) assert.fail("no frame on the opted-in socket within 5 s");
      await new Promise((r) => setTimeout(r, 10));
    }
    return frames.shift();
  };
  try {
    await client.rpc(session, "e2e.send", {
      user_id: session.user_id,
      subject: "mail",
      content: { n: 1 },
      code: 5,
      persistent: true,
    });
    const frame = await nextFrame();
    assert.equal(frame.notifications.notifications[0].subject, "mail");
    const stored = await nextFrame();
    assert.deepEqual(
      { change: stored.tidings_inbox.change, unread: stored.tidings_inbox.unread },
      { change: "stored", unread: 1 },
    );
    const id = frame.notifications.notifications[0].id;

    const read = await api(server, "/v2/tidings/inbox/read", {
      method: "POST",
      token: session.token,
      body: { ids: [id] },
    });
    assert.equal(read.status, 200, read.text);
    assert.equal(read.json.unread, 0);
    const change = await nextFrame();
    assert.deepEqual(change.tidings_inbox.ids, [id]);
    assert.equal(change.tidings_inbox.change, "read");

    // The nakama-js socket saw the notification and nothing of the extension.
    assert.equal(pushed.length, 1);
    assert.equal(pushed[0].subject, "mail");
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(received.some((m) => m.includes('"notifications"')), "nakama-js got the push");
    assert.ok(!received.some((m) => m.includes("tidings_inbox")), received.join("\n"));

    // nakama-js lists exactly as before.
    const listed = await client.listNotifications(session, 10);
    assert.deepEqual(listed.notifications.map((n) => n.subject), ["mail"]);
    assert.equal(listed.notifications[0].read, undefined);
  } finally {
    follower.close();
    socket.disconnect(false);
  }
});
