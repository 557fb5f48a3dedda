// Notifications in a real Chromium against a real `banter serve`: the settings panel (asks
// the browser's permission only on a click), Web Push end to end through a stand-in push
// service that verifies the server's VAPID token and decrypts its RFC 8291 payload, the
// service worker's notification and what its click opens, and, while the tab is hidden, the
// title's count, desktop notifications and the chime for direct messages and mentions.
//
// Chromium here cannot reach a real push service (PushManager.subscribe needs Google's), so
// the tests stub subscribe/getSubscription with a subscription whose keys the test made and
// whose endpoint is the stand-in; push events reach the real service worker over CDP
// (ServiceWorker.deliverPushMessage).

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { blast, connected, person, repoRoot, setUp, shows, signUp, spyOnNotifications, until } from './harness.mjs';

const shots = process.env.BANTER_SCREENSHOTS
  ? path.join(repoRoot, 'docs/screenshots')
  : path.join(os.tmpdir(), 'banter-screenshots');

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** The sidebar's entry of `room`. */
const nav = (page, room) => page.locator(`nav[aria-label="Rooms"] [data-room="${room}"]`);

/** Waits until `room` is the room on screen. */
const isCurrent = (page, room) => until(`${room} to be current`, async () =>
  (await nav(page, room).getAttribute('aria-current')) === 'true');

/** A subscription's key pair and auth secret, as a browser would make them (RFC 8291). */
function subscriptionKeys() {
  const ecdh = crypto.createECDH('prime256v1');
  ecdh.generateKeys();
  const auth = crypto.randomBytes(16);
  return { ecdh, auth, p256dh: b64url(ecdh.getPublicKey()), authText: b64url(auth) };
}

/**
 * Replaces PushManager's subscribe and getSubscription in the context's pages with a
 * subscription to `endpoint` with `keys` (Chromium here cannot reach a real push service).
 * What subscribe was given is kept in `window.__pushStub.calls`.
 */
async function stubPush(context, endpoint, keys) {
  await context.addInitScript(({ endpoint, p256dh, auth }) => {
    if (!('PushManager' in window)) return;
    const flag = 'test.push.subscribed';
    const stub = { calls: [], unsubscribed: 0 };
    window.__pushStub = stub;
    const subscribed = () => { try { return localStorage.getItem(flag) === '1'; } catch { return false; } };
    const set = (on) => { try { if (on) localStorage.setItem(flag, '1'); else localStorage.removeItem(flag); } catch { /* about:blank */ } };
    const subscription = () => ({
      endpoint,
      expirationTime: null,
      options: null,
      toJSON: () => ({ endpoint, expirationTime: null, keys: { p256dh, auth } }),
      unsubscribe: async () => { stub.unsubscribed++; set(false); return true; },
    });
    PushManager.prototype.subscribe = async function subscribe(options) {
      const key = options.applicationServerKey;
      stub.calls.push({ userVisibleOnly: options.userVisibleOnly, key: Array.from(new Uint8Array(key.buffer || key)) });
      set(true);
      return subscription();
    };
    PushManager.prototype.getSubscription = async function getSubscription() {
      return subscribed() ? subscription() : null;
    };
  }, { endpoint, p256dh: keys.p256dh, auth: keys.authText });
}

/**
 * Watches the context's service worker registrations over CDP (on `page`'s session); resolves
 * to {cdp, registrationId(scope)} where registrationId waits for the scope's registration.
 */
async function serviceWorkers(context, page) {
  const cdp = await context.newCDPSession(page);
  const registrations = new Map();
  cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations: list }) => {
    for (const r of list) {
      if (r.isDeleted) registrations.delete(r.scopeURL);
      else registrations.set(r.scopeURL, r.registrationId);
    }
  });
  await cdp.send('ServiceWorker.enable');
  return {
    cdp,
    registrationId: (scope) => until(`the service worker of ${scope}`, () => registrations.get(scope)),
  };
}

