// Rooms people own (issue 15) in a real Chromium against a real `banter serve`: private rooms
// made and shared in the UI and closed to everyone else, the sidebar kept live by the user
// stream (no polling), unread and mention counts that agree on two devices and after a
// reload, and mentions highlighted.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import {
  blast, connected, message, openRoom, person, repoRoot, say, setUp, shows, signUp, until,
} from './harness.mjs';

/** Logs in an existing account (a second device of someone), and waits for the chat. */
async function logIn(page, base, name, password = 'password123') {
  await page.goto(base);
  await page.getByLabel('Username').fill(name);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await connected(page);
}

/** The sidebar's entry of `room`. */
const nav = (page, room) => page.locator(`nav[aria-label="Rooms"] [data-room="${room}"]`);

/** What a room's badges say: {unread, mentions} ('' when hidden). */
async function badges(page, room) {
  const link = nav(page, room);
  const shown = async (sel) => {
    const b = link.locator(sel);
    return (await b.isVisible()) ? (await b.textContent()).trim() : '';
  };
  return { unread: await shown('.unread'), mentions: await shown('.mention-badge') };
}

/** Waits until `room`'s badges on `page` are `want` ({unread, mentions}, '' for none). */
async function hasBadges(page, room, want, what) {
  let got;
  try {
    await until(what, async () => {
      got = await badges(page, room);
      return got.unread === want.unread && got.mentions === want.mentions;
    });
  } catch (e) {
    throw new Error(`${e.message}; the badges say ${JSON.stringify(got)}`);
  }
}

/** Calls the API with the page's own session, as that person's browser would: {status, body}. */
function apiAs(page, user, method, path, body) {
  return page.evaluate(async ({ user, method, path, body }) => {
    const { token } = JSON.parse(localStorage.getItem(`banter.session.${user}`));
    const r = await fetch(`/api/v1${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let json = null;
    try { json = await r.json(); } catch { /* no body */ }
    return { status: r.status, body: json };
  }, { user, method, path, body });
}

/**
 * Opens a WebSocket of its own as `user` in the page, sends `join` of `room`, and returns the
 * first answer about it: a `joined` or an `error` frame.
 */
function joinOverSocket(page, user, room) {
  return page.evaluate(({ user, room }) => new Promise((resolve, reject) => {
    const { token } = JSON.parse(localStorage.getItem(`banter.session.${user}`));
    const ws = new WebSocket(`ws://${location.host}/ws?token=${encodeURIComponent(token)}`);
    const seen = [];
    // A deadline, not a wait: the answer normally comes within milliseconds.
    const deadline = setTimeout(() => { ws.close(); reject(new Error(`no answer to the join: ${JSON.stringify(seen)}`)); }, 10000);
    ws.onmessage = (e) => {
      const f = JSON.parse(e.data);
      seen.push(f);
      if (f.type === 'error' || ((f.type === 'joined' || f.type === 'message') && f.room === room)) {
        clearTimeout(deadline);
        ws.close();
        resolve(f);
      }
    };
    ws.onopen = () => ws.send(JSON.stringify({ type: 'join', room, since: '0'.repeat(24) }));
  }), { user, room });
}

/** The system lines of the timeline (joins, topics…), in order. */
const systemLines = (page) => page.locator('#message-list > li.system .system-text').allTextContents();

