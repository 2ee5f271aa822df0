// Routing and generic HTTP behaviour seen with raw fetch (NAKAMA-SPEC §1.2-1.4).
import { test } from "node:test";
import assert from "node:assert/strict";

import { useServer, makeClient, api, newDeviceId } from "./server.mjs";

const server = useServer();

test("GET /healthcheck is 200 {} without auth", async () => {
  const res = await api(server, "/healthcheck");
  assert.equal(res.status, 200);
  assert.deepEqual(res.json, {});
});

test("GET / is 200 with an empty body", async () => {
  const res = await api(server, "/");
  assert.equal(res.status, 200);
  assert.equal(res.text, "");
});

test("REST answers come gzip-compressed to a client that accepts it, as nakama-js's fetch does", async () => {
  // Node's fetch sends Accept-Encoding: gzip, deflate and inflates the answer itself.
  const client = makeClient(server, { autoRefresh: false });
  const session = await client.authenticateDevice(newDeviceId(), true);
  const res = await api(server, "/v2/notification?limit=1", { token: session.token });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-encoding"), "gzip");
  assert.equal(res.headers.get("vary"), "Accept-Encoding");
  // The body inflated to the JSON it was: an empty inbox with its cursor.
  assert.equal(res.json.notifications, undefined);
  assert.equal(typeof res.json.cacheable_cursor, "string");
  const list = await client.listNotifications(session, 10);
  assert.deepEqual(list.notifications ?? [], []);
});

test("an unknown path is 404 Not Found, before auth", async () => {
  const client = makeClient(server, { autoRefresh: false });
  const session = await client.authenticateDevice(newDeviceId(), true);
  for (const path of ["/v2/does-not-exist", "/nope", "/v2/notification/extra"]) {
    for (const token of [undefined, session.token]) {
      const res = await api(server, path, { token });
      assert.equal(res.status, 404, `${path} token=${Boolean(token)}: ${res.text}`);
      assert.deepEqual(res.json, { code: 5, message: "Not Found" });
    }
  }
});

test("CORS preflight is allowed for any origin", async () => {
  const res = await api(server, "/v2/notification", {
    method: "OPTIONS",
    headers: {
      Origin: "https://game.example",
      "Access-Control-Request-Method": "DELETE",
      "Access-Control-Request-Headers": "Authorization, Content-Type",
    },
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
});