/** Delivers a push event with `payload` (JSON) to the origin's service worker. */
async function deliverPush(sw, base, payload) {
  const registrationId = await sw.registrationId(`${base}/`);
  await sw.cdp.send('ServiceWorker.deliverPushMessage', {
    origin: base, registrationId, data: JSON.stringify(payload),
  });
}

/**
 * Delivers `payload` until `shown()` holds: Chromium may stop the service worker and start
 * another at any moment, and a push that lands on the one being stopped is lost (a real push
 * service delivers again too). A notification's tag is its room's, so a second delivery
 * replaces the first.
 */
async function deliverUntil(what, sw, base, payload, shown) {
  let lastTry = 0;
  return until(what, async () => {
    if (Date.now() - lastTry > 3000) { lastTry = Date.now(); await deliverPush(sw, base, payload); }
    return shown();
  });
}

/** The notifications the service worker shows, seen from a page of the origin. */
function notificationsOf(page) {
  return page.evaluate(async () => {
    const reg = await navigator.serviceWorker.getRegistration('/');
    if (!reg) return [];
    return (await reg.getNotifications()).map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data }));
  });
}

/** The app's service worker (a playwright Worker), once it runs. */
const appWorker = (context, base) => until('the service worker to run', () =>
  context.serviceWorkers().filter((w) => w.url() === `${base}/sw.js`).pop());

/** Clicks the service worker's first notification, as a person would (in the worker). */
function clickNotification(worker) {
  return worker.evaluate(async () => {
    const [n] = await self.registration.getNotifications();
    if (!n) throw new Error('no notification to click');
    self.dispatchEvent(new NotificationEvent('notificationclick', { notification: n }));
    return n.title;
  });
}

/** Opens the notifications panel from the sidebar (through the menu on a phone). */
async function openSettings(page) {
  const menu = page.getByRole('button', { name: 'Menu' });
  if (await menu.isVisible()) await menu.click();
  await page.getByRole('button', { name: 'Notifications' }).click();
  const dialog = page.getByRole('dialog', { name: 'Notifications' });
  await dialog.waitFor();
  return dialog;
}

/** Switches push on in the panel like a person, and waits until it says it is on. */
async function switchPushOn(page) {
  const dialog = await openSettings(page);
  const push = dialog.getByRole('checkbox', { name: /Push notifications when I’m away/ });
  await until('the push option to be ready', async () => !(await push.isDisabled()));
  await push.check();
  await until('push to be on', async () => /On for this browser/.test(await page.locator('#notify-push-note').innerText()));
  assert.equal(await push.isChecked(), true);
  return dialog;
}

