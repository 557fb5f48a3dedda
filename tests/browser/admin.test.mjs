// The admin page (/admin) and what it changes in the chat, in a real Chromium against a real
// `banter serve`: the first account is an admin; registration goes invite-only and an invite
// link brings a new person in; a person deactivated while chatting is signed out at once and
// cannot sign in until reactivated; purging counts before it deletes; rooms are archived and
// deleted; the page works with the keyboard alone; and it shows nothing to anyone else.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import {
  blast, bodies, connected, focusOutline, hasFocus, launchBrowser, logIn, message, openRoom, person,
  repoRoot, say, setUp, shows, signUp, startServer, tabTo, until,
} from './harness.mjs';

// BANTER_SCREENSHOTS=1 refreshes docs/screenshots; otherwise the pictures go to a temp dir.
const shots = process.env.BANTER_SCREENSHOTS
  ? path.join(repoRoot, 'docs/screenshots')
  : path.join(os.tmpdir(), 'banter-screenshots');
mkdirSync(shots, { recursive: true });
const shot = { animations: 'disabled', caret: 'hide' };

const DEACTIVATED = 'Your account has been deactivated. Ask an admin to reactivate it.';

/** Opens the admin page in `page` (whose tab is signed in) and waits for it to show `section`. */
async function openAdmin(page, base, section = 'live') {
  await page.goto(`${base}/admin#${section}`);
  await page.locator(`#panel-${section}`).waitFor();
}

/**
 * Opens the admin page in a new tab of `who`'s context: a tab that is nobody's yet, so the
 * page offers the browser's sessions; it continues as `user`. Its page errors join who's.
 */
async function adminTab(who, base, user, section = 'live') {
  const page = await who.context.newPage();
  page.on('pageerror', (e) => who.errors.push(`admin tab: ${e}`));
  await page.goto(`${base}/admin#${section}`);
  await page.getByRole('button', { name: `Continue as ${user}` }).click();
  await page.locator(`#panel-${section}`).waitFor();
  return page;
}

/** Switches the admin page to the section named `name` (its tab). */
async function section(page, name) {
  await page.getByRole('tab', { name }).click();
  await page.getByRole('tabpanel', { name }).waitFor();
}

/** The row of the users list for `user` (waits for it). */
async function userRow(page, user) {
  const row = page.locator(`#user-list > li[data-user="${user}"]`);
  await row.waitFor();
  return row;
}

/** Confirms the open dialog named `title` with its `button`. */
async function confirm(page, title, button) {
  const dialog = page.getByRole('dialog', { name: title });
  await dialog.waitFor();
  await dialog.getByRole('button', { name: button, exact: true }).click();
  await dialog.waitFor({ state: 'hidden' });
}

/** Waits until the admin page's status line says something containing `text`. */
async function status(page, text) {
  await until(`the status "${text}"`, async () => (await page.locator('#admin-status').textContent()).includes(text));
}

/** The `action`s of the audit log as shown, newest first. */
function auditActions(page) {
  return page.locator('#audit-list > li').evaluateAll((lis) => lis.map((li) => li.dataset.action));
}

