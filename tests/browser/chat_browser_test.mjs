// Browser test of the chat room: two pages in headless Chromium, each on a different
// broadcaster-chat instance sharing one redis-server; a message typed in one page
// appears in the other. Leaves a screenshot in the artefact directory.
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
  const url = `redis://127.0.0.1:${redisPort}`;
  const ports = [await freePort(), await freePort()];
  for (const port of ports) {
    start(chatBinary, ["--port", String(port), "--broadcast", url]);
    await listening(port, "broadcaster-chat");
  }

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
    await first.goto(`http://127.0.0.1:${ports[0]}/`);
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

    mkdirSync(artefactDir, { recursive: true });
    const shot = path.join(artefactDir, "chat-browser.png");
    await second.screenshot({ path: shot });
    console.log(`ok: the message crossed instances; screenshot ${shot}`);
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
