// Search in a real Chromium: Ctrl+K and / open it, typing finds last week's decision (a
// word's beginning is enough), the highlight marks it and shows markup as text, a click opens
// the room scrolled to the message (older than the page the room loads, so its context comes
// with a button for what is between), and another person's private room is never found.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { blast, connected, message, openRoom, person, repoRoot, say, setUp, signUp, until } from './harness.mjs';

const shots = process.env.BANTER_SCREENSHOTS
  ? path.join(repoRoot, 'docs/screenshots')
  : path.join(os.tmpdir(), 'banter-screenshots');

test('typing a word finds an old message, and a click opens it in its room, marked', async (t) => {
  // A hundred messages from one person in a moment: more than the send rate lets people send.
  const { server, browser } = await setUp(t, { env: { BANTER_LIMIT_SENDS: 'off' } });
  const alice = await person(browser);
  const bob = await person(browser);
  await signUp(alice.page, server.base, 'alice');
  await signUp(bob.page, server.base, 'bob');
  await openRoom(alice.page, 'team');
  await openRoom(bob.page, 'team');

  // Last week's decision, then enough talk that the room's first page no longer has it.
  await say(alice.page, 'Decision: we ship the <b>Zeppelin</b> release on Friday');
  await until('the decision to be sent', async () =>
    (await message(alice.page, 'Decision: we ship').getAttribute('data-state')) === 'sent');
  await blast(alice.page, 'alice', 'team', Array.from({ length: 120 }, (_, i) => `chatter ${i}`));
  // A private room of Alice's that Bob is not in, with the same word.
  await alice.page.getByRole('button', { name: 'New room' }).click();
  const create = alice.page.getByRole('dialog', { name: 'Create a room' });
  await create.getByLabel('Name').fill('secret');
  await create.getByRole('radio', { name: /^Private/ }).check();
  await create.getByRole('button', { name: 'Create room' }).click();
  await until('the private room to open', async () =>
    (await alice.page.locator('nav[aria-label="Rooms"] [data-room="secret"]').getAttribute('aria-current')) === 'true');
  await say(alice.page, 'zeppelin budget is secret');
  await until('the secret to be sent', async () =>
    (await message(alice.page, 'zeppelin budget').getAttribute('data-state')) === 'sent');

  // Bob, in another room, comes back to the page (which then has none of #team's messages),
  // presses Ctrl+K and types the start of the word.
  await openRoom(bob.page, 'general');
  await bob.page.reload();
  await connected(bob.page);
  await bob.page.keyboard.press('Control+K');
  const dialog = bob.page.locator('#search-dialog');
  await until('the search to open', () => dialog.evaluate((d) => d.open));
  await bob.page.keyboard.type('zepp');
  const results = bob.page.locator('#search-results .search-result');
  await until('a result', async () => (await results.count()) === 1);
  assert.match(await bob.page.locator('#search-note').innerText(), /1 message/);
  const first = results.first();
  assert.match(await first.innerText(), /# team/);
  assert.match(await first.innerText(), /alice/);
  // The markup someone typed is text; the match is marked.
  assert.equal(await first.locator('mark').innerText(), 'Zeppelin');
  assert.match(await first.locator('.search-text').innerText(), /<b>Zeppelin<\/b> release/);
  assert.equal(await first.locator('.search-text b').count(), 0);
  mkdirSync(shots, { recursive: true });
  await bob.page.screenshot({ path: path.join(shots, 'search.png') });

  // A click opens #team at the message, marked, with the way down to the newest.
  await first.click();
  await until('the search to close', async () => !(await dialog.evaluate((d) => d.open)));
  await until('team to be current', async () =>
    (await bob.page.locator('nav[aria-label="Rooms"] [data-room="team"]').getAttribute('aria-current')) === 'true');
  const found = message(bob.page, 'Decision: we ship');
  await until('the message to be marked', async () => /is-found/.test(await found.getAttribute('class')));
  await until('the message to be in view', () => found.evaluate((li) => {
    const box = li.getBoundingClientRect();
    const view = document.getElementById('messages').getBoundingClientRect();
    return box.top >= view.top && box.bottom <= view.bottom;
  }));
  const gap = bob.page.getByRole('button', { name: 'Load newer messages' });
  assert.equal(await gap.count(), 1, 'the messages between its context and the newest are a button away');
  await bob.page.screenshot({ path: path.join(shots, 'search-opened.png') });
  // Reading down: the gap closes once it reaches the newest page, with every message once.
  // While a page loads its button is named "Loading…", so the gap is found by its place in
  // the list, and a click is done when the gap is gone or its button is enabled again.
  const gapDone = () => bob.page.evaluate(() => {
    const item = document.querySelector('#message-list > li.gap');
    return !item || item.querySelector('button').getAttribute('aria-disabled') === 'false';
  });
  // The first page is held back until its button has shown that it is loading.
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  let holding = true;
  await bob.page.route(/\/messages\?after=/, async (route) => {
    if (holding) { holding = false; await held; }
    await route.continue();
  });
  await bob.page.locator('#message-list > li.gap button').click();
  const busy = bob.page.locator('#message-list > li.gap button');
  assert.equal(await busy.innerText(), 'Loading…');
  assert.equal(await busy.getAttribute('aria-disabled'), 'true');
  release();
  await until('the gap to load', gapDone);
  assert.equal(holding, false, 'the page after the gap went through the hold');
  while (await bob.page.locator('#message-list > li.gap').count()) {
    await bob.page.locator('#message-list > li.gap button').click();
    await until('the gap to load', gapDone);
  }
  const shown = await bob.page.locator('#message-list > li.msg .body').allTextContents();
  const chatter = shown.filter((b) => b.startsWith('chatter'));
  assert.equal(new Set(chatter).size, chatter.length, 'no message twice');
  assert.equal(chatter[chatter.length - 1], 'chatter 119');
  const at = shown.findIndex((b) => b.startsWith('Decision'));
  assert.deepEqual(shown.slice(at + 1, at + 4), ['chatter 0', 'chatter 1', 'chatter 2'], 'nothing missed after it');
  assert.equal(chatter.length - chatter.indexOf('chatter 0'), 120, 'every message down to the newest');

  // "/" opens it again; Alice's private room is not Bob's to find, hers to find.
  await bob.page.locator('#messages').focus();
  await bob.page.keyboard.press('/');
  await until('the search to open again', () => dialog.evaluate((d) => d.open));
  await bob.page.locator('#search-input').fill('budget');
  await until('no results', async () => /No messages match/.test(await bob.page.locator('#search-note').innerText()));
  await alice.page.keyboard.press('Control+K');
  await alice.page.locator('#search-input').fill('budget');
  await until('alice finds her own', async () =>
    (await alice.page.locator('#search-results .search-result').count()) === 1);
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
});

test('on a phone, search fits the screen and its result opens the room', async (t) => {
  const { server, browser } = await setUp(t);
  const alice = await person(browser, { width: 375, height: 740 });
  await signUp(alice.page, server.base, 'alice');
  await openRoom(alice.page, 'team');
  await say(alice.page, 'the quarterly numbers are in the shared folder');
  await until('the message to be sent', async () =>
    (await message(alice.page, 'the quarterly numbers').getAttribute('data-state')) === 'sent');
  await openRoom(alice.page, 'general');
  // The header's search button: an icon on a phone, named for screen readers.
  await alice.page.getByRole('button', { name: 'Search messages' }).click();
  await alice.page.locator('#search-input').fill('quart numb');
  const result = alice.page.locator('#search-results .search-result');
  await until('the result', async () => (await result.count()) === 1);
  const box = await alice.page.locator('#search-dialog').boundingBox();
  assert.ok(box && box.x >= 0 && box.x + box.width <= 375, `the dialog fits: ${JSON.stringify(box)}`);
  assert.equal(await alice.page.evaluate(() =>
    document.documentElement.scrollWidth - document.documentElement.clientWidth), 0, 'nothing scrolls sideways');
  mkdirSync(shots, { recursive: true });
  await alice.page.screenshot({ path: path.join(shots, 'phone-search.png') });
  await result.click();
  await until('the message to be marked', async () =>
    /is-found/.test(await message(alice.page, 'the quarterly numbers').getAttribute('class')));
  assert.deepEqual(alice.errors, []);
});
