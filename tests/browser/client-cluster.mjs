// The JavaScript client (web/client.js's BanterClient) on the scale-out cluster of
// scripts/cluster: auth on its own, two gateways. Its gateway is killed (kill -9) under it;
// it resumes on the other without a gap or a double, and what it sent while away is stored
// once. Run by scripts/test while its cluster is up (not part of the browser suite, which
// starts servers of its own):
//
//   BANTER_TEST_CLUSTER=DIR node [--experimental-websocket] --test tests/browser/client-cluster.mjs

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { BanterClient } from '../../web/client.js';
import { repoRoot, until } from './harness.mjs';

const dir = process.env.BANTER_TEST_CLUSTER;
if (!dir) throw new Error('BANTER_TEST_CLUSTER must name a running cluster (scripts/cluster up DIR)');
const env = Object.fromEntries(readFileSync(path.join(dir, 'env'), 'utf8').split('\n')
  .filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
const auth = env.AUTH_URL;
const gateways = env.GATEWAY_URLS.split(',');
const cluster = (...args) => execFileSync(path.join(repoRoot, 'scripts/cluster'), [...args, dir], { stdio: 'pipe' });

async function user(prefix) {
  const username = `${prefix}${Math.random().toString(36).slice(2, 10)}`;
  const post = (p, body) => fetch(auth + p, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal((await post('/api/v1/register', { username, password: 'password123' })).status, 201);
  return username;
}

test('the client resumes on the other gateway when its gateway is killed', async (t) => {
  const room = `js-${Math.random().toString(36).slice(2, 10)}`;
  const annName = await user('ann');
  const bobName = await user('bob');
  const ann = new BanterClient({ servers: gateways, auth, connectTimeoutMs: 2000 });
  const bob = new BanterClient({ servers: [gateways[1]], auth });
  t.after(() => {
    ann.close();
    bob.close();
    cluster('start', 'gateway-1');
  });
  await ann.login(annName, 'password123');
  await bob.login(bobName, 'password123');
  const got = [];
  ann.on('message', (m) => got.push(m));
  ann.join(room);
  bob.join(room);
  await ann.connect();
  await bob.connect();
  assert.equal(ann.server, 0, 'ann starts on gateway-1');

  // Until Ann hears Bob live (a gateway the cluster suite just restarted may still be
  // catching up with the log), Bob says something again.
  for (let i = 0; !got.some((m) => m.body.startsWith('probe')); i++) {
    assert.ok(i < 12, 'ann never heard bob through gateway-1');
    await bob.send(room, `probe ${i}`);
    await until('ann to hear a probe', async () => got.some((m) => m.body.startsWith('probe')), 5000).catch(() => {});
  }
  cluster('kill', 'gateway-1');
  await until('ann to notice', async () => ann.gen === 0, 30000);
  for (const n of [1, 2, 3]) await bob.send(room, `missed ${n}`);
  const acked = await ann.send(room, 'ann is back');
  assert.match(acked.cursor, /^[0-9a-f]{24}$/);
  await until('ann to catch up on gateway-2', async () => got.some((m) => m.body === 'ann is back'), 60000);
  assert.equal(ann.server, 1, 'ann moved to gateway-2');
  await bob.send(room, 'marker');
  await until('the marker', async () => got.some((m) => m.body === 'marker'), 30000);
  const after = got.map((m) => m.body).filter((b) => !b.startsWith('probe'));
  assert.deepEqual(after, ['missed 1', 'missed 2', 'missed 3', 'ann is back', 'marker'], 'in order, once each');
  const cursors = got.map((m) => m.cursor);
  assert.equal(new Set(cursors).size, cursors.length, 'nothing twice');
  assert.deepEqual(cursors, [...cursors].sort(), 'in log order');
});
