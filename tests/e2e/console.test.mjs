// The admin console in a real headless browser (Debian's chromium, driven by playwright-core):
// log in, find a player, send them a notification from the form, see it arrive on their
// nakama-js socket, see it in their inbox as unread, delete it. A screenshot of the console is
// kept in tests/e2e/artifacts/console.png.
//
// The browser: $CHROMIUM, else /usr/bin/chromium (`apt-get install chromium`; .ci/run installs
// it when absent). npm cannot download browsers here.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

import { startServer, freePort, makeClient, newDeviceId, newUsername, HOST } from "./server.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = path.join(HERE, "artifacts");
const BROWSER = process.env.CHROMIUM || "/usr/bin/chromium";
const PASSWORD = "console-test-password";

let server;
let consoleUrl;
let browser;

before(async () => {
  const port = await freePort();
  server = await startServer([
    "--console.address", HOST,
    "--console.port", String(port),
    "--console.password", PASSWORD,
  ]);
  consoleUrl = `http://${HOST}:${port}/`;
  assert.ok(existsSync(BROWSER), `no browser at ${BROWSER}: apt-get install chromium, or set CHROMIUM`);
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start. The rest keep
  // Chromium from calling home (this machine reaches nothing but its own loopback).
  browser = await chromium.launch({
    executablePath: BROWSER,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("an operator logs in, sends a notification from the console, the player's socket gets it", async () => {
  // The player, online with nakama-js.
  const client = makeClient(server, { autoRefresh: false });
  const username = newUsername("console");
  const session = await client.authenticateDevice(newDeviceId(), true, username);
  const socket = client.createSocket(false, false);
  const received = [];
  let arrived;
  const arrival = new Promise((resolve) => {
    arrived = resolve;
  });
  socket.onnotification = (n) => {
    received.push(n);
    arrived();
  };
  await socket.connect(session, false, 5000);
  assert.deepEqual((await socket.send({ ping: {} })).pong, {});

  const page = await browser.newPage();
  page.on("dialog", (dialog) => dialog.accept());
  await page.goto(consoleUrl);

  // A wrong password is refused and the login form stays.
  let alerted = "";
  page.once("dialog", (d) => {
    alerted = d.message();
  });
  await page.getByLabel("Username", { exact: true }).fill("admin");
  await page.getByLabel("Password", { exact: true }).fill("wrong");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForFunction(() => !document.querySelector("#login-view").hidden);
  await assert.doesNotReject(page.getByRole("heading", { name: "Log in" }).waitFor());
  await waitUntil(() => alerted !== "");
  assert.equal(alerted, "Invalid credentials.");

  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("heading", { name: "Send a notification" }).waitFor();

  // Find the player and pick them for the send form.
  await page.getByLabel(/Username prefix/).fill(username);
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("button", { name: `Send to ${username}` }).click();
  assert.equal(await page.getByLabel("Player id").inputValue(), session.user_id);

  await page.getByLabel("Subject").fill("Season 3 starts now");
  await page.getByLabel("Content (a JSON object)").fill('{"season":3}');
  await page.getByLabel("Code").fill("42");
  await page.getByRole("button", { name: "Send", exact: true }).click();

  await Promise.race([arrival, sleep(5000).then(() => assert.fail("no notification on the socket"))]);
  assert.equal(received.length, 1);
  assert.equal(received[0].subject, "Season 3 starts now");
  assert.equal(received[0].code, 42);
  assert.deepEqual(received[0].content, { season: 3 });
  assert.equal(received[0].persistent, true);
  await page.getByText(`Sent to ${session.user_id}.`).waitFor();

  // Its inbox, with read state; and the live view lists the player's socket.
  await page.getByRole("button", { name: `Inbox of ${username}` }).click();
  const row = page.locator("#inbox tbody tr", { hasText: "Season 3 starts now" });
  await row.waitFor();
  assert.match(await row.innerText(), /unread/);
  await page.getByRole("button", { name: "Refresh" }).click();
  await page.locator("#sockets tbody tr", { hasText: username }).waitFor();

  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, "console.png"), fullPage: true });

  // Delete it from the console: gone from the player's list too.
  await page.getByRole("button", { name: "Delete Season 3 starts now" }).click();
  await page.getByText("Deleted 1 notification(s).").waitFor();
  const list = await client.listNotifications(session, 10);
  assert.deepEqual(list.notifications, []);

  socket.disconnect(false);
  await page.close();
});

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitUntil(check, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail("condition not met in time");
    await sleep(20);
  }
}