test('a private room: made and shared in the UI, invisible and closed to everyone else', async (t) => {
  const { server, browser } = await setUp(t);
  const alice = await person(browser);
  const bob = await person(browser);
  const carol = await person(browser);
  await signUp(alice.page, server.base, 'alice');
  await signUp(bob.page, server.base, 'bob');
  await signUp(carol.page, server.base, 'carol');

  // Alice creates it from the dialog: a name, Private, a topic.
  await alice.page.getByRole('button', { name: 'New room' }).click();
  const create = alice.page.getByRole('dialog', { name: 'Create a room' });
  await create.getByLabel('Name').fill('secret');
  await create.getByRole('radio', { name: /^Private/ }).check();
  await create.getByLabel(/^Topic/).fill('Plans for the launch');
  await create.getByRole('button', { name: 'Create room' }).click();
  await until('secret to be alice\'s current room', async () =>
    (await nav(alice.page, 'secret').getAttribute('aria-current')) === 'true');
  assert.equal(await nav(alice.page, 'secret').getAttribute('data-kind'), 'private');
  assert.ok(await nav(alice.page, 'secret').locator('.room-lock').isVisible(), 'a lock in the sidebar');
  assert.equal(await alice.page.locator('#room-topic').textContent(), 'Plans for the launch');
  assert.equal(await create.isVisible(), false, 'the dialog closed');

  // The same name again: the form says so, and stays open.
  await alice.page.getByRole('button', { name: 'New room' }).click();
  await create.getByLabel('Name').fill('secret');
  await create.getByRole('button', { name: 'Create room' }).click();
  await until('the form to refuse the name', async () =>
    /already exists/.test(await create.getByRole('alert').textContent()));
  await create.getByRole('button', { name: 'Cancel' }).click();

  // Alice adds bob from the member list; his sidebar gets it at once, without a reload.
  const invite = alice.page.getByLabel('Add someone to this room');
  await invite.fill('bob');
  await invite.press('Enter');
  await until('bob in alice\'s member list', async () =>
    (await alice.page.locator('#member-list [data-user="bob"]').count()) === 1);
  await until('secret in bob\'s sidebar', async () => (await nav(bob.page, 'secret').count()) === 1);
  assert.equal(await nav(bob.page, 'secret').getAttribute('data-kind'), 'private');
  await until('"alice added bob" in alice\'s timeline', async () =>
    (await systemLines(alice.page)).some((s) => s.startsWith('alice added bob')));
  // Someone who does not exist: a clear refusal.
  await invite.fill('nobody-here');
  await invite.press('Enter');
  await until('the refusal of nobody-here', async () =>
    /no one called nobody-here/.test(await alice.page.locator('#invite-alert').textContent()));

  await say(alice.page, 'for bob only');
  await nav(bob.page, 'secret').click();
  await shows(bob.page, ['for bob only']);
  assert.equal(await bob.page.locator('#room-topic').textContent(), 'Plans for the launch');
  assert.equal(await bob.page.getByRole('button', { name: 'Edit topic' }).isVisible(), false, 'only the owner edits the topic');

  // The owner edits the topic: everyone's header follows, the timeline says so.
  await alice.page.getByRole('button', { name: 'Edit topic' }).click();
  const topic = alice.page.getByRole('dialog', { name: 'Edit topic' });
  await topic.getByLabel(/^Topic of/).fill('Launch on Friday');
  await topic.getByRole('button', { name: 'Save' }).click();
  await until('bob to see the new topic', async () =>
    (await bob.page.locator('#room-topic').textContent()) === 'Launch on Friday');
  await until('the topic line in bob\'s timeline', async () =>
    (await systemLines(bob.page)).some((s) => s.startsWith('alice set the topic: Launch on Friday')));

  // Carol: not in her sidebar, not among the public rooms, and closed to her.
  assert.equal(await nav(carol.page, 'secret').count(), 0);
  const made = await apiAs(alice.page, 'alice', 'POST', '/rooms', { name: 'lobby', kind: 'public', topic: 'Say hi' });
  assert.equal(made.status, 201);
  await carol.page.getByRole('button', { name: 'Browse rooms' }).click();
  const browse = carol.page.getByRole('dialog', { name: 'Public rooms' });
  const lobby = carol.page.locator('#browse-list [data-room="lobby"]');
  await until('the public rooms to load', async () => (await lobby.count()) === 1);
  assert.equal(await carol.page.locator('#browse-list [data-room="secret"]').count(), 0);
  assert.equal(await lobby.locator('.browse-topic').textContent(), 'Say hi');
  assert.equal(await lobby.locator('.browse-meta').textContent(), '1 member');
  // Joining from the list: the room opens, and is hers from then on.
  await lobby.getByRole('button', { name: 'Join # lobby' }).click();
  await until('lobby to be carol\'s current room', async () =>
    (await nav(carol.page, 'lobby').getAttribute('aria-current')) === 'true');
  assert.equal(await browse.isVisible(), false);
  await until('carol among lobby\'s members', async () => {
    const r = await apiAs(carol.page, 'carol', 'GET', '/rooms/lobby/members');
    return r.status === 200 && r.body.data.members.some((m) => m.username === 'carol');
  });
  await carol.page.getByRole('button', { name: 'Browse rooms' }).click();
  await until('lobby listed as joined', async () =>
    (await lobby.getByRole('button', { name: 'Open # lobby' }).count()) === 1);
  await browse.getByRole('button', { name: 'Close' }).click();
  const refused = await joinOverSocket(carol.page, 'carol', 'secret');
  assert.equal(refused.type, 'error', `a join by carol was answered ${JSON.stringify(refused)}`);
  assert.equal(refused.code, 'forbidden');
  assert.equal((await apiAs(carol.page, 'carol', 'GET', '/rooms/secret/messages')).status, 403);
  assert.equal((await apiAs(carol.page, 'carol', 'GET', '/rooms/secret/members')).status, 403);
  // Typing its name in the Room field does not get her in either.
  await carol.page.getByLabel('Room', { exact: true }).fill('secret');
  await carol.page.getByRole('button', { name: 'Join' }).click();
  await until('carol to be refused', async () =>
    (await carol.page.locator('#chat-alert').textContent()).includes('secret'));
  await until('secret gone from carol\'s sidebar', async () => (await nav(carol.page, 'secret').count()) === 0);
  assert.equal(await carol.page.getByText('for bob only').count(), 0);

  // Alice removes bob: it leaves his sidebar by itself.
  await alice.page.getByRole('button', { name: 'Remove bob from # secret' }).click();
  await alice.page.getByRole('dialog', { name: 'Remove member' }).getByRole('button', { name: 'Remove' }).click();
  await until('secret gone from bob\'s sidebar', async () => (await nav(bob.page, 'secret').count()) === 0);
  assert.equal((await apiAs(bob.page, 'bob', 'GET', '/rooms/secret/messages')).status, 403);
  await until('"alice removed bob" in alice\'s timeline', async () =>
    (await systemLines(alice.page)).some((s) => s.startsWith('alice removed bob')));
  assert.deepEqual([...alice.errors, ...bob.errors, ...carol.errors], []);
});