/** Calls the API with `user`'s stored token from inside `page`: {status, body}. */
function call(page, user, method, path, body) {
  return page.evaluate(async ({ user, method, path, body }) => {
    const { token } = JSON.parse(localStorage.getItem(`banter.session.${user}`));
    const headers = { Authorization: `Bearer ${token}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: await res.json().catch(() => null) };
  }, { user, method, path, body });
}

/** An error envelope's code, whichever shape it has (`error: "code"` or `error: {code}`). */
const codeOf = (body) => (body && typeof body.error === 'object' ? body.error?.code : body?.error);

test('the first account is an admin: registration goes invite-only and an invite link brings someone in', async (t) => {
  const { server, browser } = await setUp(t);
  const alice = await person(browser);
  await alice.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.base });
  await signUp(alice.page, server.base, 'alice');

  // The first account of a fresh server is an admin: the chat offers the admin page.
  const adminLink = alice.page.getByRole('link', { name: 'Admin' });
  await adminLink.waitFor();
  await adminLink.click();
  await alice.page.getByRole('heading', { name: 'Live figures' }).waitFor();
  assert.equal(await alice.page.getByRole('tab', { name: 'Live figures' }).getAttribute('aria-selected'), 'true');

  // Invite-only.
  await section(alice.page, 'Registration');
  const open = alice.page.getByRole('radio', { name: /^Open/ });
  await until('the current mode', () => open.isChecked());
  await alice.page.getByRole('radio', { name: /^Invite only/ }).check();
  await alice.page.getByRole('button', { name: 'Save' }).click();
  await status(alice.page, 'Registration is now invite-only.');

  // Someone without an invite is not offered to register, and is told why.
  const visitor = await person(browser);
  await visitor.page.goto(server.base);
  const note = visitor.page.locator('#auth-note');
  await until('the invite-only note', async () => (await note.textContent()).includes('invite link'));
  assert.equal(await visitor.page.getByRole('button', { name: 'Register' }).count(), 0);
  await visitor.context.close();

  // An invite for two accounts: its link is shown once, whole, with a Copy button.
  await section(alice.page, 'Invites');
  await alice.page.getByLabel('Uses').fill('2');
  await alice.page.getByRole('button', { name: 'Create invite' }).click();
  const linkBox = alice.page.getByRole('textbox', { name: 'Invite link' });
  await linkBox.waitFor();
  const url = await linkBox.inputValue();
  assert.match(url, new RegExp(`^${server.base.replace(/[.]/g, '\\.')}/join/[^/]+$`));
  await alice.page.getByRole('button', { name: 'Copy', exact: true }).click();
  await status(alice.page, 'copied');
  assert.equal(await alice.page.evaluate(() => navigator.clipboard.readText()), url);
  const invite = alice.page.locator('#invite-list > li').first();
  await until('the invite in the list', async () => (await invite.textContent()).includes('0 of 2 used'));
  assert.equal(await invite.getAttribute('data-state'), 'active');
  await alice.page.mouse.move(0, 0);
  await alice.page.screenshot({ path: path.join(shots, 'admin-invites.png'), ...shot });

  // Bob opens the link in a browser of his own: the register form, with the invite kept.
  const bob = await person(browser);
  await bob.page.goto(url);
  await bob.page.getByText('You were invited to banter').waitFor();
  await bob.page.getByRole('heading', { name: 'Create your account' }).waitFor();
  await bob.page.getByLabel('Username').fill('bob');
  await bob.page.getByLabel('Password').fill('password123');
  await bob.page.screenshot({ path: path.join(shots, 'join.png'), ...shot });
  const me = bob.page.waitForResponse((r) => r.url().endsWith('/api/v1/me'));
  await bob.page.getByRole('button', { name: 'Register' }).click();
  await connected(bob.page);
  // Signed in, at `/` (a reload does not show the invite again), and not an admin.
  assert.equal(new URL(bob.page.url()).pathname, '/');
  assert.equal((await (await me).json()).data.admin, false);
  assert.equal(await bob.page.getByRole('link', { name: 'Admin' }).count(), 0);
  await bob.page.reload();
  await connected(bob.page);

  // The admin page sees the invite used once, bob a user who is not an admin, and its log.
  await section(alice.page, 'Registration');
  await section(alice.page, 'Invites');
  await until('the invite used once', async () => (await invite.textContent()).includes('1 of 2 used'));
  await section(alice.page, 'Users');
  assert.equal(await (await userRow(alice.page, 'alice')).getAttribute('data-admin'), 'true');
  assert.equal(await (await userRow(alice.page, 'bob')).getAttribute('data-admin'), 'false');
  await section(alice.page, 'Audit log');
  await until('the audit log', async () =>
    JSON.stringify(await auditActions(alice.page)) === JSON.stringify(['invite.create', 'settings.registration']));

  // Live figures count bob's connection (alice's chat tab became the admin page).
  await section(alice.page, 'Live figures');
  await until('the live figures', async () => (await alice.page.locator('#stats-at').textContent()).startsWith('Updated'));
  await until('a connection counted', async () => Number(await alice.page.locator('#stat-connections').textContent()) >= 1);
  if (process.env.BANTER_SCREENSHOTS) {
    // For the picture, some traffic: the rate shows once the server has counted it.
    await blast(bob.page, 'bob', 'general', Array.from({ length: 12 }, (_, i) => `message ${i}`));
    await until('a message rate', async () => (await alice.page.locator('#stat-rate').textContent()) !== '0', 12000).catch(() => {});
  }
  await alice.page.screenshot({ path: path.join(shots, 'admin-live.png'), ...shot });
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test('a person deactivated while chatting is signed out at once, and can sign in again only once reactivated', async (t) => {
  const { server, browser } = await setUp(t);
  const alice = await person(browser);
  const bob = await person(browser);
  await signUp(alice.page, server.base, 'alice');
  await signUp(bob.page, server.base, 'bob');
  await openRoom(alice.page, 'team');
  await openRoom(bob.page, 'team');
  await say(bob.page, 'hello from bob');
  await shows(alice.page, ['hello from bob']);

  // Alice opens the admin page in a new tab: it is nobody's yet, so it offers her session.
  const admin = await adminTab(alice, server.base, 'alice', 'users');
  const row = await userRow(admin, 'bob');
  // Not herself: no way to lock herself out.
  assert.equal(await (await userRow(admin, 'alice')).getByRole('button', { name: 'Deactivate alice' }).count(), 0);

  await admin.getByRole('button', { name: 'Deactivate bob' }).click();
  await confirm(admin, 'Deactivate bob?', 'Deactivate');
  await until('bob deactivated', async () => (await row.getAttribute('data-state')) === 'deactivated');
  await status(admin, 'bob is deactivated');

  // Bob's chat: signed out at once (socket closed with 4003), told why, his tokens gone.
  await bob.page.locator('#auth-view').waitFor();
  await until('the deactivation message', async () => (await bob.page.locator('#auth-alert').textContent()) === DEACTIVATED);
  assert.equal(await bob.page.locator('#chat-view').isHidden(), true);
  assert.equal(await bob.page.evaluate(() => localStorage.getItem('banter.session.bob')), null);
  await bob.page.screenshot({ path: path.join(shots, 'deactivated.png'), ...shot });

  // He cannot sign in: the login is refused, and says the same.
  await bob.page.getByLabel('Username').fill('bob');
  await bob.page.getByLabel('Password').fill('password123');
  const login = bob.page.waitForResponse((r) => r.url().endsWith('/api/v1/login'));
  await bob.page.getByRole('button', { name: 'Log in' }).click();
  const refused = await login;
  assert.equal(refused.status(), 403);
  assert.equal(codeOf(await refused.json()), 'account_disabled');
  await until('the login refused', async () => (await bob.page.locator('#auth-alert').textContent()) === DEACTIVATED);
  assert.equal(await bob.page.locator('#chat-view').isHidden(), true);

  // Reactivated, he signs in and finds his room as he left it.
  await admin.getByRole('button', { name: 'Reactivate bob' }).click();
  await until('bob active again', async () =>
    (await admin.locator('#user-list > li[data-user="bob"]').getAttribute('data-state')) === 'active');
  await logIn(bob.page, 'bob');
  await openRoom(bob.page, 'team');
  await shows(bob.page, ['hello from bob']);

  await section(admin, 'Audit log');
  await until('the audit log', async () =>
    JSON.stringify(await auditActions(admin)) === JSON.stringify(['user.reactivate', 'user.deactivate']));
  const latest = admin.locator('#audit-list > li').first();
  assert.match(await latest.textContent(), /alice reactivated bob/);
  await admin.screenshot({ path: path.join(shots, 'admin-audit.png'), ...shot });
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test('purging a person’s messages counts them first, then they vanish from open chats', async (t) => {
  const { server, browser } = await setUp(t);
  const alice = await person(browser);
  const bob = await person(browser);
  await signUp(alice.page, server.base, 'alice');
  await signUp(bob.page, server.base, 'bob');
  await openRoom(alice.page, 'team');
  await openRoom(bob.page, 'team');
  for (const text of ['spam one', 'spam two', 'spam three']) await say(bob.page, text);
  await say(alice.page, 'please stop');
  const all = ['spam one', 'spam two', 'spam three', 'please stop'];
  await shows(alice.page, all);
  await until('all acked', async () => (await bob.page.locator('#message-list > li[data-state="pending"]').count()) === 0);

  const admin = await adminTab(alice, server.base, 'alice', 'users');
  await userRow(admin, 'bob');
  await admin.getByRole('button', { name: 'Purge messages of bob' }).click();
  const dialog = admin.getByRole('dialog', { name: 'Purge messages of bob' });
  await dialog.waitFor();
  // The dry run first: nothing is deleted, the count is shown, then the button to delete them.
  await dialog.getByRole('button', { name: 'Count messages' }).click();
  const result = dialog.locator('#purge-result');
  await until('the count', async () => (await result.textContent()).startsWith('bob has 3 messages'));
  assert.deepEqual(await bodies(alice.page), all);
  await admin.screenshot({ path: path.join(shots, 'admin-purge.png'), ...shot });
  await dialog.getByRole('button', { name: 'Delete 3 messages' }).click();
  await dialog.waitFor({ state: 'hidden' });
  await status(admin, 'Deleting 3 messages of bob');

  // Through the log: gone from both open chats, alice's message stays.
  await shows(alice.page, ['please stop']);
  await shows(bob.page, ['please stop']);
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test('an archived room is read-only, and a deleted room leaves its members’ lists', async (t) => {
  const { server, browser } = await setUp(t);
  const alice = await person(browser);
  const bob = await person(browser);
  await signUp(alice.page, server.base, 'alice');
  await signUp(bob.page, server.base, 'bob');
  await openRoom(bob.page, 'old-project');
  await say(bob.page, 'last words');
  await shows(bob.page, ['last words']);

  await openAdmin(alice.page, server.base, 'rooms');
  const row = alice.page.locator('#room-list > li[data-room="old-project"]');
  await row.waitFor();
  assert.match(await row.textContent(), /1 member.*1 message/);
  await alice.page.getByRole('button', { name: 'Archive # old-project' }).click();
  await confirm(alice.page, 'Archive # old-project?', 'Archive');
  await until('archived', async () => (await row.getAttribute('data-archived')) === 'true');
  await alice.page.mouse.move(0, 0);
  await alice.page.screenshot({ path: path.join(shots, 'admin-rooms.png'), ...shot });

  // Bob, in the room, sees it read-only at once: a line instead of the composer, and the
  // server refuses a send anyway; it stays readable.
  const note = bob.page.getByText('This room is archived: it is read-only.');
  await note.waitFor();
  assert.ok(await bob.page.getByLabel('Message', { exact: true }).isHidden());
  await bob.page.getByText('alice archived # old-project').waitFor();
  await bob.page.screenshot({ path: path.join(shots, 'archived.png'), ...shot });
  const readable = await call(bob.page, 'bob', 'GET', '/rooms/old-project/messages?limit=1');
  assert.equal(readable.status, 200, 'an archived room stays readable');
  const send = await bob.page.evaluate(async () => {
    const { token } = JSON.parse(localStorage.getItem('banter.session.bob'));
    return new Promise((resolve) => {
      const ws = new WebSocket(`ws://${location.host}/ws?token=${encodeURIComponent(token)}`);
      ws.onopen = () => ws.send(JSON.stringify({ type: 'join', room: 'old-project' }));
      ws.onmessage = (e) => {
        const f = JSON.parse(e.data);
        if (f.type === 'joined' && f.room === 'old-project') ws.send(JSON.stringify({ type: 'send', room: 'old-project', body: 'sneaky', client_id: 'c-sneaky' }));
        if ((f.type === 'error' || f.type === 'ack') && f.client_id === 'c-sneaky') { ws.close(); resolve(f); }
      };
    });
  });
  assert.equal(send.code, 'room_archived', JSON.stringify(send));

  await alice.page.getByRole('button', { name: 'Unarchive # old-project' }).click();
  await until('unarchived', async () => (await row.getAttribute('data-archived')) === 'false');
  await note.waitFor({ state: 'hidden' });
  await say(bob.page, 'anyone here?');
  await until('the send acked', async () =>
    (await message(bob.page, 'anyone here?').getAttribute('data-state')) === 'sent');

  // Delete asks first; Cancel keeps it.
  await alice.page.getByRole('button', { name: 'Delete # old-project' }).click();
  await confirm(alice.page, 'Delete # old-project?', 'Cancel');
  assert.equal(await row.count(), 1);
  await alice.page.getByRole('button', { name: 'Delete # old-project' }).click();
  await confirm(alice.page, 'Delete # old-project?', 'Delete room');
  // The admin list keeps it while its messages and files go ("being deleted", no buttons),
  // or drops it.
  await until('the row deleting or gone', async () =>
    (await row.count()) === 0 || (await row.getAttribute('data-deleting')) === 'true');
  assert.equal(await alice.page.getByRole('button', { name: 'Delete # old-project' }).count(), 0);
  await status(alice.page, '# old-project is deleted');
  // It leaves bob's sidebar at once; he is back in general.
  await until('old-project gone from bob\'s sidebar', async () =>
    (await bob.page.locator('nav[aria-label="Rooms"] [data-room="old-project"]').count()) === 0);
  await until('bob in general', async () =>
    (await bob.page.locator('nav[aria-label="Rooms"] [data-room="general"]').getAttribute('aria-current')) === 'true');
  const listed = await call(bob.page, 'bob', 'GET', '/rooms/public');
  assert.equal(JSON.stringify(listed.body).includes('old-project'), false, JSON.stringify(listed.body));
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test('the admin page works with the keyboard alone', async (t) => {
  const { server, browser } = await setUp(t);
  const alice = await person(browser);
  const bob = await person(browser);
  await signUp(alice.page, server.base, 'alice');
  await signUp(bob.page, server.base, 'bob');
  for (const name of ['carol', 'dave']) {
    const res = await fetch(`${server.base}/api/v1/register`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: name, password: 'password123' }),
    });
    assert.equal(res.status, 201, name);
  }
  const page = alice.page;
  await openAdmin(page, server.base);

  // Tab reaches the sections; the arrows, Home and End switch them.
  const tab = (name) => page.getByRole('tab', { name });
  await tabTo(page, tab('Live figures'));
  assert.ok((await focusOutline(page)).style !== 'none', 'the focus is visible');
  await page.keyboard.press('ArrowDown');
  assert.equal(await tab('Users').getAttribute('aria-selected'), 'true');
  assert.ok(await hasFocus(tab('Users')));
  await page.getByRole('tabpanel', { name: 'Users' }).waitFor();
  await page.keyboard.press('End');
  await page.getByRole('tabpanel', { name: 'Audit log' }).waitFor();
  await page.keyboard.press('Home');
  await page.getByRole('tabpanel', { name: 'Live figures' }).waitFor();
  await page.keyboard.press('ArrowDown');
  await page.getByRole('tabpanel', { name: 'Users' }).waitFor();
  assert.ok(await page.getByRole('tabpanel', { name: 'Live figures' }).isHidden());

  // Into the panel: search, then a row's button opens its dialog; Escape closes it and gives
  // the focus back.
  await tabTo(page, page.getByLabel('Find users'));
  await page.keyboard.type('bo');
  await until('bob alone', async () =>
    JSON.stringify(await page.locator('#user-list > li').evaluateAll((l) => l.map((li) => li.dataset.user))) === '["bob"]');
  const deactivate = page.getByRole('button', { name: 'Deactivate bob' });
  await tabTo(page, deactivate);
  assert.ok((await focusOutline(page)).style !== 'none', 'the focus is visible');
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog', { name: 'Deactivate bob?' });
  await dialog.waitFor();
  assert.ok(await hasFocus(dialog.getByRole('button', { name: 'Cancel' })), 'Cancel has the focus first');
  await page.mouse.move(0, 0);
  await page.screenshot({ path: path.join(shots, 'admin-dialog.png'), ...shot });
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  assert.ok(await hasFocus(deactivate), 'the focus is back on the button');
  assert.equal(await page.locator('#user-list > li[data-user="bob"]').getAttribute('data-state'), 'active');

  // Space opens it too; Tab to the red button, Enter does it; the focus stays on the row.
  await page.keyboard.press('Space');
  await dialog.waitFor();
  await page.keyboard.press('Tab');
  assert.ok(await hasFocus(dialog.getByRole('button', { name: 'Deactivate' })));
  await page.keyboard.press('Enter');
  await until('bob deactivated', async () =>
    (await page.locator('#user-list > li[data-user="bob"]').getAttribute('data-state')) === 'deactivated');
  await until('the focus on Reactivate', () => hasFocus(page.getByRole('button', { name: 'Reactivate bob' })));
  await page.keyboard.press('Enter');
  await until('bob active', async () =>
    (await page.locator('#user-list > li[data-user="bob"]').getAttribute('data-state')) === 'active');

  // The purge dialog closes with Escape as well, having deleted nothing.
  await tabTo(page, page.getByRole('button', { name: 'Purge messages of bob' }));
  await page.keyboard.press('Enter');
  const purge = page.getByRole('dialog', { name: 'Purge messages of bob' });
  await purge.waitFor();
  assert.ok(await hasFocus(purge.getByLabel('From')));
  await page.keyboard.press('Escape');
  await purge.waitFor({ state: 'hidden' });

  // Registration by keyboard: Tab to the choices, arrows pick, Enter saves.
  await tabTo(page, tab('Users'), { back: true });
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('ArrowDown');
  await page.getByRole('tabpanel', { name: 'Registration' }).waitFor();
  const open = page.getByRole('radio', { name: /^Open/ });
  await until('the current mode', () => open.isChecked());
  await tabTo(page, open);
  await page.keyboard.press('ArrowDown');
  assert.ok(await page.getByRole('radio', { name: /^Invite only/ }).isChecked());
  await tabTo(page, page.getByRole('button', { name: 'Save' }));
  await page.keyboard.press('Enter');
  await status(page, 'Registration is now invite-only.');

  // On a phone, the sections are a row of chips over the panel; nothing overflows sideways.
  await page.setViewportSize({ width: 375, height: 740 });
  await tab('Users').click();
  await page.locator('#user-q').fill('');
  await until('all four users', async () => (await page.locator('#user-list > li').count()) === 4);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `the phone page scrolls sideways by ${overflow}px`);
  await page.mouse.move(0, 0);
  await page.screenshot({ path: path.join(shots, 'admin-phone.png'), ...shot });
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.screenshot({ path: path.join(shots, 'admin-users.png'), ...shot });
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test('someone who is not an admin sees a refusal at /admin, and no data', async (t) => {
  const { server, browser } = await setUp(t);
  const alice = await person(browser);
  const bob = await person(browser);
  await signUp(alice.page, server.base, 'alice');
  const me = bob.page.waitForResponse((r) => r.url().endsWith('/api/v1/me'));
  await signUp(bob.page, server.base, 'bob');
  assert.equal((await (await me).json()).data.admin, false);
  assert.equal(await bob.page.getByRole('link', { name: 'Admin' }).count(), 0);

  // The page asks who he is, and refuses: no admin call is answered with data.
  const adminAnswers = [];
  bob.page.on('response', (r) => { if (r.url().includes('/api/v1/admin/')) adminAnswers.push(r.status()); });
  await bob.page.goto(`${server.base}/admin`);
  await bob.page.getByRole('heading', { name: 'Admins only' }).waitFor();
  assert.match(await bob.page.locator('#gate-text').textContent(), /bob is not one/);
  assert.equal(await bob.page.locator('#admin-view').isHidden(), true);
  assert.equal(await bob.page.locator('#user-list > li, #room-list > li, #invite-list > li, #audit-list > li').count(), 0);
  assert.ok(adminAnswers.every((s) => s === 403), `admin answers: ${adminAnswers}`);
  await bob.page.screenshot({ path: path.join(shots, 'admin-refused.png'), ...shot });

  // The API refuses him as well, whatever a page would do.
  for (const [method, p, body] of [['GET', '/admin/users'], ['GET', '/admin/stats'], ['PUT', '/admin/settings', { registration: 'open' }]]) {
    const r = await call(bob.page, 'bob', method, p, body);
    assert.equal(r.status, 403, `${method} ${p}`);
    assert.equal(codeOf(r.body), 'forbidden', `${method} ${p}: ${JSON.stringify(r.body)}`);
  }

  // The refusal does not sign him out: the link goes back to his chat.
  await bob.page.getByRole('link', { name: 'Back to chat' }).click();
  await connected(bob.page);

  // Nobody signed in at all: told to sign in first.
  const nobody = await person(browser);
  await nobody.page.goto(`${server.base}/admin`);
  await nobody.page.getByRole('heading', { name: 'Sign in first' }).waitFor();
  assert.equal(await nobody.page.getByRole('link', { name: 'Sign in' }).getAttribute('href'), '/');
  assert.deepEqual([...alice.errors, ...bob.errors, ...nobody.errors], []);
});

