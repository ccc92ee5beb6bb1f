// Browser test of the chat room: two pages in headless Chromium, each on a different
// broadcaster-chat instance sharing one redis-server (redis-stream://, which keeps
// history); a message typed in one page appears in the other. Then the first page's
// instance is killed: the page reconnects through the front proxy (a load balancer's
// part) to the other instance, resumes after the last message it showed, and shows
// what was said meanwhile exactly once, in order. Leaves a screenshot in the
// artefact directory.
//
//   node chat_browser_test.mjs BROADCASTER_CHAT_BINARY ARTEFACT_DIR

import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const [chatBinary, artefactDir] = process.argv.slice(2);
const children = [];
const scratch = mkdtempSync(path.join(os.tmpdir(), "broadcaster-browser-"));

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

// Resolves once something accepts connections on the port (bounded wait).
async function listening(port, what) {
  for (let i = 0; i < 500; i++) {
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      socket.on("connect", () => { socket.destroy(); resolve(true); });
      socket.on("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${what} did not start on port ${port}`);
}

// A TCP front for the instances, as a load balancer would be: forwards each
// connection to `target`; while `closed`, drops connections at once.
function frontProxy() {
  const front = { target: 0, closed: false, sockets: new Set() };
  front.server = net.createServer((client) => {
    if (front.closed) { client.destroy(); return; }
    const upstream = net.connect(front.target, "127.0.0.1");
    for (const s of [client, upstream]) {
      front.sockets.add(s);
      s.on("close", () => front.sockets.delete(s));
      s.on("error", () => { client.destroy(); upstream.destroy(); });
    }
    client.pipe(upstream);
    upstream.pipe(client);
    upstream.on("close", () => client.destroy());
    client.on("close", () => upstream.destroy());
  });
  return front;
}

// The texts of the page's message list, in order.
async function messages(page) {
  return page.locator("#messages li").allTextContents();
}

function start(command, args) {
  const child = spawn(command, args, { stdio: ["ignore", "inherit", "inherit"] });
  children.push(child);
  return child;
}

async function main() {
  const redisPort = await freePort();
  start("redis-server", ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "",
                         "--appendonly", "no", "--dir", scratch]);
  await listening(redisPort, "redis-server");
  const url = `redis-stream://127.0.0.1:${redisPort}?reconnect_min_ms=20&reconnect_max_ms=200`;
  const ports = [await freePort(), await freePort()];
  const instances = [];
  for (const port of ports) {
    instances.push(start(chatBinary, ["--port", String(port), "--broadcast", url]));
    await listening(port, "broadcaster-chat");
  }
  const front = frontProxy();
  front.target = ports[0];
  const frontPort = await freePort();
  await new Promise((resolve) => front.server.listen(frontPort, "127.0.0.1", resolve));

  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage"],
  });
  try {
    const context = await browser.newContext();
    const [first, second] = [await context.newPage(), await context.newPage()];
    await first.goto(`http://127.0.0.1:${frontPort}/`);
    await second.goto(`http://127.0.0.1:${ports[1]}/`);
    // "online" means the WebSocket is open, and the server subscribes before it
    // accepts: both clients are in the room.
    await first.locator("#status.online").waitFor({ timeout: 10000 });
    await second.locator("#status.online").waitFor({ timeout: 10000 });

    const text = `hello from instance ${ports[0]} at ${Date.now()}`;
    await first.fill("#text", text);
    await first.press("#text", "Enter");
    await second.locator("#messages li", { hasText: text }).waitFor({ timeout: 10000 });
    await first.locator("#messages li", { hasText: text }).waitFor({ timeout: 10000 });
    console.log("ok: the message crossed instances");

    // The first page's instance dies; the front sends new connections to the other
    // one, but only once the second page has said three things.
    front.closed = true;
    front.target = ports[1];
    instances[0].kill("SIGKILL");
    await first.locator("#status.offline").waitFor({ timeout: 10000 });
    const missed = [1, 2, 3].map((i) => `said while the first page was away ${i}`);
    for (const m of missed) {
      await second.fill("#text", m);
      await second.press("#text", "Enter");
      await second.locator("#messages li", { hasText: m }).waitFor({ timeout: 10000 });
    }
    front.closed = false;
    await first.locator("#status.online").waitFor({ timeout: 30000 });
    await first.locator("#messages li", { hasText: missed[2] }).waitFor({ timeout: 10000 });
    const after = "after the reconnect";
    await second.fill("#text", after);
    await second.press("#text", "Enter");
    await first.locator("#messages li", { hasText: after }).waitFor({ timeout: 10000 });
    const shown = await messages(first);
    const expected = [text, ...missed, after];
    if (JSON.stringify(shown) !== JSON.stringify(expected)) {
      throw new Error(`the first page shows ${JSON.stringify(shown)}, ` +
                      `expected ${JSON.stringify(expected)}: a gap, a duplicate or a notice`);
    }
    console.log("ok: after its instance died, the page resumed on the other one with no gap " +
                "and no duplicate");

    mkdirSync(artefactDir, { recursive: true });
    const shot = path.join(artefactDir, "chat-browser.png");
    await first.screenshot({ path: shot });
    console.log(`screenshot ${shot}`);
  } finally {
    await browser.close();
  }
}

let status = 0;
try {
  await main();
} catch (error) {
  console.error(`FAIL: ${error.stack || error}`);
  status = 1;
} finally {
  for (const child of children) child.kill("SIGTERM");
  rmSync(scratch, { recursive: true, force: true });
}
process.exit(status);
