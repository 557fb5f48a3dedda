// What the browser tests stand on: a real `banter serve` on a free port with a data directory
// of its own, Debian's Chromium driven by playwright-core, a TCP proxy that can cut a
// browser's connections (a network drop), and waits that poll for a condition with a
// deadline (never a bare sleep).

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../..');
const BANTER = process.env.BANTER_BIN || path.join(repoRoot, 'target/debug/banter');
const CHROMIUM = process.env.BANTER_CHROMIUM || '/usr/bin/chromium';

/** Polls `check` until it returns a truthy value (returned) or `ms` pass (throws `what`). */
export async function until(what, check, ms = 15000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what} (last: ${last})`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts `banter serve` on 127.0.0.1:0 (or another role with `args`); resolves once it says
 * where it listens. `env` adds settings; `dataDir` shares another server's directory.
 */
export async function startServer({ args, env: extra = {}, dataDir: shared } = {}) {
  const dataDir = shared || mkdtempSync(path.join(os.tmpdir(), 'banter-browser-'));
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn,banter=info' };
  for (const k of ['DATABASE_URL', 'DB_HOST', 'KAFKA_BROKERS', 'BANTER_LISTEN', 'BANTER_WEB_DIR']) {
    delete env[k];
  }
  // The app's files from a directory instead of the binary; a relative one is the repository's
  // (`BANTER_TEST_WEB_DIR=web`), whatever directory the suite runs in.
  if (process.env.BANTER_TEST_WEB_DIR) env.BANTER_WEB_DIR = path.resolve(repoRoot, process.env.BANTER_TEST_WEB_DIR);
  Object.assign(env, extra);
  const argv = args || ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir];
  const child = spawn(BANTER, argv, {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`banter did not start:\n${log}`)), 30000);
    child.on('error', (e) => reject(new Error(`cannot run ${BANTER}: ${e.message}`)));
    child.on('exit', (code) => reject(new Error(`banter exited (${code}):\n${log}`)));
    child.stderr.on('data', (chunk) => {
      log += chunk;
      const m = /listening on (http:\/\/[0-9.:]+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
  return {
    base,
    dataDir,
    log: () => log,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      if (!shared) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Chromium, headless. As root it needs --no-sandbox (there is no user namespace to drop to). */
export async function launchBrowser() {
  const args = process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [];
  return chromium.launch({ executablePath: CHROMIUM, args, headless: true });
}

/** A server (started with `options`, see startServer) and a browser for one test, closed after it. */
export async function setUp(t, options) {
  const server = await startServer(options);
  const browser = await launchBrowser();
  t.after(async () => {
    await browser.close();
    await server.stop();
  });
  return { server, browser };
}

/**
 * A TCP proxy on 127.0.0.1:0 in front of `target` (host:port). `drop()` cuts every open
 * connection and refuses new ones until `restore()`: to the browser, a network drop.
 */
export async function startProxy(target) {
  const url = new URL(target);
  const sockets = new Set();
  let down = false;
  const server = net.createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = net.connect(Number(url.port), url.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    drop() {
      down = true;
      for (const s of sockets) s.destroy();
    },
    restore() {
      down = false;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(r));
    },
  };
}

/**
 * A fresh context (its own storage: one person), with page errors collected, and the
 * WebSocket frames its pages send and receive (`frames.sent`, `frames.received`, parsed).
 */
export async function person(browser, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('dialog', (d) => {
    errors.push(`a dialog opened: ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  const frames = { sent: [], received: [] };
  const parse = (payload) => { try { return JSON.parse(payload); } catch { return null; } };
  page.on('websocket', (ws) => {
    ws.on('framesent', (f) => frames.sent.push(parse(f.payload)));
    ws.on('framereceived', (f) => frames.received.push(parse(f.payload)));
  });
  return { context, page, errors, frames };
}

/** Registers `name` through the form, then logs in, and waits for the chat to connect. */
export async function signUp(page, base, name, password = 'password123') {
  await page.goto(base);
  await page.getByLabel('Username').fill(name);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Register' }).click();
  await connected(page);
}

/** Waits until the connection status says connected. */
export async function connected(page) {
  await until('the app to connect', async () =>
    (await page.locator('#conn-status').getAttribute('data-state')) === 'connected');
}

/** Opens (creates or joins) a room by name through the form. */
export async function openRoom(page, room) {
  await page.getByLabel('Room', { exact: true }).fill(room);
  await page.getByRole('button', { name: 'Join' }).click();
  await until(`room ${room} to be current`, async () =>
    (await page.locator(`nav[aria-label="Rooms"] [data-room="${room}"]`).getAttribute('aria-current')) === 'true');
}

/** Types a message in the composer and sends it with Enter. */
export async function say(page, text) {
  const box = page.getByLabel('Message', { exact: true });
  await box.fill(text);
  await box.press('Enter');
}

/** The bodies of the messages shown, in order. */
export async function bodies(page) {
  return page.locator('#message-list > li .body').allTextContents();
}

/** Waits until the message list shows exactly `want` (bodies, in order). */
export async function shows(page, want, ms = 15000) {
  let got;
  try {
    await until(`messages ${JSON.stringify(want)}`, async () => {
      got = await bodies(page);
      return JSON.stringify(got) === JSON.stringify(want);
    }, ms);
  } catch (e) {
    throw new Error(`${e.message}; the page shows ${JSON.stringify(got)}`);
  }
}