test('a new direct message appears in the other person\'s sidebar without a reload or a poll', async (t) => {
  const { server, browser } = await setUp(t);
  const alice = await person(browser);
  const bob = await person(browser);
  const listCalls = [];
  bob.page.on('request', (r) => {
    if (new URL(r.url()).pathname === '/api/v1/rooms') listCalls.push(Date.now());
  });
  await signUp(alice.page, server.base, 'alice');
  await signUp(bob.page, server.base, 'bob');
  const atStart = listCalls.length;
  assert.equal(atStart, 1, 'the list is read once at the start');

  // Alice starts it from the member list of general.
  await alice.page.locator('#member-list [data-user="bob"]').waitFor();
  await alice.page.getByRole('button', { name: 'Message bob' }).click();
  await until('the DM to open for alice', async () =>
    (await nav(alice.page, 'dm:alice:bob').getAttribute('aria-current')) === 'true');
  await say(alice.page, 'got a minute?');
  await shows(alice.page, ['got a minute?']);

  await hasBadges(bob.page, 'dm:alice:bob', { unread: '1', mentions: '' }, 'the DM in bob\'s sidebar, unread');
  await until('the tab title to count it', async () => (await bob.page.title()).startsWith('(1) '));
  assert.equal(listCalls.length, atStart, 'the sidebar came from the socket, not from GET /rooms');
  await nav(bob.page, 'dm:alice:bob').click();
  await shows(bob.page, ['got a minute?']);
  await hasBadges(bob.page, 'dm:alice:bob', { unread: '', mentions: '' }, 'the badge to clear');
  await until('the tab title without a count', async () => !(await bob.page.title()).startsWith('('));
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test('unread counts agree on two devices and after a reload; reading on one clears the other', async (t) => {
  const { server, browser } = await setUp(t);
  const alice = await person(browser);
  const phone = await person(browser); // bob's first device
  const laptop = await person(browser); // bob's second device
  await signUp(alice.page, server.base, 'alice');
  await signUp(phone.page, server.base, 'bob');
  await logIn(laptop.page, server.base, 'bob');
  await openRoom(alice.page, 'team');
  // Bob joins team on one device; the other hears of it (`room added`).
  await openRoom(phone.page, 'team');
  await until('team on bob\'s laptop', async () => (await nav(laptop.page, 'team').count()) === 1);
  await nav(phone.page, 'general').click();

  for (const text of ['first', 'second', 'third']) await say(alice.page, text);
  await shows(alice.page, ['first', 'second', 'third']);
  const three = { unread: '3', mentions: '' };
  await hasBadges(phone.page, 'team', three, 'three unread on the phone');
  await hasBadges(laptop.page, 'team', three, 'three unread on the laptop');
  await until('the laptop\'s title', async () => (await laptop.page.title()).startsWith('(3) '));

  // After a reload, the server's counts say the same.
  await laptop.page.reload();
  await connected(laptop.page);
  await hasBadges(laptop.page, 'team', three, 'three unread after a reload');

  // Bob reads team on his phone: the laptop's badge goes too.
  const sentBefore = phone.frames.sent.length;
  await nav(phone.page, 'team').click();
  await shows(phone.page, ['first', 'second', 'third']);
  await hasBadges(phone.page, 'team', { unread: '', mentions: '' }, 'the phone\'s badge to clear');
  await hasBadges(laptop.page, 'team', { unread: '', mentions: '' }, 'the laptop\'s badge to clear');
  await until('the laptop\'s title without a count', async () => !(await laptop.page.title()).startsWith('('));
  const reads = phone.frames.sent.slice(sentBefore).filter((f) => f && f.type === 'read');
  assert.equal(reads.length, 1, `one read frame: ${JSON.stringify(reads)}`);
  assert.equal(reads[0].room, 'team');
  assert.match(reads[0].cursor, /^\S+$/);

  // And the server agrees: a reload of the laptop shows nothing unread.
  await laptop.page.reload();
  await connected(laptop.page);
  await until('team after the reload', async () => (await nav(laptop.page, 'team').count()) === 1);
  await hasBadges(laptop.page, 'team', { unread: '', mentions: '' }, 'nothing unread after a reload');
  const list = await apiAs(laptop.page, 'bob', 'GET', '/rooms');
  const team = list.body.data.rooms.find((r) => r.room === 'team');
  assert.equal(team.unread, 0);

  // Leaving on one device: team goes from both sidebars, and alice's timeline says so.
  await phone.page.getByRole('button', { name: 'Leave # team' }).click();
  await phone.page.getByRole('dialog', { name: 'Leave room' }).getByRole('button', { name: 'Leave' }).click();
  await until('team gone from the phone', async () => (await nav(phone.page, 'team').count()) === 0);
  await until('team gone from the laptop', async () => (await nav(laptop.page, 'team').count()) === 0);
  await until('"bob left" in alice\'s timeline', async () =>
    (await systemLines(alice.page)).includes('bob left'));
  assert.deepEqual([...alice.errors, ...phone.errors, ...laptop.errors], []);
});

test('a mention of bob is highlighted and counted in his mention badge', async (t) => {
  const { server, browser } = await setUp(t);
  const alice = await person(browser);
  const bob = await person(browser);
  await signUp(alice.page, server.base, 'alice');
  await signUp(bob.page, server.base, 'bob');
  await openRoom(alice.page, 'team');
  await openRoom(bob.page, 'team');
  await nav(bob.page, 'general').click();

  await say(alice.page, 'morning all');
  await say(alice.page, 'hey @bob, can you look at this? (not @nobody)');
  await hasBadges(bob.page, 'team', { unread: '2', mentions: '@1' }, 'two unread, one mention');
  const link = nav(bob.page, 'team');
  assert.match(await link.getAttribute('aria-label'), /2 unread, 1 mentioning you/);
  // The second device of bob would say the same: the server counts it too.
  const list = await apiAs(bob.page, 'bob', 'GET', '/rooms');
  const team = list.body.data.rooms.find((r) => r.room === 'team');
  assert.deepEqual([team.unread, team.mentions], [2, 1]);

  await link.click();
  await shows(bob.page, ['morning all', 'hey @bob, can you look at this? (not @nobody)']);
  const mentioned = message(bob.page, 'hey @bob');
  await until('the message marked as mentioning bob', async () =>
    /\bmentions-me\b/.test(await mentioned.getAttribute('class')));
  assert.deepEqual(await mentioned.locator('.mention').allTextContents(), ['@bob'], 'only members are mentions');
  assert.match(await mentioned.locator('.mention').getAttribute('class'), /\bmention-me\b/);
  assert.doesNotMatch(await message(bob.page, 'morning all').getAttribute('class'), /\bmentions-me\b/);
  await hasBadges(bob.page, 'team', { unread: '', mentions: '' }, 'read: both badges clear');
  // Alice sees the name highlighted too, but it is not her mention.
  const hers = message(alice.page, 'hey @bob');
  await until('alice\'s copy highlighted', async () => (await hers.locator('.mention').count()) === 1);
  assert.doesNotMatch(await hers.getAttribute('class'), /\bmentions-me\b/);
  assert.equal(await hers.locator('.mention-me').count(), 0);
  // Never markup: the mention is a span made by the app, the rest text.
  assert.equal(await hers.locator('.body *:not(.mention)').count(), 0);

  // Bob answers with the @-list: "@al" offers alice, Tab takes her, Enter then sends.
  const box = bob.page.getByLabel('Message', { exact: true });
  await box.fill('');
  await box.pressSequentially('on it @al');
  const option = bob.page.getByRole('option', { name: 'alice' });
  await option.waitFor();
  assert.equal(await option.getAttribute('aria-selected'), 'true');
  await box.press('Tab');
  assert.equal(await box.inputValue(), 'on it @alice ');
  assert.equal(await bob.page.locator('#mention-list').isVisible(), false);
  await box.pressSequentially('thanks');
  await box.press('Enter');
  const answer = message(alice.page, 'on it @alice thanks');
  await until('alice\'s mention highlighted as hers', async () =>
    (await answer.locator('.mention-me').count()) === 1);
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test('counts beyond what is loaded: "99+", the server\'s numbers, a read elsewhere', async (t) => {
  const { server, browser } = await setUp(t, { env: { BANTER_LIMIT_SENDS: '1000/s' } });
  const alice = await person(browser);
  const bob = await person(browser);
  await signUp(alice.page, server.base, 'alice');
  await signUp(bob.page, server.base, 'bob');
  await openRoom(alice.page, 'busy');
  await openRoom(bob.page, 'busy');
  await nav(bob.page, 'general').click();

  // 120 messages, one of them for bob: more than the 100 the server counts.
  const bodies = Array.from({ length: 120 }, (_, i) => (i === 110 ? `number ${i}, @bob` : `number ${i}`));
  const cursors = await blast(alice.page, 'alice', 'busy', bodies);
  await hasBadges(bob.page, 'busy', { unread: '99+', mentions: '@1' }, 'counted live, capped');
  await until('the title capped too', async () => (await bob.page.title()).startsWith('(99+) '));

  // After a reload only the newest 50 are loaded: the numbers are the server's.
  const listCalls = [];
  bob.page.on('request', (r) => { if (new URL(r.url()).pathname === '/api/v1/rooms') listCalls.push(r.url()); });
  await bob.page.reload();
  await connected(bob.page);
  await hasBadges(bob.page, 'busy', { unread: '99+', mentions: '@1' }, 'the server\'s counts after a reload');
  const afterReload = listCalls.length;

  // Read elsewhere up to message 59, before what is loaded here: the app cannot count what
  // follows, and asks the list once (60 left, the mention among them).
  const put = async (cursor) => apiAs(bob.page, 'bob', 'PUT', '/rooms/busy/read', { cursor });
  assert.equal((await put(cursors[59])).status, 200);
  await hasBadges(bob.page, 'busy', { unread: '60', mentions: '@1' }, 'the server\'s count of what is left');
  assert.equal(listCalls.length, afterReload + 1, 'one GET /rooms for that read');
  // Up to message 115, inside what is loaded: counted here (4 left, the mention read).
  assert.equal((await put(cursors[115])).status, 200);
  await hasBadges(bob.page, 'busy', { unread: '4', mentions: '' }, 'counted from the loaded messages');
  assert.equal(listCalls.length, afterReload + 1, 'no GET /rooms for that one');
  // An older position changes nothing (the server never moves back).
  const back = await put(cursors[10]);
  assert.equal(back.status, 200);
  assert.equal(back.body.data.read_cursor, cursors[115]);
  await hasBadges(bob.page, 'busy', { unread: '4', mentions: '' }, 'still four');
  await nav(bob.page, 'busy').click();
  await hasBadges(bob.page, 'busy', { unread: '', mentions: '' }, 'read on opening');
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test('rooms on a phone and a desktop: nothing overflows (screenshots)', async (t) => {
  const { server, browser } = await setUp(t);
  // BANTER_SCREENSHOTS=1 refreshes docs/screenshots; otherwise they go to a temp dir.
  const dir = process.env.BANTER_SCREENSHOTS
    ? path.join(repoRoot, 'docs/screenshots')
    : path.join(os.tmpdir(), 'banter-screenshots');
  mkdirSync(dir, { recursive: true });
  const alice = await person(browser);
  const bob = await person(browser, { width: 375, height: 740 });
  await signUp(alice.page, server.base, 'alice');
  await signUp(bob.page, server.base, 'bob');
  for (const [name, topic] of [['design', 'Mockups and reviews'], ['releases', 'What ships when']]) {
    assert.equal((await apiAs(alice.page, 'alice', 'POST', '/rooms', { name, kind: 'public', topic })).status, 201);
  }
  await alice.page.getByRole('button', { name: 'New room' }).click();
  const create = alice.page.getByRole('dialog', { name: 'Create a room' });
  await create.getByLabel('Name').fill('launch');
  await create.getByRole('radio', { name: /^Private/ }).check();
  await create.getByLabel(/^Topic/).fill('Everything about Friday’s launch: checklist, owners, comms');
  await create.getByRole('button', { name: 'Create room' }).click();
  await until('launch open', async () => (await nav(alice.page, 'launch').getAttribute('aria-current')) === 'true');
  await alice.page.getByLabel('Add someone to this room').fill('bob');
  await alice.page.getByLabel('Add someone to this room').press('Enter');
  await until('launch on bob\'s phone', async () => (await nav(bob.page, 'launch').count()) === 1);
  await say(alice.page, 'Checklist is in the doc. @bob, can you own the release notes?');
  await say(alice.page, 'I will draft the announcement tonight.');
  await hasBadges(bob.page, 'launch', { unread: '2', mentions: '@1' }, 'bob\'s badges');

  const overflow = (page) => page.evaluate(() =>
    document.documentElement.scrollWidth - document.documentElement.clientWidth);
  const fits = async (what, locator) => {
    const box = await locator.boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= 375, `${what} fits the width: ${JSON.stringify(box)}`);
  };
  const shot = { animations: 'disabled', caret: 'hide' };
  assert.ok((await overflow(bob.page)) <= 0, 'the phone page does not scroll sideways');
  await fits('the mention badge', nav(bob.page, 'launch').locator('.mention-badge'));
  await bob.page.mouse.move(0, 0);
  await bob.page.screenshot({ path: path.join(dir, 'phone-rooms.png'), ...shot });

  // The room on the phone: its name whole, its members in the drawer.
  await nav(bob.page, 'launch').click();
  await shows(bob.page, ['Checklist is in the doc. @bob, can you own the release notes?', 'I will draft the announcement tonight.']);
  const title = await bob.page.locator('#room-name').evaluate((n) => n.scrollWidth <= n.clientWidth);
  assert.ok(title, 'the room\'s name is not cut off');
  await bob.page.getByRole('button', { name: /^Members/ }).click();
  await until('the member drawer slid in', async () => {
    const box = await bob.page.locator('#members').boundingBox();
    return box && Math.abs(box.x + box.width - 375) < 1;
  });
  await fits('the drawer\'s Leave', bob.page.getByRole('button', { name: 'Leave launch' }));
  await bob.page.getByRole('button', { name: 'Close the member list' }).click();
  // The dialogs fit too.
  await bob.page.getByRole('button', { name: 'Menu' }).click();
  await bob.page.getByRole('button', { name: 'Browse rooms' }).click();
  await until('three public rooms', async () => (await bob.page.locator('#browse-list > li').count()) === 3);
  await fits('the Join button', bob.page.getByRole('button', { name: 'Join # design' }));
  assert.ok((await overflow(bob.page)) <= 0, 'the browse dialog does not scroll sideways');
  await bob.page.screenshot({ path: path.join(dir, 'phone-browse.png'), ...shot });
  await bob.page.getByRole('dialog', { name: 'Public rooms' }).getByRole('button', { name: 'Close' }).click();

  await alice.page.mouse.move(0, 0);
  await alice.page.screenshot({ path: path.join(dir, 'desktop-rooms.png'), ...shot });
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});
