// End-to-end test support for Tidings, driven by the official nakama-js client.
//
// How to run (build the server first, from the repo root: `cargo build`):
//
//   cd tests/e2e && npm ci && TIDINGS_BIN=../../target/debug/tidings npm test
//
// `npm test` runs every ./*.test.mjs file with Node's built-in test runner, one file at a
// time. Each test file starts ONE fresh server (own temp data_dir, own free port) in a
// before() hook and kills it in after().
//
// Environment:
//   TIDINGS_BIN          path to the server binary; relative paths are resolved against the
//                        current directory. Default: ../../target/debug/tidings relative to
//                        this file.
//   TIDINGS_E2E_VERBOSE  set to 1 to copy the server's stdout/stderr to this process's stderr.
//
// The server is started as:
//   $TIDINGS_BIN --data_dir <fresh temp dir> --socket.address 127.0.0.1 --socket.port <free port> [extra args]
// and is considered up when GET /healthcheck answers 200. Unless the extra args name a
// --runtime.path (flow.test.mjs loads tests/e2e/modules), `--runtime.path <temp dir>/no-modules`
// is added: a directory that does not exist, so no Lua modules are loaded.
//
// Notes on nakama-js 2.8.0 under Node 20 (read from its dist/nakama-js.esm.mjs):
// - Node 20 has no global WebSocket; the client does `new WebSocket(url)`, so the `ws`
//   package is installed as globalThis.WebSocket below, before any socket is created.
// - Node 20 has a global fetch; the whatwg-fetch polyfill bundled into nakama-js only
//   installs itself when fetch is missing, so the client uses Node's fetch/Response.
// - Every REST call races fetch against an un-cleared setTimeout(timeout), and
//   socket.connect() arms an un-cleared 30 s timer; that is why package.json runs
//   `node --test --test-force-exit` (otherwise each file lingers until those timers fire).
// - A failed REST call rejects with the fetch Response itself (status >= 300); read its
//   body with httpError() below. A timed-out call rejects with the string "Request timed out.".
// - socket.ts's heartbeat failure path does `if (window && window.console)` unguarded, which
//   would throw a ReferenceError in Node and hide the real failure ("no pong"). A minimal
//   `window` shim is installed below so a heartbeat timeout surfaces as
//   socket.onheartbeattimeout() instead.

import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

import WebSocket from "ws";
import { Client } from "@heroiclabs/nakama-js";

if (typeof globalThis.WebSocket === "undefined") {
  globalThis.WebSocket = WebSocket;
}
if (typeof globalThis.window === "undefined") {
  globalThis.window = { console };
}

export { WebSocket };

export const SERVER_KEY = "defaultkey";
export const HOST = "127.0.0.1";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const STARTUP_TIMEOUT_MS = 20_000;
const POLL_INTERVAL_MS = 50;
const STOP_TIMEOUT_MS = 5_000;
const OUTPUT_KEEP_BYTES = 64 * 1024;

/** The server binary: $TIDINGS_BIN (resolved against cwd) or ../../target/debug/tidings next to this file. */
export function serverBinary() {
  const fromEnv = process.env.TIDINGS_BIN;
  return fromEnv ? path.resolve(process.cwd(), fromEnv) : path.resolve(HERE, "../../target/debug/tidings");
}

/** A TCP port that was free a moment ago (listen on 0, read it, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Start one server. Resolves once GET /healthcheck answers 200.
 * Returns { port, baseUrl, dataDir, output(), stop(), kill() }.
 */
