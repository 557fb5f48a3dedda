// Bots in the web app: a webhook's message shows under the label it gave, with a BOT badge,
// and a bot's own message under its name with the badge; a person's never has one.

import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { openRoom, person, say, setUp, shows, signUp, message, repoRoot } from './harness.mjs';

const shots = process.env.BANTER_SCREENSHOTS
  ? path.join(repoRoot, 'docs/screenshots')
  : path.join(os.tmpdir(), 'banter-screenshots');

async function post(base, p, body, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  return (await fetch(base + p, { method: 'POST', headers, body: JSON.stringify(body) })).json();
}

test('bots and webhooks post into the room, shown as bots', async (t) => {
  const { server, browser } = await setUp(t);
  const alice = await person(browser);
  await signUp(alice.page, server.base, 'alice');
  await openRoom(alice.page, 'builds');
  await say(alice.page, 'waiting for the build');
  await shows(alice.page, ['waiting for the build']);

  const token = (await post(server.base, '/api/v1/login', { username: 'alice', password: 'password123' })).data.token;
  const hook = await post(server.base, '/api/v1/rooms/builds/webhooks', { name: 'ci-hook' }, token);
  assert.ok(hook.success, JSON.stringify(hook));
  const posted = await post(server.base, new URL(hook.data.url).pathname, { text: 'build 1432 passed', username: 'Jenkins' });
  assert.ok(posted.success, JSON.stringify(posted));
  const bot = await post(server.base, '/api/v1/bots', { name: 'deploy-bot' }, token);
  const sent = await post(server.base, '/api/v1/rooms/builds/messages', { body: 'deploying 1432' }, bot.data.token);
  assert.ok(sent.success, JSON.stringify(sent));
  await shows(alice.page, ['waiting for the build', 'build 1432 passed', 'deploying 1432']);

  const meta = (body) => message(alice.page, body).locator('.meta');
  assert.equal(await meta('build 1432 passed').locator('.author').textContent(), 'Jenkins');
  assert.equal(await meta('build 1432 passed').locator('.author').getAttribute('title'), 'posted by ci-hook');
  assert.equal(await meta('build 1432 passed').locator('.bot-badge').textContent(), 'BOT');
  assert.equal(await meta('deploying 1432').locator('.author').textContent(), 'deploy-bot');
  assert.ok(await meta('deploying 1432').locator('.bot-badge').isVisible());
  assert.equal(await meta('waiting for the build').locator('.bot-badge').count(), 0);
  // After a reload (history, not the socket), the same.
  await alice.page.reload();
  await shows(alice.page, ['waiting for the build', 'build 1432 passed', 'deploying 1432']);
  assert.equal(await meta('build 1432 passed').locator('.author').textContent(), 'Jenkins');
  assert.equal(await meta('build 1432 passed').locator('.bot-badge').count(), 1);
  const members = alice.page.locator('#member-list li');
  await members.filter({ hasText: 'deploy-bot' }).filter({ hasText: 'bot' }).waitFor();
  assert.equal(await members.filter({ hasText: 'alice' }).locator('.member-role', { hasText: 'bot' }).count(), 0);
  await alice.page.screenshot({ path: path.join(shots, 'bots.png') });
  assert.deepEqual(alice.errors, []);
});
