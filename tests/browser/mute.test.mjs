// Muting a room (Slack's "Mute channel") in a real Chromium against a real `banter serve`:
// the header's bell, the sidebar's look (dimmed, a struck bell, a grey unread count, mentions
// as ever), the `muted` frame reaching the user's other devices at once, the room list after
// a reload, unmuting, and, while the tab is hidden, no desktop notification nor chime nor title
// count for a muted room except what mentions the user.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { blast, connected, openRoom, person, repoRoot, setUp, signUp, spyOnNotifications, until } from './harness.mjs';

const shots = process.env.BANTER_SCREENSHOTS
  ? path.join(repoRoot, 'docs/screenshots')
  : path.join(os.tmpdir(), 'banter-screenshots');
const shot = { animations: 'disabled', caret: 'hide' };

/** The sidebar's entry of `room`. */
const nav = (page, room) => page.locator(`nav[aria-label="Rooms"] [data-room="${room}"]`);

/** Waits until `room` is the room on screen. */
const isCurrent = (page, room) => until(`${room} to be current`, async () =>
  (await nav(page, room).getAttribute('aria-current')) === 'true');

/** The header's bell (its name stays "Mute room"; aria-pressed says whether it is). */
const bell = (page) => page.getByRole('button', { name: 'Mute room', exact: true });

/** How the sidebar shows `room`: muted or not, its icon, its spoken name, its badges. */
function looks(page, room) {
  return nav(page, room).evaluate((link) => {
    const badge = link.querySelector('.unread');
    const at = link.querySelector('.mention-badge');
    return {
      muted: link.classList.contains('is-muted'),
      icon: !link.querySelector('.room-muted').hidden,
      label: link.getAttribute('aria-label'),
      title: link.title,
      unread: badge.hidden ? '' : badge.textContent,
      unreadBg: getComputedStyle(badge).backgroundColor,
      mentions: at.hidden ? '' : at.textContent,
    };
  });
}

/** Waits until the sidebar shows `room` muted (or not) on `page`. */
const showsMuted = (page, room, muted, what) => until(what, async () => {
  const l = await looks(page, room);
  return l.muted === muted && l.icon === muted && /, muted/.test(l.label) === muted;
});

/** Logs in an existing account (another device of someone), and waits for the chat. */
async function logIn(page, base, name, password = 'password123') {
  await page.goto(base);
  await page.getByLabel('Username').fill(name);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await connected(page);
}

/** The room list's entry of `room`, as the server has it for the page's user. */
function entryOf(page, user, room) {
  return page.evaluate(async ({ user, room }) => {
    const { token } = JSON.parse(localStorage.getItem(`banter.session.${user}`));
    const r = await fetch('/api/v1/rooms', { headers: { Authorization: `Bearer ${token}` } });
    return (await r.json()).data.rooms.find((e) => e.room === room);
  }, { user, room });
}