/** Calls the API from Node as `token`'s user: {status, body}. */
async function apiCall(base, method, path, token, body) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(`${base}/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let json = null;
  try { json = await r.json(); } catch { /* no body */ }
  return { status: r.status, body: json };
}

/** Registers `name` over HTTP and returns an access token. */
async function tokenFor(base, name, password = 'password123') {
  const reg = await apiCall(base, 'POST', '/register', null, { username: name, password });
  assert.ok(reg.status < 300, `register ${name}: ${JSON.stringify(reg)}`);
  const login = await apiCall(base, 'POST', '/login', null, { username: name, password });
  assert.equal(login.status, 200, `login ${name}: ${JSON.stringify(login)}`);
  return login.body.data.token;
}

/**
 * A stand-in push service on 127.0.0.1: it answers 201 to every POST and keeps what came
 * ({path, headers, body}); `next(path)` waits for the next one to `path` not yet taken.
 */
async function startPushService() {
  const received = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      received.push({ method: req.method, path: req.url, headers: req.headers, body: Buffer.concat(chunks), taken: false });
      res.writeHead(201, { Location: `${req.url}/message` });
      res.end();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    received,
    to: (p) => received.filter((r) => r.path === p),
    next: (p, ms) => until(`a push to ${p}`, () => {
      const r = received.find((x) => x.path === p && !x.taken);
      if (r) r.taken = true;
      return r;
    }, ms),
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }),
  };
}

/**
 * Checks a push request as a push service would (RFC 8292: the VAPID JWT, ES256 over the
 * server's key, audience this origin, expiry within a day; RFC 8030 headers) and decrypts its
 * body as the browser would (RFC 8291 aes128gcm with the subscription's keys). Returns the
 * payload, parsed.
 */
function verifyAndDecrypt(req, { origin, serverKey, keys }) {
  assert.equal(req.method, 'POST');
  assert.equal(req.headers['content-encoding'], 'aes128gcm');
  assert.match(String(req.headers.ttl), /^\d+$/, 'a TTL');
  assert.equal(req.headers.urgency, 'high');
  assert.match(String(req.headers.topic), /^[A-Za-z0-9_-]{1,32}$/, 'a Topic (base64url, at most 32)');

  // Authorization: vapid t=<JWT>, k=<the server's public key>
  const m = /^vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)$/.exec(String(req.headers.authorization));
  assert.ok(m, `a VAPID authorization: ${req.headers.authorization}`);
  const [, jwt, k] = m;
  assert.equal(k, serverKey, 'k= is the key GET /push/key gives');
  const [h, p, s] = jwt.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  assert.equal(header.alg, 'ES256');
  assert.equal(claims.aud, origin, 'the audience is the push service\'s origin');
  const now = Math.floor(Date.now() / 1000);
  assert.ok(claims.exp > now && claims.exp <= now + 24 * 3600, `exp within 24 h: ${claims.exp - now} s`);
  assert.match(String(claims.sub), /^(mailto:|https:)/, 'a contact');
  const raw = Buffer.from(k, 'base64url');
  assert.equal(raw.length, 65);
  const publicKey = crypto.createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: b64url(raw.subarray(1, 33)), y: b64url(raw.subarray(33, 65)) },
    format: 'jwk',
  });
  assert.ok(crypto.verify('sha256', Buffer.from(`${h}.${p}`), { key: publicKey, dsaEncoding: 'ieee-p1363' },
    Buffer.from(s, 'base64url')), 'the JWT\'s signature verifies with k');

  // The body: salt(16) rs(4) idlen(1) keyid(idlen: the server's ephemeral public key), then
  // one record.
  const body = req.body;
  const salt = body.subarray(0, 16);
  const rs = body.readUInt32BE(16);
  const idlen = body[20];
  assert.equal(idlen, 65);
  assert.ok(rs >= 18);
  const asPublic = body.subarray(21, 21 + idlen);
  const record = body.subarray(21 + idlen);
  assert.ok(record.length <= rs, 'one record');
  const uaPublic = keys.ecdh.getPublicKey();
  const ecdhSecret = keys.ecdh.computeSecret(asPublic);
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), uaPublic, asPublic]);
  const ikm = Buffer.from(crypto.hkdfSync('sha256', ecdhSecret, keys.auth, keyInfo, 32));
  const cek = Buffer.from(crypto.hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16));
  const nonce = Buffer.from(crypto.hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12));
  const decipher = crypto.createDecipheriv('aes-128-gcm', cek, nonce);
  decipher.setAuthTag(record.subarray(record.length - 16));
  const padded = Buffer.concat([decipher.update(record.subarray(0, record.length - 16)), decipher.final()]);
  // The last record: the text, 0x02, then zeros.
  let end = padded.length - 1;
  while (end >= 0 && padded[end] === 0) end--;
  assert.equal(padded[end], 2, 'the last record\'s delimiter');
  return JSON.parse(padded.subarray(0, end).toString('utf8'));
}

/** Pretends the tab is hidden (another tab in front) or shown again. */
function setHidden(page, hidden) {
  return page.evaluate((hidden) => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

test('the service worker shows a push and its click opens the room, in the open window or a new one', async (t) => {
  const { server, browser } = await setUp(t);
  const bob = await person(browser);
  await bob.context.grantPermissions(['notifications'], { origin: server.base });
  await stubPush(bob.context, 'https://push.example.invalid/send/bob', subscriptionKeys());
  await signUp(bob.page, server.base, 'bob');
  // Nothing was asked or registered on the way in.
  assert.equal(await bob.page.evaluate(async () => !!(await navigator.serviceWorker.getRegistration('/'))), false,
    'no service worker before push is switched on');
  await bob.page.getByLabel('Room', { exact: true }).fill('team');
  await bob.page.getByRole('button', { name: 'Join' }).click();
  await isCurrent(bob.page, 'team');
  await nav(bob.page, 'general').click();
  await isCurrent(bob.page, 'general');

  const dialog = await switchPushOn(bob.page);
  mkdirSync(shots, { recursive: true });
  await bob.page.screenshot({ path: path.join(shots, 'notifications.png') });
  // subscribe() got what a real push service needs: visible-only, and the server's key.
  const { token } = await bob.page.evaluate(() => JSON.parse(localStorage.getItem('banter.session.bob')));
  const key = (await apiCall(server.base, 'GET', '/push/key', token)).body.data.public_key;
  const calls = await bob.page.evaluate(() => window.__pushStub.calls);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].userVisibleOnly, true);
  assert.deepEqual(calls[0].key, [...Buffer.from(key, 'base64url')]);
  await dialog.getByRole('button', { name: 'Done' }).click();
  await dialog.waitFor({ state: 'hidden' });
  assert.equal(await bob.page.evaluate(async () => (await navigator.serviceWorker.ready).scope), `${server.base}/`);

  // A mention of bob in #team, pushed while he is away: the worker shows it.
  const sw = await serviceWorkers(bob.context, bob.page);
  const payload = {
    room: 'team', author: 'alice', id: 'm1', cursor: '000000000000000000000042', reason: 'mention',
    created_at: new Date().toISOString(), body: '@bob can you review this?', url: '/chat?room=team',
  };
  let shown;
  await deliverUntil('the notification', sw, server.base, payload, async () => (shown = await notificationsOf(bob.page)).length === 1);
  assert.equal(shown[0].title, 'alice in #team');
  assert.equal(shown[0].body, '@bob can you review this?');
  assert.equal(shown[0].tag, 'room:team');
  assert.equal(shown[0].data.url, '/chat?room=team');

  // Its click, with the app open: the window switches to #team.
  const worker = await appWorker(bob.context, server.base);
  assert.equal(await clickNotification(worker), 'alice in #team');
  await isCurrent(bob.page, 'team');
  await until('the notification to close', async () => (await notificationsOf(bob.page)).length === 0);

  // Without a preview (BANTER_PUSH_PREVIEW=off) a DM still says what it is.
  await deliverUntil('the DM notification', sw, server.base,
    { room: 'dm:alice:bob', author: 'alice', id: 'm2', cursor: '000000000000000000000043', reason: 'dm', url: '/chat?room=dm%3Aalice%3Abob' },
    async () => (shown = await notificationsOf(bob.page)).length === 1);
  assert.deepEqual([shown[0].title, shown[0].body, shown[0].tag], ['alice', 'Sent you a direct message', 'room:dm:alice:bob']);
  await worker.evaluate(async () => { for (const n of await self.registration.getNotifications()) n.close(); });

  // With no window of the app open (only a page elsewhere keeps the browser's CDP session),
  // a click opens /chat?room=team, which opens on #team as bob, his session kept.
  await nav(bob.page, 'general').click();
  await isCurrent(bob.page, 'general');
  const blank = await bob.context.newPage();
  const sw2 = await serviceWorkers(bob.context, blank);
  await bob.page.close();
  // With its last page gone Chromium may stop the worker and start another for the push; a
  // push that lands on the one being stopped is lost, so it is delivered again until shown.
  await deliverUntil('the worker to show it again', sw2, server.base, payload, async () => {
    const w = await appWorker(bob.context, server.base);
    return w.evaluate(async () => (await self.registration.getNotifications()).length === 1);
  });
  const worker2 = await appWorker(bob.context, server.base);
  // Chromium lets a worker open a window only from a real click on its notification, which
  // a test cannot make: the worker's openWindow is watched, and the test opens what it asked
  // for, as the browser would have.
  await worker2.evaluate(() => {
    self.__opened = [];
    const open = self.clients.openWindow.bind(self.clients);
    self.clients.openWindow = (url) => { self.__opened.push(url); return open(url).catch((e) => { self.__opened.push(String(e)); throw e; }); };
  });
  await clickNotification(worker2);
  const asked = await until('the worker to open a window', () => worker2.evaluate(() => self.__opened.length && self.__opened));
  t.diagnostic(`openWindow: ${JSON.stringify(asked)}`);
  assert.equal(asked[0], `${server.base}/chat?room=team`);
  const page = bob.context.pages().find((p) => p.url().startsWith(server.base)) || await bob.context.newPage();
  if (!page.url().startsWith(server.base)) await page.goto(asked[0]);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await until('the new window\'s address', () => page.url().startsWith(server.base));
  assert.equal(new URL(page.url()).searchParams.get('room'), 'team');
  await connected(page);
  await isCurrent(page, 'team');
  assert.equal(await page.locator('#me-name').textContent(), 'bob');
  // The link is used once: the address is plain /chat again, so a reload opens the last room.
  assert.equal(new URL(page.url()).search, '');
  assert.deepEqual([...bob.errors, ...errors], []);
});

test('with windows of two people open, a push\'s click goes to the window of its user', async (t) => {
  const { server, browser } = await setUp(t);
  const bob = await person(browser);
  await bob.context.grantPermissions(['notifications'], { origin: server.base });
  await stubPush(bob.context, 'https://push.example.invalid/send/bob', subscriptionKeys());
  await signUp(bob.page, server.base, 'bob');
  const dialog = await switchPushOn(bob.page);
  await dialog.getByRole('button', { name: 'Done' }).click();
  // Carol in another tab of the same browser (one service worker for both), in front.
  const carol = await bob.context.newPage();
  const errors = [];
  carol.on('pageerror', (e) => errors.push(String(e)));
  await signUp(carol, server.base, 'carol');
  await carol.bringToFront();
  const sw = await serviceWorkers(bob.context, carol);
  const payloadFor = (user, room) => ({
    room, author: 'alice', id: `m-${user}`, cursor: '000000000000000000000042', reason: 'mention',
    created_at: new Date().toISOString(), body: `@${user} look`, url: `/chat?room=${room}`, user,
  });
  // The worker that shows it is the one clicked (`prepare` runs in it first).
  const showAndClick = async (user, room, prepare) => {
    let shown;
    await deliverUntil('the notification', sw, server.base, payloadFor(user, room),
      async () => (shown = await notificationsOf(carol)).length === 1);
    assert.equal(shown[0].data.user, user, 'the notification keeps the payload\'s user');
    const worker = await appWorker(bob.context, server.base);
    if (prepare) await worker.evaluate(prepare);
    await clickNotification(worker);
    await until('the notification to close', async () => (await notificationsOf(carol)).length === 0);
    return worker;
  };

  // Bob's push: his window opens # team; carol's (in front) stays where it is, not joining it.
  await showAndClick('bob', 'team');
  await isCurrent(bob.page, 'team');
  await isCurrent(carol, 'general');
  assert.equal(await nav(carol, 'team').count(), 0, 'carol did not join team');
  // Carol's push goes to her window, though bob's is the one that was used last.
  await showAndClick('carol', 'random');
  await isCurrent(carol, 'random');
  await isCurrent(bob.page, 'team');
  // Someone with no window here: neither window is used; the worker opens the room's page.
  const worker = await showAndClick('dave', 'lobby', () => {
    self.__opened = [];
    self.clients.openWindow = async (url) => { self.__opened.push(url); return null; };
  });
  assert.deepEqual(await until('the worker to open a window', () => worker.evaluate(() => self.__opened.length && self.__opened)),
    [`${server.base}/chat?room=lobby`]);
  await isCurrent(carol, 'random');
  await isCurrent(bob.page, 'team');
  assert.deepEqual([...bob.errors, ...errors], []);
});

test('a DM to bob while he is away reaches the push service signed and encrypted, and shows as his notification', async (t) => {
  const service = await startPushService();
  t.after(() => service.close());
  const { server, browser } = await setUp(t, {
    env: { BANTER_PUSH_INSECURE_ORIGINS: service.origin, BANTER_PUSH_WAIT: '0s', BANTER_LIMIT_SENDS: 'off' },
  });
  const bobKeys = subscriptionKeys();
  const alice = await person(browser);
  const bob = await person(browser);
  await bob.context.grantPermissions(['notifications'], { origin: server.base });
  await stubPush(bob.context, `${service.origin}/push/bob`, bobKeys);
  await signUp(alice.page, server.base, 'alice');
  await signUp(bob.page, server.base, 'bob');

  // Carol has pushes on another browser and no connection: the marker that pushes went out.
  const carolKeys = subscriptionKeys();
  const carolToken = await tokenFor(server.base, 'carol');
  const serverKey = (await apiCall(server.base, 'GET', '/push/key', carolToken)).body.data.public_key;
  const saved = await apiCall(server.base, 'POST', '/push/subscriptions', carolToken, {
    endpoint: `${service.origin}/push/carol`, expirationTime: null, keys: { p256dh: carolKeys.p256dh, auth: carolKeys.authText },
  });
  assert.equal(saved.status, 201, JSON.stringify(saved));

  // Bob switches push on in the app, like a person.
  const dialog = await switchPushOn(bob.page);
  await dialog.getByRole('button', { name: 'Done' }).click();

  // While bob's page is connected his DMs are not pushed: a DM to carol after it is, and
  // nothing came for bob before it.
  await blast(alice.page, 'alice', 'dm:alice:bob', ['are you at your desk?']);
  await shows(bob.page, []); // bob is still in general; the DM is unread in his sidebar
  await until('the DM in bob\'s sidebar', async () => (await nav(bob.page, 'dm:alice:bob').count()) === 1);
  await blast(alice.page, 'alice', 'dm:alice:carol', ['marker for carol']);
  const toCarol = await service.next('/push/carol');
  const carolPayload = verifyAndDecrypt(toCarol, { origin: service.origin, serverKey, keys: carolKeys });
  assert.equal(carolPayload.body, 'marker for carol');
  assert.equal(service.to('/push/bob').length, 0, 'no push for bob while he is connected');

  // Bob closes the page: no connection of his is left (alice sees him go offline).
  await bob.page.close();
  await until('bob offline for alice', async () =>
    (await alice.page.locator('#member-list [data-user="bob"]').getAttribute('data-online')) === 'false');
  const [req, [cursor]] = await Promise.all([
    service.next('/push/bob'),
    blast(alice.page, 'alice', 'dm:alice:bob', ['lunch at noon?']),
  ]);
  const got = verifyAndDecrypt(req, { origin: service.origin, serverKey, keys: bobKeys });
  t.diagnostic(`bob's push: ${JSON.stringify(got)}`);
  assert.equal(got.room, 'dm:alice:bob');
  assert.equal(got.author, 'alice');
  assert.equal(got.reason, 'dm');
  assert.equal(got.body, 'lunch at noon?');
  assert.equal(typeof got.id, 'string');
  assert.equal(got.cursor, cursor);
  assert.equal(new URL(got.url, server.base).pathname, '/chat');
  assert.equal(new URL(got.url, server.base).searchParams.get('room'), 'dm:alice:bob');

  // That payload reaches bob's service worker (his browser kept; a page of the origin that
  // is signed out) and shows alice and the message.
  const page = await bob.context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(server.base);
  await page.getByRole('button', { name: 'Continue as bob' }).waitFor();
  const sw = await serviceWorkers(bob.context, page);
  let shown;
  await deliverUntil('bob\'s notification', sw, server.base, got, async () => (shown = await notificationsOf(page)).length === 1);
  assert.equal(shown[0].title, 'alice');
  assert.equal(shown[0].body, 'lunch at noon?');
  assert.equal(shown[0].tag, 'room:dm:alice:bob');

  // Its click goes to that window; it is signed out, so the DM opens once bob is back in.
  await clickNotification(await appWorker(bob.context, server.base));
  await until('the link to wait for the login', async () =>
    new URL(page.url()).searchParams.get('room') === 'dm:alice:bob');
  await page.getByRole('button', { name: 'Continue as bob' }).click();
  await connected(page);
  await isCurrent(page, 'dm:alice:bob');
  await shows(page, ['are you at your desk?', 'lunch at noon?']);

  // Logging out switches this browser's pushes off: bob, away again, gets none.
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('button', { name: 'Log in' }).waitFor();
  assert.equal(await page.evaluate(() => window.__pushStub.unsubscribed), 1, 'the browser unsubscribed');
  assert.equal(await page.evaluate(() => localStorage.getItem('banter.push.owner')), null);
  const before = service.to('/push/bob').length;
  await until('bob offline again', async () =>
    (await alice.page.locator('#member-list [data-user="bob"]').getAttribute('data-online')) === 'false');
  await blast(alice.page, 'alice', 'dm:alice:bob', ['still there?']);
  await blast(alice.page, 'alice', 'dm:alice:carol', ['second marker']);
  const again = verifyAndDecrypt(await service.next('/push/carol'), { origin: service.origin, serverKey, keys: carolKeys });
  assert.equal(again.body, 'second marker');
  assert.equal(service.to('/push/bob').length, before, 'no push for bob after he logged out');
  assert.deepEqual([...alice.errors, ...errors], []);
});

