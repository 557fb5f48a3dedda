// The web app in a real Chromium against a real `banter serve`: people register, talk, see
// each other, reload, lose their network, try to break it with markup, and snoop on direct
// messages. Each test starts its own server (fresh data directory) and browser.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import {
  bodies, connected, deleteMessage, editMessage, launchBrowser, message, openRoom, person, react,
  repoRoot, reply, say, setUp, shows, signUp, startProxy, startServer, until,
} from './harness.mjs';

/** Alice and Bob, signed up in contexts of their own, both in `room`. */
async function twoInRoom(browser, base, room) {
  const alice = await person(browser);
  const bob = await person(browser);
  await signUp(alice.page, base, 'alice');
  await signUp(bob.page, base, 'bob');
  await openRoom(alice.page, room);
  await openRoom(bob.page, room);
  return { alice, bob };
}

test('two people register, join a room and talk both ways', async (t) => {
  const { server, browser } = await setUp(t);
  const { alice, bob } = await twoInRoom(browser, server.base, 'team');

  await say(alice.page, 'hello bob');
  await shows(bob.page, ['hello bob']);
  await shows(alice.page, ['hello bob']);

  // Shift+Enter makes a new line; Enter sends.
  const box = bob.page.getByLabel('Message', { exact: true });
  await box.fill('hi alice');
  await box.press('Shift+Enter');
  await box.type('how are you?');
  await box.press('Enter');
  const both = ['hello bob', 'hi alice\nhow are you?'];
  await shows(alice.page, both);
  await shows(bob.page, both);

  // Own messages are marked and acked; others' carry their author.
  const mine = message(alice.page, 'hello bob');
  await until('alice\'s message to be acked', async () =>
    (await mine.getAttribute('data-state')) === 'sent');
  assert.match(await mine.getAttribute('class'), /\bown\b/);
  const theirs = message(alice.page, 'how are you?');
  assert.doesNotMatch((await theirs.getAttribute('class')) || '', /\bown\b/);
  assert.equal(await theirs.getAttribute('data-author'), 'bob');
  assert.equal(await theirs.locator('.author').textContent(), 'bob');

  // Unread: a message in a room alice is not looking at shows on its badge.
  await openRoom(alice.page, 'general');
  await say(bob.page, 'are you there?');
  const badge = alice.page.locator('nav[aria-label="Rooms"] [data-room="team"] .unread');
  await until('an unread badge on team', async () => (await badge.textContent()) === '1');
  await alice.page.locator('nav[aria-label="Rooms"] [data-room="team"]').click();
  await shows(alice.page, [...both, 'are you there?']);
  await until('the badge to clear', async () => !(await badge.isVisible()));

  // Deleting one's own message removes it for everyone.
  await until('bob\'s message to be acked', async () =>
    (await message(bob.page, 'are you there?').getAttribute('data-state')) === 'sent');
  await deleteMessage(bob.page, 'are you there?');
  await shows(alice.page, both);
  await shows(bob.page, both);

  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test('presence and typing show, and a person who leaves goes offline', async (t) => {
  const { server, browser } = await setUp(t);
  const { alice, bob } = await twoInRoom(browser, server.base, 'team');

  // The member list shows everyone in the room; who is online, with a dot.
  const online = (page, user) => page.locator(`#member-list [data-user="${user}"][data-online="true"]`);
  await online(alice.page, 'bob').waitFor();
  await online(bob.page, 'alice').waitFor();
  const count = alice.page.locator('nav[aria-label="Rooms"] [data-room="team"] .online');
  await until('two online in team', async () => (await count.textContent()).includes('2'));

  await bob.page.getByLabel('Message', { exact: true }).type('let me think');
  await until('alice to see bob typing', async () =>
    /bob is typing/.test(await alice.page.locator('#typing').textContent()));

  await bob.context.close();
  await online(alice.page, 'bob').waitFor({ state: 'detached' });
  // Still a member, now offline.
  await alice.page.locator('#member-list [data-user="bob"][data-online="false"]').waitFor();
  assert.deepEqual(alice.errors, []);
});

test('a reload keeps the session, the open rooms and the history', async (t) => {
  const { server, browser } = await setUp(t);
  const alice = await person(browser);
  await signUp(alice.page, server.base, 'alice');
  await openRoom(alice.page, 'team');
  for (const text of ['one', 'two', 'three']) await say(alice.page, text);
  await shows(alice.page, ['one', 'two', 'three']);
  await until('all acked', async () =>
    (await alice.page.locator('#message-list > li[data-state="pending"]').count()) === 0);

  await alice.page.reload();
  await connected(alice.page);
  assert.equal(await alice.page.getByLabel('Password').isVisible(), false, 'still logged in');
  await alice.page.locator('nav[aria-label="Rooms"] [data-room="team"]').click();
  await shows(alice.page, ['one', 'two', 'three']);

  // Log out ends it: a reload shows the login form.
  await alice.page.getByRole('button', { name: 'Log out' }).click();
  await alice.page.getByLabel('Username').waitFor();
  await alice.page.reload();
  await alice.page.getByLabel('Username').waitFor();
  assert.deepEqual(alice.errors, []);
});

test('after a network drop nothing is missing and nothing is doubled', async (t) => {
  const { server, browser } = await setUp(t);
  const proxy = await startProxy(server.base);
  t.after(() => proxy.close());
  const alice = await person(browser);
  const bob = await person(browser);
  // Alice reaches the server through a proxy that can cut her off.
  await signUp(alice.page, proxy.base, 'alice');
  await signUp(bob.page, server.base, 'bob');
  await openRoom(alice.page, 'team');
  await openRoom(bob.page, 'team');
  await say(alice.page, 'before');
  await shows(bob.page, ['before']);

  proxy.drop();
  await until('alice to notice', async () =>
    (await alice.page.locator('#conn-status').getAttribute('data-state')) !== 'connected');
  for (const text of ['during 1', 'during 2', 'during 3']) await say(bob.page, text);
  await shows(bob.page, ['before', 'during 1', 'during 2', 'during 3']);
  // Alice writes while offline: pending, and sent once she is back.
  await say(alice.page, 'while offline');
  await until('a pending message', async () =>
    (await message(alice.page, 'while offline').getAttribute('data-state')) === 'pending');

  proxy.restore();
  await connected(alice.page);
  const all = ['before', 'during 1', 'during 2', 'during 3', 'while offline'];
  await shows(alice.page, all, 30000);
  await shows(bob.page, all);
  await until('the re-sent message to be acked', async () =>
    (await message(alice.page, 'while offline').getAttribute('data-state')) === 'sent');
  // Still exactly these, once each, after things settle.
  assert.deepEqual(await bodies(alice.page), all);
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test('markup in a message is shown as text and runs nothing', async (t) => {
  const { server, browser } = await setUp(t);
  const { alice, bob } = await twoInRoom(browser, server.base, 'team');
  const attacks = [
    '<img src=x onerror=alert(1)>',
    '<script>alert(2)</script>',
    '"><svg onload=alert(3)>',
  ];
  for (const a of attacks) await say(alice.page, a);
  await shows(bob.page, attacks);
  await shows(alice.page, attacks);
  for (const { page } of [alice, bob]) {
    assert.equal(await page.locator('#message-list img, #message-list svg, #message-list script').count(), 0);
  }
  // A dialog would have been recorded as an error.
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test('a direct message reaches its two people and no one else', async (t) => {
  const { server, browser } = await setUp(t);
  const alice = await person(browser);
  const bob = await person(browser);
  const carol = await person(browser);
  await signUp(alice.page, server.base, 'alice');
  await signUp(bob.page, server.base, 'bob');
  await signUp(carol.page, server.base, 'carol');

  // Alice starts it from the presence list of a room they share.
  await alice.page.locator('#member-list [data-user="bob"]').waitFor();
  await alice.page.getByRole('button', { name: 'Message bob' }).click();
  await until('the direct-message room to open', async () =>
    (await alice.page.locator('nav[aria-label="Rooms"] [data-room="dm:alice:bob"]').getAttribute('aria-current')) === 'true');
  await say(alice.page, 'just between us');
  await shows(alice.page, ['just between us']);

  // Bob finds it in his list, marked unread, without doing anything.
  const dm = bob.page.locator('nav[aria-label="Rooms"] [data-room="dm:alice:bob"]');
  await until('bob to see the conversation', async () =>
    (await dm.locator('.unread').textContent()) === '1', 30000);
  await dm.click();
  await shows(bob.page, ['just between us']);

  // Carol cannot open it, nor read it over HTTP.
  await carol.page.getByLabel('Room', { exact: true }).fill('dm:alice:bob');
  await carol.page.getByRole('button', { name: 'Join' }).click();
  await until('carol to be refused', async () =>
    (await carol.page.getByRole('alert').allTextContents()).some((s) => s.trim() !== ''));
  const status = await carol.page.evaluate(async () => {
    const { token } = JSON.parse(localStorage.getItem('banter.session.carol'));
    const r = await fetch('/api/v1/rooms/dm:alice:bob/messages', {
      headers: { Authorization: `Bearer ${token}` },
    });
    return r.status;
  });
  assert.equal(status, 403);
  assert.equal(await carol.page.getByText('just between us').count(), 0);
  assert.equal(await carol.page.locator('nav[aria-label="Rooms"] [data-room="dm:alice:bob"]').count(), 0);
});

test('keyboard only: log in, open a room, send', async (t) => {
  const { server, browser } = await setUp(t);
  // The account exists; this person only has a keyboard.
  const r = await fetch(`${server.base}/api/v1/register`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'dana', password: 'password123' }),
  });
  assert.equal(r.status, 201);
  const { page, errors } = await person(browser);
  await page.goto(server.base);
  await page.getByLabel('Username').waitFor();
  const focused = () => page.evaluate(() => document.activeElement && document.activeElement.id);
  const tabTo = async (id) => {
    for (let i = 0; i < 30 && (await focused()) !== id; i++) await page.keyboard.press('Tab');
    assert.equal(await focused(), id, `Tab reaches #${id}`);
  };
  const idOf = (label) => page.getByLabel(label, { exact: true }).getAttribute('id');
  await tabTo(await idOf('Username'));
  await page.keyboard.type('dana');
  await page.keyboard.press('Tab');
  await page.keyboard.type('password123');
  await page.keyboard.press('Enter');
  await connected(page);
  await tabTo(await idOf('Room'));
  await page.keyboard.press('Control+A');
  await page.keyboard.type('keys');
  await page.keyboard.press('Enter');
  await until('room keys to be current', async () =>
    (await page.locator('nav[aria-label="Rooms"] [data-room="keys"]').getAttribute('aria-current')) === 'true');
  await tabTo(await idOf('Message'));
  await page.keyboard.type('typed, not clicked');
  await page.keyboard.press('Enter');
  await shows(page, ['typed, not clicked']);
  assert.deepEqual(errors, []);
});

test('it fits a phone and a desktop (screenshots)', async (t) => {
  const { server, browser } = await setUp(t);
  // BANTER_SCREENSHOTS=1 refreshes the README's pictures; otherwise they go to a temp dir.
  const dir = process.env.BANTER_SCREENSHOTS
    ? path.join(repoRoot, 'docs/screenshots')
    : path.join(os.tmpdir(), 'banter-screenshots');
  mkdirSync(dir, { recursive: true });
  const alice = await person(browser);
  const bob = await person(browser, { width: 375, height: 740 });
  await signUp(alice.page, server.base, 'alice');
  await signUp(bob.page, server.base, 'bob');
  await openRoom(alice.page, 'team');
  await openRoom(bob.page, 'team');
  const release = 'Morning! The release is out, notes at https://example.com/notes';
  await say(alice.page, release);
  await say(bob.page, 'Great, reading them now.');
  await say(alice.page, 'Shout if anything looks off.');
  const all = [release, 'Great, reading them now.', 'Shout if anything looks off.'];
  await shows(alice.page, all);
  await shows(bob.page, all);
  const acked = async () =>
    (await alice.page.locator('#message-list > li[data-state="pending"]').count()) === 0
    && (await bob.page.locator('#message-list > li[data-state="pending"]').count()) === 0;
  await until('all acked', acked);
  // What a conversation has: an edit, reactions, a thread with replies.
  await editMessage(alice.page, 'Shout if', 'Shout if anything looks off, `banter serve` has the new flags.');
  await react(bob.page, 'The release is out', '🎉');
  await react(bob.page, 'The release is out', '👍');
  await until('bob\'s 🎉 on alice\'s page', async () =>
    (await message(alice.page, 'The release is out').locator('.reaction[data-emoji="🎉"]').count()) === 1);
  await message(alice.page, 'The release is out').locator('.reaction[data-emoji="🎉"]').click();
  await reply(bob.page, 'The release is out', 'Found a typo in the upgrade section, fixing it.');
  await bob.page.getByRole('button', { name: 'Close thread' }).click();
  await until('the reply on alice\'s page', async () =>
    (await alice.page.getByRole('button', { name: '1 reply' }).count()) === 1);
  await alice.page.getByRole('button', { name: '1 reply' }).click();
  await alice.page.getByRole('textbox', { name: 'Reply' }).fill('Thanks!');
  await alice.page.getByRole('textbox', { name: 'Reply' }).press('Enter');
  await until('both replies on bob\'s page', async () =>
    (await bob.page.getByRole('button', { name: '2 replies' }).count()) === 1);
  await until('all acked', acked);

  // Nothing overflows sideways on the phone, and what one needs to chat is on screen.
  const fits = async (what, locator) => {
    const box = await locator.boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= 375, `${what} fits the width: ${JSON.stringify(box)}`);
  };
  const overflow = () => bob.page.evaluate(() =>
    document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok((await overflow()) <= 0, `the phone page scrolls sideways by ${await overflow()}px`);
  await fits('message field', bob.page.getByLabel('Message', { exact: true }));
  await fits('send button', bob.page.getByRole('button', { name: 'Send' }));
  await fits('last message', message(bob.page, 'Thanks!'));
  const shot = { animations: 'disabled', caret: 'hide' };
  await alice.page.mouse.move(0, 0);
  await alice.page.screenshot({ path: path.join(dir, 'desktop.png'), ...shot });
  await bob.page.screenshot({ path: path.join(dir, 'phone.png'), ...shot });
  // On the phone, a thread takes the whole screen.
  await bob.page.getByRole('button', { name: '2 replies' }).click();
  await until('the thread on bob\'s phone', async () =>
    (await bob.page.locator('#thread-list > li.msg').count()) === 3);
  await until('the thread slid in', async () => (await bob.page.locator('#thread').boundingBox()).x === 0);
  await fits('thread reply field', bob.page.getByRole('textbox', { name: 'Reply' }));
  await fits('thread close button', bob.page.getByRole('button', { name: 'Close thread' }));
  assert.ok((await overflow()) <= 0, `the phone thread scrolls sideways by ${await overflow()}px`);
  await bob.page.mouse.move(0, 0);
  await bob.page.screenshot({ path: path.join(dir, 'phone-thread.png'), ...shot });
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test('the server serves every file of the app, as JavaScript and CSS', async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const files = [['app.js', /javascript/], ['client.js', /javascript/], ['session.js', /javascript/],
    ['admin.js', /javascript/], ['admin', /html/], ['style.css', /css/]];
  for (const [file, type] of files) {
    const res = await fetch(`${server.base}/${file}`);
    assert.equal(res.status, 200, `/${file}`);
    assert.match(res.headers.get('content-type') || '', type, `/${file}`);
  }
  // app.js is a module that imports client.js and session.js by these names.
  const html = await (await fetch(server.base)).text();
  assert.match(html, /<script type="module" src="\/app.js"><\/script>/);
});

test('split deployment: the auth API on another origin', async (t) => {
  // The chat's origin (serve, for the gateway part) and an auth service on another origin,
  // sharing one database and one JWT secret, as auth and gateway do in production.
  const authPort = await new Promise((resolve) => {
    const probe = net.createServer();
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
  const authOrigin = `http://127.0.0.1:${authPort}`;
  const chat = await startServer({ env: { BANTER_PUBLIC_AUTH_URL: authOrigin } });
  t.after(() => chat.stop());
  const auth = await startServer({
    dataDir: chat.dataDir,
    args: ['auth', '--listen', `127.0.0.1:${authPort}`],
    env: {
      DATABASE_URL: `sqlite://${path.join(chat.dataDir, 'banter.db')}`,
      JWT_SECRET: readFileSync(path.join(chat.dataDir, 'jwt-secret'), 'utf8').trim(),
      BANTER_CORS_ORIGINS: chat.base,
    },
  });
  t.after(() => auth.stop());
  const browser = await launchBrowser();
  t.after(() => browser.close());

  const alice = await person(browser);
  const authCalls = [];
  alice.page.on('request', (r) => {
    if (r.url().startsWith(authOrigin)) authCalls.push(new URL(r.url()).pathname);
  });
  const bob = await person(browser);
  await signUp(alice.page, chat.base, 'alice');
  await signUp(bob.page, chat.base, 'bob');
  await openRoom(alice.page, 'split');
  await openRoom(bob.page, 'split');
  await say(alice.page, 'through two origins');
  await shows(bob.page, ['through two origins']);
  assert.ok(authCalls.includes('/api/v1/register'), `auth calls: ${authCalls}`);
  assert.ok(authCalls.includes('/api/v1/login'), `auth calls: ${authCalls}`);
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test('two people in two tabs of one browser', async (t) => {
  const { server, browser } = await setUp(t);
  // One context: the tabs share cookies and storage, as a new user's two tabs do.
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  const tab = async () => {
    const page = await context.newPage();
    page.on('pageerror', (e) => errors.push(String(e)));
    return page;
  };
  const one = await tab();
  await signUp(one, server.base, 'alice');
  // A second tab is not logged in as alice by itself: a second person can register there.
  const two = await tab();
  await two.goto(server.base);
  await two.getByRole('button', { name: 'Continue as alice' }).waitFor();
  await two.getByLabel('Username').fill('bob');
  await two.getByLabel('Password').fill('password123');
  await two.getByRole('button', { name: 'Register' }).click();
  await connected(two);
  await openRoom(one, 'tabs');
  await openRoom(two, 'tabs');
  await say(one, 'from the first tab');
  await say(two, 'from the second tab');
  const both = ['from the first tab', 'from the second tab'];
  await shows(one, both);
  await shows(two, both);
  assert.equal(await message(one, 'from the first tab').getAttribute('data-author'), 'alice');
  assert.match(await message(two, 'from the second tab').getAttribute('class'), /\bown\b/);

  // Each tab stays who it is across reloads.
  await one.reload();
  await connected(one);
  await two.reload();
  await connected(two);
  await one.locator('nav[aria-label="Rooms"] [data-room="tabs"]').click();
  await until('tab one to be alice', async () =>
    (await message(one, 'from the first tab').getAttribute('class') || '').includes('own'));
  await two.locator('nav[aria-label="Rooms"] [data-room="tabs"]').click();
  await until('tab two to be bob', async () =>
    (await message(two, 'from the second tab').getAttribute('class') || '').includes('own'));

  // A third tab offers both; alice continues there, and logging out ends alice's tabs only.
  const three = await tab();
  await three.goto(server.base);
  await three.getByRole('button', { name: 'Continue as bob' }).waitFor();
  await three.getByRole('button', { name: 'Continue as alice' }).click();
  await connected(three);
  await three.getByRole('button', { name: 'Log out' }).click();
  await one.getByLabel('Username').waitFor();
  await connected(two);
  assert.equal(await two.getByLabel('Password').isVisible(), false, 'bob is still in');
  assert.deepEqual(errors, []);
});

test('sends over the limit wait, go again and arrive once each, in the order typed', async (t) => {
  const server = await startServer({ env: { BANTER_LIMIT_SENDS: '2/s' } });
  const browser = await launchBrowser();
  t.after(async () => {
    await browser.close();
    await server.stop();
  });
  const { alice, bob } = await twoInRoom(browser, server.base, 'team');

  // Faster than two a second: the server refuses some (`rate_limited`), the app holds the
  // room's sends for the wait it was told and sends them again, first the refused one.
  const typed = ['one', 'two', 'three', 'four', 'five', 'six'];
  for (const text of typed) await say(alice.page, text);
  await shows(bob.page, typed, 30000);
  await shows(alice.page, typed, 30000);
  await until('every message acked', async () =>
    (await alice.page.locator('#message-list > li[data-state="sent"]').count()) === typed.length);
  const metrics = await (await fetch(`${server.base}/metrics`)).text();
  const refused = /banter_rate_limited_total\{limit="sends"\} (\d+)/.exec(metrics);
  assert.ok(refused && Number(refused[1]) > 0, `no send was refused: ${metrics.match(/^banter_rate.*$/gm)}`);
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});
