// Edits, deletes, reactions, replies and threads in a real Chromium against a real
// `banter serve`: what one person does, the others see live, after a reload, and after
// being offline while it happened. And message text (links, code) never becomes markup.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  connected, deleteMessage as remove, editMessage as edit, launchBrowser, message, openRoom, person,
  react, reply, say, shows, signUp, startProxy, startServer, until,
} from './harness.mjs';

/** A server and a browser for one test, closed after it. */
async function setUp(t) {
  const server = await startServer();
  const browser = await launchBrowser();
  t.after(async () => {
    await browser.close();
    await server.stop();
  });
  return { server, browser };
}

/** People signed up in contexts of their own, all in `room` (`via`: a base URL per name). */
async function inRoom(browser, base, room, names, via = {}) {
  const people = {};
  for (const name of names) {
    people[name] = await person(browser);
    await signUp(people[name].page, via[name] || base, name);
    await openRoom(people[name].page, room);
  }
  return people;
}

/** Waits until every message of mine on the page is acked. */
async function settled(page) {
  await until('every message acked', async () =>
    (await page.locator('#message-list > li.msg:not([data-state="sent"])').count()) === 0);
}

/**
 * What the timeline shows of each message: body, edited or not, the quote of what it
 * replies to, its reply count, and its reactions (emoji and count), in order.
 */
function timeline(page) {
  return page.locator('#message-list > li.msg').evaluateAll((items) => items.map((li) => {
    const shown = (sel) => {
      const n = li.querySelector(sel);
      return n && !n.hidden ? n.textContent : '';
    };
    return {
      body: li.querySelector('.body').textContent,
      edited: !li.querySelector('.edited').hidden,
      quote: shown('.reply-quote'),
      replies: shown('.thread-link'),
      reactions: [...li.querySelectorAll('.reaction')].map((c) => c.textContent),
    };
  }));
}

/** Waits until the timeline of `page` is exactly `want`. */
async function looks(page, want, ms = 15000) {
  let got;
  try {
    await until('the timeline', async () => {
      got = await timeline(page);
      return JSON.stringify(got) === JSON.stringify(want);
    }, ms);
  } catch (e) {
    throw new Error(`${e.message}\nwant ${JSON.stringify(want)}\ngot  ${JSON.stringify(got)}`);
  }
}

/** The newest cursor among the frames of `room` received (of the given types: the room's log). */
function newest(frames, room, types = ['message', 'edited', 'deleted', 'reaction']) {
  return frames.received
    .filter((f) => f && f.room === room && types.includes(f.type) && typeof f.cursor === 'string')
    .reduce((max, f) => (f.cursor > max ? f.cursor : max), '');
}

/** The last `join` of `room` sent. */
const lastJoin = (frames, room) => frames.sent.filter((f) => f && f.type === 'join' && f.room === room).pop();

const chip = (page, body, emoji) => message(page, body).locator(`.reaction[data-emoji="${emoji}"]`);

// After: "plan v2" edited, 👍 from both and 🎉 from bob on it, bob's reply in its thread,
// and alice's "oops" deleted.
const AFTER = [
  { body: 'plan v2', edited: true, quote: '', replies: '1 reply', reactions: ['👍2', '🎉1'] },
  { body: 'sounds good', edited: false, quote: '', replies: '', reactions: [] },
  { body: 'which part first?', edited: false, quote: 'aliceplan v2', replies: '', reactions: [] },
];

/** Alice and Bob edit, react, reply and delete (from the timeline as it is before). */
async function discuss(alice, bob) {
  await edit(alice, 'plan v1', 'plan v2');
  await react(bob, 'plan v2', '👍');
  await react(bob, 'plan v2', '🎉');
  // Alice adds hers by clicking bob's chip.
  await until('bob\'s 👍 on alice\'s page', async () => (await chip(alice, 'plan v2', '👍').count()) === 1);
  await chip(alice, 'plan v2', '👍').click();
  await reply(bob, 'plan v2', 'which part first?');
  await remove(alice, 'oops');
}