export async function startServer(extraArgs = []) {
  const bin = serverBinary();
  if (!existsSync(bin)) {
    throw new Error(
      `Tidings binary not found at ${bin}. Build it (cargo build) or set TIDINGS_BIN.`,
    );
  }
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "tidings-e2e-"));
  const port = await freePort();
  const args = [
    "--data_dir", dataDir,
    "--socket.address", HOST,
    "--socket.port", String(port),
    // No Lua modules unless the test file asks for some: the default runtime.path ("modules",
    // relative to the working directory) would otherwise pick up tests/e2e/modules.
    ...(extraArgs.includes("--runtime.path") ? [] : ["--runtime.path", path.join(dataDir, "no-modules")]),
    ...extraArgs,
  ];
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });

  let output = "";
  const verbose = process.env.TIDINGS_E2E_VERBOSE === "1";
  const collect = (chunk) => {
    if (verbose) process.stderr.write(chunk);
    output += chunk.toString();
    if (output.length > OUTPUT_KEEP_BYTES) output = output.slice(-OUTPUT_KEEP_BYTES);
  };
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);

  let exited = null;
  let spawnError = null;
  const exitedPromise = new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
  });
  child.on("error", (err) => {
    spawnError = err;
  });
  // Never leave a server behind, even if the test process dies before after() runs.
  const killOnExit = () => {
    if (exited === null) child.kill("SIGKILL");
  };
  process.on("exit", killOnExit);

  const baseUrl = `http://${HOST}:${port}`;
  const describe = () =>
    `command: ${bin} ${args.join(" ")}\n--- server output (last ${OUTPUT_KEEP_BYTES} bytes) ---\n${output || "(none)"}`;

  async function stop() {
    process.off("exit", killOnExit);
    if (exited === null) {
      child.kill("SIGTERM");
      const timer = sleep(STOP_TIMEOUT_MS).then(() => "timeout");
      if ((await Promise.race([exitedPromise, timer])) === "timeout") {
        child.kill("SIGKILL");
        await exitedPromise;
      }
    }
    await rm(dataDir, { recursive: true, force: true });
  }

  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let lastProblem = "no answer yet";
  for (;;) {
    if (spawnError) {
      await stop();
      throw new Error(`Could not spawn the Tidings server: ${spawnError.message}\n${describe()}`);
    }
    if (exited !== null) {
      await stop();
      throw new Error(
        `Tidings server exited during startup (code ${exited.code}, signal ${exited.signal}).\n${describe()}`,
      );
    }
    try {
      const res = await fetch(`${baseUrl}/healthcheck`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
      lastProblem = `GET /healthcheck answered ${res.status}`;
    } catch (err) {
      lastProblem = `GET /healthcheck failed: ${err.cause?.code ?? err.message}`;
    }
    if (Date.now() > deadline) {
      const out = describe();
      await stop();
      throw new Error(
        `Tidings server did not become healthy within ${STARTUP_TIMEOUT_MS / 1000} s (${lastProblem}).\n${out}`,
      );
    }
    await sleep(POLL_INTERVAL_MS);
  }

  /** Ends the process at once (a crash): no shutdown code runs. */
  async function kill() {
    if (exited === null) {
      child.kill("SIGKILL");
      await exitedPromise;
    }
  }

  return { port, baseUrl, dataDir, output: () => output, stop, kill };
}

/**
 * Register before()/after() hooks on the current test file that start one server and stop it.
 * Returns a handle whose fields (port, baseUrl, ...) are filled in once before() has run.
 */
export function useServer(extraArgs = []) {
  const handle = {};
  before(async () => {
    Object.assign(handle, await startServer(extraArgs));
  });
  after(async () => {
    if (handle.stop) await handle.stop();
  });
  return handle;
}

/**
 * A nakama-js client for the server: new Client("defaultkey", "127.0.0.1", port, false).
 * Options:
 *   serverKey    default "defaultkey"
 *   autoRefresh  default true, as in nakama-js. With the server's default 60 s session tokens
 *                and the client's 5 min expiredTimespanMs, an auto-refreshing client calls
 *                POST /v2/account/session/refresh before EVERY authenticated call. Pass false
 *                where a test needs to see exactly what one call returns.
 *   timeoutMs    default 7000, as in nakama-js.
 */
export function makeClient(server, { serverKey = SERVER_KEY, autoRefresh = true, timeoutMs = 7000 } = {}) {
  return new Client(serverKey, HOST, server.port, false, timeoutMs, autoRefresh);
}