/** The message (an `li`) of `list` whose body contains `body`. */
export function message(page, body, list = '#message-list') {
  return page.locator(`${list} > li.msg`, { has: page.locator('.body', { hasText: body }) });
}

/** Picks `item` from a message's "More actions" menu. */
export async function menu(page, body, item, list) {
  const msg = message(page, body, list);
  await msg.hover();
  await msg.getByRole('button', { name: 'More actions' }).click();
  await page.getByRole('menuitem', { name: item }).click();
}

/** Edits an own message in place (its menu, then Enter). */
export async function editMessage(page, body, text, list) {
  await menu(page, body, 'Edit message', list);
  const box = message(page, body, list).getByRole('textbox', { name: 'Edit message' });
  await box.fill(text);
  await box.press('Enter');
}

/** Deletes an own message through its menu and the confirmation dialog. */
export async function deleteMessage(page, body) {
  await menu(page, body, 'Delete message');
  const dialog = page.getByRole('dialog', { name: 'Delete message' });
  await dialog.waitFor();
  await dialog.getByRole('button', { name: 'Delete' }).click();
}

/** Reacts to a message with the toolbar's picker. */
export async function react(page, body, emoji) {
  const msg = message(page, body);
  await msg.hover();
  await msg.getByRole('button', { name: 'Add reaction' }).click();
  await page.getByRole('button', { name: `React with ${emoji}` }).click();
}

/** Replies to a message in its thread panel, with the panel's own composer. */
export async function reply(page, body, text) {
  const msg = message(page, body);
  await msg.hover();
  await msg.getByRole('button', { name: 'Reply in thread' }).click();
  const box = page.getByRole('textbox', { name: 'Reply' });
  await box.fill(text);
  await box.press('Enter');
}

/**
 * Sends `bodies` to `room` as `user` over a WebSocket of its own in the page (faster than
 * typing), in order; resolves to their cursors once every one is acked. Each call's
 * client_ids are its own (the server answers a client_id it has stored with that message).
 */
export function blast(page, user, room, bodies) {
  return page.evaluate(({ user, room, bodies }) => new Promise((resolve, reject) => {
    const { token } = JSON.parse(localStorage.getItem(`banter.session.${user}`));
    const ws = new WebSocket(`ws://${location.host}/ws?token=${encodeURIComponent(token)}`);
    const cursors = new Array(bodies.length);
    const prefix = `blast-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}-`;
    let acked = 0;
    const deadline = setTimeout(() => { ws.close(); reject(new Error(`${acked} of ${bodies.length} acked`)); }, 30000);
    ws.onmessage = (e) => {
      const f = JSON.parse(e.data);
      if (f.type === 'joined' && f.room === room) {
        bodies.forEach((body, i) => ws.send(JSON.stringify({ type: 'send', room, body, client_id: `${prefix}${i}` })));
      } else if (f.type === 'ack' && String(f.client_id).startsWith(prefix)) {
        cursors[Number(f.client_id.slice(prefix.length))] = f.cursor;
        if (++acked === bodies.length) { clearTimeout(deadline); ws.close(); resolve(cursors); }
      } else if (f.type === 'error') {
        clearTimeout(deadline);
        ws.close();
        reject(new Error(JSON.stringify(f)));
      }
    };
    ws.onopen = () => ws.send(JSON.stringify({ type: 'join', room }));
  }), { user, room, bodies });
}

/**
 * Records the desktop notifications (`window.__notify.shown`: title, body, tag and the
 * Notification itself as `n`) and chimes (`window.__notify.chimes`, oscillators started) of
 * every page of `context`.
 */
export function spyOnNotifications(context) {
  return context.addInitScript(() => {
    const Real = window.Notification;
    const spy = { shown: [], chimes: 0 };
    window.__notify = spy;
    if (Real) {
      window.Notification = class extends Real {
        constructor(title, options = {}) {
          super(title, options);
          spy.shown.push({ title, body: options.body, tag: options.tag, n: this });
        }
      };
    }
    if (window.OscillatorNode) {
      const start = OscillatorNode.prototype.start;
      OscillatorNode.prototype.start = function (...args) { spy.chimes++; return start.apply(this, args); };
    }
  });
}

/** Logs in through the sign-in form (the page shows it), and waits for the chat to connect. */
export async function logIn(page, name, password = 'password123') {
  await page.getByLabel('Username').fill(name);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await connected(page);
}

/** Whether `locator`'s element has the keyboard focus. */
export function hasFocus(locator) {
  return locator.evaluate((el) => el === document.activeElement);
}

/**
 * Presses Tab (Shift+Tab with `back`) until `locator`'s element has the focus, as someone
 * with only a keyboard would; fails after `max` presses.
 */
export async function tabTo(page, locator, { back = false, max = 60 } = {}) {
  for (let i = 0; i <= max; i++) {
    if (await hasFocus(locator).catch(() => false)) return;
    await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
  }
  throw new Error(`${max} presses of Tab did not reach ${locator}`);
}

/** The focused element's outline, to check that keyboard focus is visible. */
export function focusOutline(page) {
  return page.evaluate(() => {
    const s = getComputedStyle(document.activeElement);
    return { style: s.outlineStyle, width: parseFloat(s.outlineWidth) || 0 };
  });
}