test('edits, reactions, replies and deletes reach everyone, and a reload shows the same', async (t) => {
  const { server, browser } = await setUp(t);
  const { alice, bob } = await inRoom(browser, server.base, 'plans', ['alice', 'bob']);
  await say(alice.page, 'plan v1');
  await say(bob.page, 'sounds good');
  await say(alice.page, 'oops');
  await shows(bob.page, ['plan v1', 'sounds good', 'oops']);
  await settled(alice.page);
  await settled(bob.page);

  await discuss(alice.page, bob.page);
  await looks(alice.page, AFTER);
  await looks(bob.page, AFTER);

  // Own reactions stand out; a chip says who reacted; the edit mark says when.
  assert.equal(await chip(alice.page, 'plan v2', '👍').getAttribute('aria-pressed'), 'true');
  assert.equal(await chip(alice.page, 'plan v2', '🎉').getAttribute('aria-pressed'), 'false');
  assert.match(await chip(alice.page, 'plan v2', '👍').getAttribute('title'), /\bbob\b.*\byou\b|\byou\b.*\bbob\b/);
  assert.match(await message(bob.page, 'plan v2').locator('.edited').getAttribute('title'), /^Edited \S/);

  // The thread panel: the root and the reply, live; a reply from the panel is in both places.
  await alice.page.getByRole('button', { name: '1 reply' }).click();
  await until('the thread panel', async () =>
    JSON.stringify(await alice.page.locator('#thread-list > li.msg .body').allTextContents()) ===
    JSON.stringify(['plan v2', 'which part first?']));
  const box = alice.page.getByRole('textbox', { name: 'Reply' });
  await box.fill('the API');
  await box.press('Enter');
  await until('bob to see the second reply', async () =>
    (await message(bob.page, 'the API').locator('.reply-quote').textContent()) === 'aliceplan v2');
  await until('two replies', async () =>
    (await message(bob.page, 'plan v2').locator('.thread-link').textContent()) === '2 replies');
  const after = [...AFTER.slice(0, 3), { body: 'the API', edited: false, quote: 'aliceplan v2', replies: '', reactions: [] }];
  after[0] = { ...after[0], replies: '2 replies' };
  await looks(alice.page, after);
  await looks(bob.page, after);

  // The quote leads to what it answers: on screen, briefly highlighted.
  await message(bob.page, 'which part first?').locator('.reply-quote').click();
  await until('the parent highlighted', async () =>
    /\bflash\b/.test(await message(bob.page, 'plan v2').getAttribute('class')));

  // Someone who comes later, and reloads, sees the same state (history is current state).
  const carol = await person(browser);
  await signUp(carol.page, server.base, 'carol');
  await openRoom(carol.page, 'plans');
  await looks(carol.page, after);
  await carol.page.reload();
  await connected(carol.page);
  await carol.page.locator('nav[aria-label="Rooms"] [data-room="plans"]').click();
  await looks(carol.page, after);
  assert.equal(await chip(carol.page, 'plan v2', '👍').getAttribute('aria-pressed'), 'false');
  assert.match(await chip(carol.page, 'plan v2', '👍').getAttribute('title'), /alice/);
  await alice.page.reload();
  await connected(alice.page);
  await looks(alice.page, after);
  assert.equal(await chip(alice.page, 'plan v2', '👍').getAttribute('aria-pressed'), 'true');

  assert.deepEqual([...alice.errors, ...bob.errors, ...carol.errors], []);
});