test('registration fixed by the operator shows read-only, and a closed server offers no Register', async (t) => {
  // Alice registers while it is open; the server comes back with BANTER_REGISTRATION=closed.
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'banter-browser-'));
  const running = [];
  t.after(async () => {
    for (const close of running.reverse()) await close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const browser = await launchBrowser();
  running.push(() => browser.close());
  const first = await startServer({ dataDir });
  const alice = await person(browser);
  try {
    await signUp(alice.page, first.base, 'alice');
    await alice.context.close();
  } finally {
    await first.stop();
  }
  const server = await startServer({ dataDir, env: { BANTER_REGISTRATION: 'closed' } });
  running.push(() => server.stop());

  const visitor = await person(browser);
  await visitor.page.goto(server.base);
  const note = visitor.page.locator('#auth-note');
  await until('the closed note', async () => (await note.textContent()).startsWith('Registration is closed; ask an admin for an invite'));
  assert.equal(await visitor.page.getByRole('button', { name: 'Register' }).count(), 0);
  await logIn(visitor.page, 'alice');

  await openAdmin(visitor.page, server.base, 'registration');
  const locked = visitor.page.locator('#registration-locked');
  await until('the explanation', async () => (await locked.textContent()).includes('BANTER_REGISTRATION'));
  assert.ok(await visitor.page.getByRole('radio', { name: /^Closed/ }).isChecked());
  assert.ok(await visitor.page.getByRole('radio', { name: /^Open/ }).isDisabled());
  assert.equal(await visitor.page.getByRole('button', { name: 'Save' }).count(), 0);
  // Invites are said to be of no use while it is closed.
  await section(visitor.page, 'Invites');
  await until('the closed hint', async () => (await visitor.page.locator('#invites-mode').textContent()).includes('closed'));
  assert.deepEqual([...alice.errors, ...visitor.errors], []);
});