/**
 * A raw HTTP call. Returns { status, headers, text, json } where json is the parsed body
 * (undefined if the body is empty or not JSON).
 * opts: method, token (Bearer), basic (server key for Basic auth, password empty like
 * nakama-js), headers, body (object -> JSON, string -> as is).
 */
export async function api(server, urlPath, opts = {}) {
  const { method = "GET", token, basic, headers = {}, body } = opts;
  const h = { ...headers };
  if (token !== undefined) h["Authorization"] = `Bearer ${token}`;
  if (basic !== undefined) h["Authorization"] = "Basic " + Buffer.from(`${basic}:`).toString("base64");
  let payload;
  if (body !== undefined) {
    payload = typeof body === "string" ? body : JSON.stringify(body);
    if (!Object.keys(h).some((k) => k.toLowerCase() === "content-type")) h["Content-Type"] = "application/json";
  }
  const res = await fetch(server.baseUrl + urlPath, { method, headers: h, body: payload });
  const text = await res.text();
  let json;
  try {
    json = text === "" ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/**
 * Await a nakama-js promise that must reject with an HTTP error. nakama-js throws the fetch
 * Response for any status >= 300. Checks the status (and the exact JSON body when given) and
 * returns { status, headers, body }.
 */
export async function httpError(promise, expectedStatus, expectedBody) {
  let rejected = false;
  let value;
  try {
    value = await promise;
  } catch (err) {
    rejected = true;
    value = err;
  }
  assert.ok(rejected, `expected an HTTP ${expectedStatus} rejection, but the call resolved with ${JSON.stringify(value)}`);
  assert.ok(
    value instanceof Response,
    `expected nakama-js to reject with a fetch Response, got ${value instanceof Error ? value.stack : JSON.stringify(value)}`,
  );
  const text = await value.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`HTTP ${value.status} body is not JSON: ${JSON.stringify(text)}`);
  }
  assert.equal(value.status, expectedStatus, `status (body ${text})`);
  if (expectedBody !== undefined) assert.deepEqual(body, expectedBody);
  return { status: value.status, headers: value.headers, body };
}

/** Decode a JWT's header and payload (no signature check). */
export function decodeJwt(token) {
  const parts = token.split(".");
  assert.equal(parts.length, 3, `not a JWT: ${token}`);
  const dec = (s) => JSON.parse(Buffer.from(s, "base64url").toString("utf8"));
  return { header: dec(parts[0]), payload: dec(parts[1]) };
}

/** A fresh device id (well over the 10-byte minimum). */
export const newDeviceId = () => `device-${randomUUID()}`;

/** A fresh username (letters and digits only, under 128 bytes). */
export const newUsername = (prefix = "user") => `${prefix}${randomUUID().replaceAll("-", "").slice(0, 16)}`;

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Open a raw `ws` connection to /ws with the given query string (and optional headers), and
 * resolve with either { open: ws } or { status, body } when the server refuses the upgrade.
 */
export function rawSocket(server, query, headers = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${HOST}:${server.port}/ws${query ? "?" + query : ""}`, { headers });
    ws.once("open", () => resolve({ open: ws }));
    ws.once("unexpected-response", (req, res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body += c));
      res.on("end", () => {
        req.destroy();
        resolve({ status: res.statusCode, body });
      });
    });
    ws.on("error", reject); // a late error after resolve() is a no-op
  });
}

/** Wait for the next JSON text frame on a raw `ws` connection. */
export function nextFrame(ws, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.off("message", onMessage);
      reject(new Error(`no frame within ${timeoutMs} ms`));
    }, timeoutMs);
    function onMessage(data, isBinary) {
      clearTimeout(timer);
      if (isBinary) return reject(new Error("unexpected binary frame"));
      try {
        resolve(JSON.parse(data.toString()));
      } catch (err) {
        reject(err);
      }
    }
    ws.once("message", onMessage);
  });
}