test('a tab offline while others edit, react, reply and delete catches up exactly', async (t) => {
  const { server, browser } = await setUp(t);
  const proxy = await startProxy(server.base);
  t.after(() => proxy.close());
  // Alice reaches the server through a proxy that can cut her off.
  const { alice, bob, dave } = await inRoom(browser, server.base, 'plans', ['alice', 'bob', 'dave'], { alice: proxy.base });
  await say(bob.page, 'plan v1');
  await say(dave.page, 'sounds good');
  await say(bob.page, 'oops');
  await shows(alice.page, ['plan v1', 'sounds good', 'oops']);
  await settled(bob.page);
  await settled(dave.page);
  // Something from before the drop for her to have: her own reaction.
  await react(alice.page, 'oops', '😮');
  await until('the reaction everywhere', async () => (await chip(bob.page, 'oops', '😮').count()) === 1);
  // The newest event of the room is that reaction, newer than every message.
  const before = newest(bob.frames, 'plans');
  assert.ok(before > newest(bob.frames, 'plans', ['message']), 'the reaction is the newest event');

  proxy.drop();
  await until('alice to notice', async () =>
    (await alice.page.locator('#conn-status').getAttribute('data-state')) !== 'connected');
  // While she is away: an edit, reactions added and one taken back, a reply, a delete.
  await edit(bob.page, 'plan v1', 'plan v2');
  await react(dave.page, 'plan v2', '👍');
  await react(bob.page, 'plan v2', '👍');
  await react(bob.page, 'plan v2', '🎉');
  await until('bob\'s 🎉', async () => (await chip(bob.page, 'plan v2', '🎉').count()) === 1);
  await chip(bob.page, 'plan v2', '🎉').click(); // and taken back
  await reply(dave.page, 'plan v2', 'which part first?');
  await remove(bob.page, 'oops');
  const want = [
    { body: 'plan v2', edited: true, quote: '', replies: '1 reply', reactions: ['👍2'] },
    { body: 'sounds good', edited: false, quote: '', replies: '', reactions: [] },
    { body: 'which part first?', edited: false, quote: 'bobplan v2', replies: '', reactions: [] },
  ];
  await looks(bob.page, want);
  await looks(dave.page, want);

  proxy.restore();
  await connected(alice.page);
  await looks(alice.page, want, 30000);
  // She resumed from the newest event she had (her reaction), not from the newest message;
  // and now her resume point is past everything that happened while she was away.
  assert.equal(lastJoin(alice.frames, 'plans').since, before);
  // A second drop replays nothing twice.
  await until('alice to have every event', async () => newest(alice.frames, 'plans') === newest(bob.frames, 'plans'));
  proxy.drop();
  await until('alice to notice again', async () =>
    (await alice.page.locator('#conn-status').getAttribute('data-state')) !== 'connected');
  proxy.restore();
  await connected(alice.page);
  await until('alice to join again', async () => lastJoin(alice.frames, 'plans').since !== before);
  assert.equal(lastJoin(alice.frames, 'plans').since, newest(bob.frames, 'plans'));
  await looks(alice.page, want);
  await alice.page.reload();
  await connected(alice.page);
  await alice.page.locator('nav[aria-label="Rooms"] [data-room="plans"]').click();
  await looks(alice.page, want);
  assert.deepEqual([...alice.errors, ...bob.errors, ...dave.errors], []);
});