/** Pretends the tab is hidden (another tab in front) or shown again. */
function setHidden(page, hidden) {
  return page.evaluate((hidden) => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

const ACCENT = 'rgb(52, 86, 209)';

test('muting a room: the header\'s bell, another device at once, a reload, and unmuting', async (t) => {
  const { server, browser } = await setUp(t, { env: { BANTER_LIMIT_SENDS: 'off' } });
  const alice = await person(browser);
  const bob = await person(browser);
  const phone = await person(browser, { width: 375, height: 740 }); // bob's second device
  await signUp(alice.page, server.base, 'alice');
  await signUp(bob.page, server.base, 'bob');
  for (const room of ['team', 'design']) await openRoom(alice.page, room);
  for (const room of ['design', 'team']) await openRoom(bob.page, room);
  await logIn(phone.page, server.base, 'bob');
  await until('team on bob\'s phone', async () => (await nav(phone.page, 'team').count()) === 1);
  assert.equal((await entryOf(bob.page, 'bob', 'team')).muted, false, 'the list says not muted');
  assert.equal(await bell(bob.page).getAttribute('aria-pressed'), 'false');
  assert.equal((await looks(bob.page, 'team')).muted, false);

  // Bob mutes # team from its header.
  await bell(bob.page).click();
  assert.equal(await bell(bob.page).getAttribute('aria-pressed'), 'true');
  await showsMuted(bob.page, 'team', true, 'team muted in bob\'s sidebar');
  await until('the server to have it muted', async () => (await entryOf(bob.page, 'bob', 'team')).muted === true);
  assert.match((await looks(bob.page, 'team')).title, /muted/);
  // His phone: at once, from the `muted` frame (no reload).
  await showsMuted(phone.page, 'team', true, 'team muted on bob\'s phone');
  assert.ok(phone.frames.received.some((f) => f && f.type === 'muted' && f.room === 'team' && f.muted === true),
    'the phone heard a muted frame');
  // And # random, made and muted on the desktop, which stays on it.
  await openRoom(bob.page, 'random');
  await until('random to be a membership', async () => !(await bell(bob.page).isHidden()));
  await bell(bob.page).click();
  await showsMuted(phone.page, 'random', true, 'random muted on bob\'s phone');
  await nav(phone.page, 'random').click();
  await isCurrent(phone.page, 'random');
  // And # general (for the screenshot: a muted room with plain unread messages).
  await nav(bob.page, 'general').click();
  await isCurrent(bob.page, 'general');
  await bell(bob.page).click();
  await showsMuted(bob.page, 'general', true, 'general muted');
  await nav(bob.page, 'random').click();
  await isCurrent(bob.page, 'random');

  // Unread in a muted room is quiet (a grey badge, not in the title); a mention still shows.
  await blast(alice.page, 'alice', 'team', ['the deploy is at three']);
  await until('a grey unread badge on the phone', async () => (await looks(phone.page, 'team')).unread === '1');
  const quiet = await looks(phone.page, 'team');
  assert.notEqual(quiet.unreadBg, ACCENT, 'not the accent colour');
  assert.equal(await nav(phone.page, 'team').evaluate((l) => l.classList.contains('has-unread')), false, 'not bold');
  assert.ok(!(await phone.page.title()).startsWith('('), `the title does not count it: ${await phone.page.title()}`);
  await blast(alice.page, 'alice', 'team', ['@bob can you check the dashboards?']);
  await until('the mention on the phone', async () => (await looks(phone.page, 'team')).mentions === '@1');
  assert.equal((await looks(phone.page, 'team')).unread, '2');
  await until('the title to count the mention', async () => (await phone.page.title()).startsWith('(1) '));
  // A room not muted: the accent badge, counted in the title.
  await blast(alice.page, 'alice', 'design', ['new mockups are up']);
  await until('design unread on the phone', async () => (await looks(phone.page, 'design')).unread === '1');
  assert.equal((await looks(phone.page, 'design')).unreadBg, ACCENT);
  await until('the title to count two', async () => (await phone.page.title()).startsWith('(2) '));
  // Nobody else hears of it.
  assert.ok(!alice.frames.received.some((f) => f && f.type === 'muted'), 'alice heard nothing');

  // Screenshots: the sidebar with muted rooms (a mention in one), and the bell pressed.
  mkdirSync(shots, { recursive: true });
  await blast(alice.page, 'alice', 'general', ['standup in five']);
  await until('the desktop\'s badges', async () =>
    (await looks(bob.page, 'team')).mentions === '@1' && (await looks(bob.page, 'general')).unread === '1');
  await until('general\'s grey badge on the phone', async () => (await looks(phone.page, 'general')).unread === '1');
  assert.ok((await phone.page.title()).startsWith('(2) '), `a muted room's plain message is not in the title: ${await phone.page.title()}`);
  assert.equal(await bell(bob.page).getAttribute('aria-pressed'), 'true');
  await bob.page.mouse.move(0, 0);
  await bob.page.screenshot({ path: path.join(shots, 'mute.png'), ...shot });
  const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, 'the phone does not scroll sideways');

  // A reload keeps it (the room list's `muted`).
  await phone.page.reload();
  await connected(phone.page);
  await showsMuted(phone.page, 'team', true, 'still muted after a reload');
  await isCurrent(phone.page, 'random');
  const whole = await phone.page.locator('#room-name').evaluate((n) => n.scrollWidth <= n.clientWidth);
  assert.ok(whole, 'the room\'s name is whole beside the bell');
  await until('the phone\'s bell pressed', async () => (await bell(phone.page).getAttribute('aria-pressed')) === 'true');
  await phone.page.screenshot({ path: path.join(shots, 'phone-mute.png'), ...shot });

  // Unmuted on the phone: the desktop follows at once, header and sidebar.
  await nav(bob.page, 'team').click();
  await isCurrent(bob.page, 'team');
  await nav(phone.page, 'team').click();
  await isCurrent(phone.page, 'team');
  await until('the phone\'s bell pressed for team', async () => (await bell(phone.page).getAttribute('aria-pressed')) === 'true');
  await bell(phone.page).click();
  assert.equal(await bell(phone.page).getAttribute('aria-pressed'), 'false');
  await showsMuted(phone.page, 'team', false, 'unmuted on the phone');
  await showsMuted(bob.page, 'team', false, 'unmuted on the desktop');
  await until('the desktop\'s bell released', async () => (await bell(bob.page).getAttribute('aria-pressed')) === 'false');
  await until('the server to have it unmuted', async () => (await entryOf(bob.page, 'bob', 'team')).muted === false);
  await bob.page.reload();
  await connected(bob.page);
  await isCurrent(bob.page, 'team');
  assert.equal(await bell(bob.page).getAttribute('aria-pressed'), 'false');
  assert.equal((await looks(bob.page, 'team')).muted, false);
  assert.equal((await looks(bob.page, 'random')).muted, true, 'random is still muted');
  assert.deepEqual([...alice.errors, ...bob.errors, ...phone.errors], []);
});

test('while the tab is hidden a muted room is silent, except for a mention', async (t) => {
  const { server, browser } = await setUp(t, { env: { BANTER_LIMIT_SENDS: 'off' } });
  const alice = await person(browser);
  const bob = await person(browser);
  await bob.context.grantPermissions(['notifications'], { origin: server.base });
  await spyOnNotifications(bob.context);
  await signUp(alice.page, server.base, 'alice');
  await signUp(bob.page, server.base, 'bob');
  await openRoom(bob.page, 'team');
  await bell(bob.page).click();
  await showsMuted(bob.page, 'team', true, 'team muted');
  // A DM, muted too.
  await blast(alice.page, 'alice', 'dm:alice:bob', ['hello']);
  await until('the DM in bob\'s sidebar', async () => (await nav(bob.page, 'dm:alice:bob').count()) === 1);
  await nav(bob.page, 'dm:alice:bob').click();
  await isCurrent(bob.page, 'dm:alice:bob');
  await bell(bob.page).click();
  await showsMuted(bob.page, 'dm:alice:bob', true, 'the DM muted');
  await until('the server to have both muted', async () =>
    (await entryOf(bob.page, 'bob', 'team')).muted && (await entryOf(bob.page, 'bob', 'dm:alice:bob')).muted);
  await nav(bob.page, 'general').click();
  await isCurrent(bob.page, 'general');
  // The sound on, as a person does it (the panel plays a sample).
  await bob.page.getByRole('button', { name: 'Notifications' }).click();
  const dialog = bob.page.getByRole('dialog', { name: 'Notifications' });
  await dialog.getByRole('checkbox', { name: /Play a sound/ }).check();
  await until('the sample chime', () => bob.page.evaluate(() => window.__notify.chimes === 1));
  await dialog.getByRole('button', { name: 'Done' }).click();
  await dialog.waitFor({ state: 'hidden' });

  // Hidden: in each muted room a plain message, then a mention. A room's messages come in
  // order, so once a mention is shown the plain message before it was heard, and was silent.
  await setHidden(bob.page, true);
  await blast(alice.page, 'alice', 'team', ['plain words in team', '@bob a question in team']);
  await blast(alice.page, 'alice', 'dm:alice:bob', ['plain words in the DM', '@bob a question in the DM']);
  await until('two notifications', () => bob.page.evaluate(() => window.__notify.shown.length === 2));
  assert.ok(bob.frames.received.some((f) => f && f.type === 'message' && f.body === 'plain words in team'));
  assert.ok(bob.frames.received.some((f) => f && f.type === 'message' && f.body === 'plain words in the DM'));
  assert.deepEqual(await bob.page.evaluate(() => window.__notify.shown.map(({ title, body, tag }) => ({ title, body, tag }))), [
    { title: 'alice in #team', body: '@bob a question in team', tag: 'room:team' },
    { title: 'alice', body: '@bob a question in the DM', tag: 'room:dm:alice:bob' },
  ]);
  assert.equal(await bob.page.evaluate(() => window.__notify.chimes), 3, 'the sample and a chime per mention');
  // The title counts the two mentions, not the plain messages.
  await until('the title to count two', async () => (await bob.page.title()).startsWith('(2) '));
  // A plain message in a room that is not muted still counts (general, on screen).
  await blast(alice.page, 'alice', 'general', ['plain words in general']);
  await until('the title to count three', async () => (await bob.page.title()).startsWith('(3) '));
  assert.equal(await bob.page.evaluate(() => window.__notify.shown.length), 2, 'still two notifications');

  // Shown again: general is read; the title counts the muted rooms' mentions only.
  await setHidden(bob.page, false);
  await until('the title to count the mentions', async () => (await bob.page.title()).startsWith('(2) # general'));
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});
