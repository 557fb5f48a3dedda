// The JavaScript client (web/client.js's BanterClient) against a real `banter serve`, in
// plain Node: it logs in, sends and receives; across network drops (a TCP proxy that cuts
// every connection) it resumes without a gap or a double and re-sends what was not acked
// once; it moves to the next server when one is gone; and the example echo bot answers.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';

import { BanterClient } from '../../web/client.js';
import { repoRoot, startProxy, startServer, until } from './harness.mjs';

/** POSTs JSON to the server; returns the envelope. */
async function post(base, p, body, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(base + p, { method: 'POST', headers, body: JSON.stringify(body) });
  return r.json();
}

async function signUp(base, username) {
  await post(base, '/api/v1/register', { username, password: 'password123' });
  const login = await post(base, '/api/v1/login', { username, password: 'password123' });
  assert.ok(login.success, JSON.stringify(login));
  return login.data.token;
}

/** The message bodies of `room`'s history, oldest first. */
async function history(base, room, token) {
  const r = await fetch(`${base}/api/v1/rooms/${room}/messages?limit=100`, { headers: { Authorization: `Bearer ${token}` } });
  return (await r.json()).data.messages.map((m) => m.body);
}

/** A client whose received messages (of every room) are collected in `got`. */
function collecting(options) {
  const client = new BanterClient(options);
  client.got = [];
  client.on('message', (m) => client.got.push(m));
  return client;
}

test('the client sends, receives, resumes across drops without gaps or doubles, and moves servers', async (t) => {
  const server = await startServer();
  const a = await startProxy(server.base);
  const b = await startProxy(server.base);
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.close();
    await a.close();
    await b.close();
    await server.stop();
  });
  await signUp(server.base, 'root');
  const bobToken = await signUp(server.base, 'bob');

  // Ann logs in through the client itself, over server A first, then B.
  // A server that swallows connections is given up on after a second (10 s by default).
  const ann = collecting({ servers: [a.base, b.base], connectTimeoutMs: 1000 });
  clients.push(ann);
  await post(server.base, '/api/v1/register', { username: 'ann', password: 'password123' });
  await ann.login('ann', 'password123');
  ann.join('lobby');
  await ann.connect();
  assert.equal(ann.username, 'ann');
  const bob = collecting({ servers: [server.base], token: bobToken });
  clients.push(bob);
  bob.join('lobby');
  await bob.connect();

  const ack = await ann.send('lobby', 'hello');
  assert.match(ack.cursor, /^[0-9a-f]{24}$/);
  await until('bob to hear hello', async () => bob.got.some((m) => m.body === 'hello'));

  // The network drops under Ann; meanwhile Bob says three things and Ann one (not acked yet).
  a.drop();
  await until('ann to notice', async () => ann.gen === 0);
  for (const n of [1, 2, 3]) await bob.send('lobby', `missed ${n}`);
  const pending = ann.send('lobby', 'sent while away');
  a.restore();
  const acked = await pending;
  assert.match(acked.cursor, /^[0-9a-f]{24}$/);
  await until('ann to catch up', async () => ann.got.filter((m) => m.body.startsWith('missed')).length === 3);
  const bodies = ann.got.map((m) => m.body);
  assert.deepEqual(bodies.filter((x) => x.startsWith('missed')), ['missed 1', 'missed 2', 'missed 3'], 'in order, once each');
  assert.equal(bodies.filter((x) => x === 'hello').length, 1, 'nothing twice after the resume');
  await until('bob to hear ann', async () => bob.got.some((m) => m.body === 'sent while away'));

  // Server A goes for good: the client moves to B and resumes there.
  a.drop();
  await bob.send('lobby', 'after the move');
  await until('ann to hear through B', async () => ann.got.some((m) => m.body === 'after the move'), 30000);
  const stored = await history(server.base, 'lobby', bobToken);
  assert.deepEqual(stored, ['hello', 'missed 1', 'missed 2', 'missed 3', 'sent while away', 'after the move'],
    'every message stored once, the one sent while away too');
  const cursors = ann.got.map((m) => m.cursor);
  assert.deepEqual(cursors, [...cursors].sort(), 'in log order');
  assert.equal(new Set(cursors).size, cursors.length, 'no doubles');
});

test('the example echo bot answers in the room, as a bot', async (t) => {
  const server = await startServer();
  const root = await signUp(server.base, 'root');
  const made = await post(server.base, '/api/v1/bots', { name: 'echo-bot', rooms: ['general'] }, root);
  assert.ok(made.success, JSON.stringify(made));
  const flags = Number(process.versions.node.split('.')[0]) < 22 ? ['--experimental-websocket'] : [];
  const bot = spawn(process.execPath, [...flags, path.join(repoRoot, 'examples/echo-bot.mjs')], {
    env: { ...process.env, BANTER_URL: server.base, BANTER_TOKEN: made.data.token, BANTER_ROOMS: 'general' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  bot.stdout.on('data', (c) => { out += c; });
  bot.stderr.on('data', (c) => { out += c; });
  const user = collecting({ servers: [server.base], token: root });
  t.after(async () => {
    user.close();
    bot.kill();
    await server.stop();
  });
  await until(`the bot to listen (it said: ${out})`, async () => out.includes('echo bot is listening as echo-bot'));
  user.join('general');
  await user.connect();
  const asked = await user.send('general', '!echo is anyone there?');
  await until('the bot to answer', async () => user.got.some((m) => m.author === 'echo-bot'));
  const answer = user.got.find((m) => m.author === 'echo-bot');
  assert.equal(answer.body, 'is anyone there?');
  assert.equal(answer.bot, true);
  assert.equal(answer.reply_to, asked.id);
  assert.deepEqual(await history(server.base, 'general', root), ['!echo is anyone there?', 'is anyone there?']);
});