test('Up in an empty composer edits my last message; Escape leaves it as it was', async (t) => {
  const { server, browser } = await setUp(t);
  const { alice, bob } = await inRoom(browser, server.base, 'typos', ['alice', 'bob']);
  await say(alice.page, 'first');
  await say(alice.page, 'secnod');
  await say(bob.page, 'from bob');
  await shows(alice.page, ['first', 'secnod', 'from bob']);
  await settled(alice.page);

  const composer = alice.page.getByLabel('Message', { exact: true });
  await composer.focus();
  await composer.press('ArrowUp');
  const box = message(alice.page, 'secnod').getByRole('textbox', { name: 'Edit message' });
  await until('the editor to have focus', async () => box.evaluate((n) => n === document.activeElement));
  assert.equal(await box.inputValue(), 'secnod');
  // Escape: nothing changes, the composer has the focus again.
  await box.press('Escape');
  assert.equal(await box.count(), 0);
  await until('the composer focused', async () => composer.evaluate((n) => n === document.activeElement));
  assert.equal(await message(alice.page, 'secnod').locator('.edited').isVisible(), false);

  // Up again, fix it, Enter: everyone sees the new text, marked edited.
  await composer.press('ArrowUp');
  await box.fill('second');
  await box.press('Enter');
  await shows(bob.page, ['first', 'second', 'from bob']);
  await until('the edited mark', async () => message(bob.page, 'second').locator('.edited').isVisible());
  await until('the edit acked', async () =>
    (await message(alice.page, 'second').locator('.note').textContent()) === '');
  // The menu and the delete dialog by keyboard: arrows move, Escape backs out, Enter confirms.
  const more = message(alice.page, 'first').getByRole('button', { name: 'More actions' });
  await more.focus();
  await alice.page.keyboard.press('Enter');
  const focusedText = () => alice.page.evaluate(() => document.activeElement.textContent);
  await until('the menu focused', async () => (await focusedText()) === 'Add reaction');
  await alice.page.keyboard.press('End');
  assert.equal(await focusedText(), 'Delete message');
  await alice.page.keyboard.press('Enter');
  const dialog = alice.page.getByRole('dialog', { name: 'Delete message' });
  await dialog.waitFor();
  assert.equal(await focusedText(), 'Delete');
  await alice.page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  await until('focus back on the menu button', async () => more.evaluate((n) => n === document.activeElement));
  await alice.page.keyboard.press('Enter');
  await until('the menu focused again', async () => (await focusedText()) === 'Add reaction');
  await alice.page.keyboard.press('ArrowUp'); // wraps to the last item
  await until('the last item focused', async () => (await focusedText()) === 'Delete message');
  await alice.page.keyboard.press('Enter');
  await dialog.waitFor();
  await alice.page.keyboard.press('Enter');
  await shows(bob.page, ['second', 'from bob']);

  // Up with text in the composer moves the caret, as in any text field.
  await composer.fill('draft');
  await composer.press('ArrowUp');
  assert.equal(await alice.page.getByRole('textbox', { name: 'Edit message' }).count(), 0);
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test('links and code in messages render as such, and never as markup', async (t) => {
  const { server, browser } = await setUp(t);
  const { alice, bob } = await inRoom(browser, server.base, 'text', ['alice', 'bob']);
  const texts = [
    'notes at https://example.com/a?b=1&c=2. and (see http://example.org/x_(y)) too',
    'run `banter serve <b>now</b>` then javascript:alert(1) https://x.test/"><img src=x onerror=alert(2)>',
    'like this:\n```\n<script>alert(3)</script>\nfn main() {}\n```\ndone `unclosed',
  ];
  for (const text of texts) await say(alice.page, text);
  await until('three messages', async () => (await bob.page.locator('#message-list > li.msg').count()) === 3);

  for (const { page } of [alice, bob]) {
    const links = await page.locator('#message-list a').evaluateAll((as) =>
      as.map((a) => ({ href: a.getAttribute('href'), text: a.textContent, rel: a.rel, target: a.target })));
    assert.deepEqual(links, [
      { href: 'https://example.com/a?b=1&c=2', text: 'https://example.com/a?b=1&c=2', rel: 'noopener noreferrer', target: '_blank' },
      { href: 'http://example.org/x_(y)', text: 'http://example.org/x_(y)', rel: 'noopener noreferrer', target: '_blank' },
      { href: 'https://x.test/', text: 'https://x.test/', rel: 'noopener noreferrer', target: '_blank' },
    ]);
    const second = message(page, 'run');
    assert.equal(await second.locator('code').textContent(), 'banter serve <b>now</b>');
    const third = message(page, 'like this:');
    assert.equal(await third.locator('pre > code').textContent(), '<script>alert(3)</script>\nfn main() {}');
    // The unclosed backtick stays a backtick.
    assert.match(await third.locator('.body').textContent(), /done `unclosed$/);
    // No element came from anyone's text.
    assert.equal(await page.locator('#message-list :is(img, script, b, svg)').count(), 0);
    // Every character typed is still there, in order (the fences aside).
    assert.equal(await message(page, 'notes at').locator('.body').textContent(), texts[0]);
    assert.equal(await second.locator('.body').textContent(), texts[1].replace(/`/g, ''));
  }
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});