test('while the tab is hidden the title counts new messages, and DMs and mentions notify and chime', async (t) => {
  const { server, browser } = await setUp(t, { env: { BANTER_LIMIT_SENDS: 'off' } });
  const alice = await person(browser);
  const bob = await person(browser);
  await bob.context.grantPermissions(['notifications'], { origin: server.base });
  await spyOnNotifications(bob.context);
  await signUp(alice.page, server.base, 'alice');
  await signUp(bob.page, server.base, 'bob');
  await bob.page.getByLabel('Room', { exact: true }).fill('team');
  await bob.page.getByRole('button', { name: 'Join' }).click();
  await isCurrent(bob.page, 'team');
  await nav(bob.page, 'general').click();
  await isCurrent(bob.page, 'general');

  // The panel: desktop notifications on (the browser allows them), the sound off, until bob
  // switches it on.
  const dialog = await openSettings(bob.page);
  const desktop = dialog.getByRole('checkbox', { name: /Desktop notifications/ });
  const sound = dialog.getByRole('checkbox', { name: /Play a sound/ });
  assert.equal(await desktop.isChecked(), true);
  assert.equal(await sound.isChecked(), false);
  await sound.check();
  await until('the sample chime', () => bob.page.evaluate(() => window.__notify.chimes === 1));
  await dialog.getByRole('button', { name: 'Done' }).click();
  await dialog.waitFor({ state: 'hidden' });
  assert.deepEqual(await bob.page.evaluate(() => JSON.parse(localStorage.getItem('banter.notify.bob'))), { desktop: true, sound: true });

  // Hidden: three messages in the room on screen count in the title; no notification.
  await setHidden(bob.page, true);
  await blast(alice.page, 'alice', 'general', ['one', 'two', 'three']);
  await until('the title to count three', async () => (await bob.page.title()).startsWith('(3) '));
  assert.equal(await bob.page.evaluate(() => window.__notify.shown.length), 0, 'plain messages do not notify');
  // Shown again: read, and the count goes.
  await setHidden(bob.page, false);
  await until('the title without a count', async () => !(await bob.page.title()).startsWith('('));

  // Hidden again: a mention in #team and a DM notify (and chime), and count.
  await setHidden(bob.page, true);
  await blast(alice.page, 'alice', 'team', ['@bob the build is green']);
  await until('the mention notification', () => bob.page.evaluate(() => window.__notify.shown.length === 1));
  await blast(alice.page, 'alice', 'dm:alice:bob', ['got a sec?']);
  await until('the DM notification', () => bob.page.evaluate(() => window.__notify.shown.length === 2));
  const shown = await bob.page.evaluate(() => window.__notify.shown.map(({ title, body, tag }) => ({ title, body, tag })));
  assert.deepEqual(shown, [
    { title: 'alice in #team', body: '@bob the build is green', tag: 'room:team' },
    { title: 'alice', body: 'got a sec?', tag: 'room:dm:alice:bob' },
  ]);
  assert.equal(await bob.page.evaluate(() => window.__notify.chimes), 3, 'a chime each');
  await until('the title to count two', async () => (await bob.page.title()).startsWith('(2) '));
  // A click on the DM's notification opens the DM.
  await bob.page.evaluate(() => window.__notify.shown[1].n.dispatchEvent(new Event('click')));
  await isCurrent(bob.page, 'dm:alice:bob');
  // Back in the tab: the DM is read; the title counts what is still unread (#team's mention).
  await setHidden(bob.page, false);
  await until('the title to count the unread', async () => (await bob.page.title()).startsWith('(1) @ alice · banter'));
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test('on a phone the panel fits; without the browser\'s permission push stays off and says why', async (t) => {
  const { server, browser } = await setUp(t);
  const bob = await person(browser, { width: 375, height: 740 });
  await stubPush(bob.context, 'https://push.example.invalid/send/bob', subscriptionKeys());
  await signUp(bob.page, server.base, 'bob');
  // Nothing asks on the way in: the permission is still the browser's default.
  assert.equal(await bob.page.evaluate(() => Notification.permission), 'default');
  const dialog = await openSettings(bob.page);
  assert.match(await bob.page.locator('#notify-status').innerText(), /asks for your permission/);
  const box = await bob.page.locator('#notify-dialog').boundingBox();
  assert.ok(box && box.x >= 0 && box.x + box.width <= 375, `the dialog fits: ${JSON.stringify(box)}`);
  assert.equal(await bob.page.evaluate(() =>
    document.documentElement.scrollWidth - document.documentElement.clientWidth), 0, 'nothing scrolls sideways');
  mkdirSync(shots, { recursive: true });
  await bob.page.screenshot({ path: path.join(shots, 'phone-notifications.png') });

  // Headless Chromium answers the permission request itself, with no: push stays off.
  const push = dialog.getByRole('checkbox', { name: /Push notifications when I’m away/ });
  await until('the push option to be ready', async () => !(await push.isDisabled()));
  await push.click();
  await until('the refusal to be said', async () =>
    /blocked|did not allow/.test(await bob.page.locator('#notify-push-note').innerText()));
  assert.equal(await push.isChecked(), false);
  assert.equal(await bob.page.evaluate(() => window.__pushStub.calls.length), 0, 'nothing subscribed');
  assert.equal(await bob.page.evaluate(() => localStorage.getItem('banter.push.owner')), null);
  assert.deepEqual(bob.errors, []);
});

test('when the server has push off, the option is off and says so', async (t) => {
  const { server, browser } = await setUp(t, { env: { BANTER_PUSH: 'off' } });
  const bob = await person(browser);
  await bob.context.grantPermissions(['notifications'], { origin: server.base });
  await signUp(bob.page, server.base, 'bob');
  const dialog = await openSettings(bob.page);
  const push = dialog.getByRole('checkbox', { name: /Push notifications when I’m away/ });
  await until('the option to say push is off', async () =>
    /switched off on this server/.test(await bob.page.locator('#notify-push-note').innerText()));
  assert.equal(await push.isDisabled(), true);
  assert.equal(await push.isChecked(), false);
  // The rest still works.
  assert.equal(await dialog.getByRole('checkbox', { name: /Desktop notifications/ }).isChecked(), true);
  assert.deepEqual(bob.errors, []);
});
