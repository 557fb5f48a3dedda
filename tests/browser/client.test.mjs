// The reliable client of the web app (web/client.js) on its own, in plain Node: no browser,
// no server. A fake socket link, clock and timers stand in for the page's.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  Outbox, RoomLog, ZERO_CURSOR, backoff, classify, maxCursor,
} from '../../web/client.js';

const c = (n) => n.toString(16).padStart(24, '0'); // cursor n

/** A room joined on socket `gen`, the link an Outbox talks through, a clock and timers. */
function world() {
  const state = { gen: 0, now: 1000, sent: [], timers: [] };
  const rooms = new Map([['r', new RoomLog()], ['s', new RoomLog()]]);
  const link = { gen: () => state.gen, room: (name) => rooms.get(name), send: (f) => state.sent.push(f) };
  const timers = {
    set: (fn, ms) => { const t = { fn, at: state.now + ms }; state.timers.push(t); return t; },
    clear: (t) => { state.timers = state.timers.filter((x) => x !== t); },
  };
  const outbox = new Outbox({ link, frame: (item) => ({ type: 'send', room: item.room, body: item.body, client_id: item.clientId }), now: () => state.now, timers });
  /** A new socket: every room joins on it. */
  const open = () => {
    state.gen++;
    for (const [name, log] of rooms) {
      log.down();
      const join = log.join(name, state.gen);
      log.onJoined({ type: 'joined', room: name, cursor: join.since }, state.gen);
      outbox.flush(name);
    }
  };
  /** Moves the clock on and fires the timers that are due. */
  const wait = (ms) => {
    state.now += ms;
    const due = state.timers.filter((t) => t.at <= state.now);
    state.timers = state.timers.filter((t) => t.at > state.now);
    for (const t of due) t.fn();
  };
  const item = (body, room = 'r') => ({ clientId: `c-${body}`, room, body, state: 'pending' });
  const bodies = () => state.sent.map((f) => f.body);
  return { state, rooms, outbox, open, wait, item, bodies };
}

test('backoff doubles from half a second to ten, with a quarter of jitter either way', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map((n) => backoff(n, () => 0.5)), [500, 1000, 2000, 4000, 8000, 10000, 10000]);
  assert.equal(backoff(0, () => 0), 375);
  assert.equal(backoff(0, () => 1), 625);
  assert.equal(backoff(30, () => 1), 12500);
});

test('classify: the refusals after which nothing happened are retried, after the wait they name', () => {
  assert.deepEqual(classify({ code: 'unavailable', message: 'x' }), { retry: true, wait: 2500, reason: 'server busy' });
  assert.deepEqual(classify({ code: 'rate_limited', retry_after_ms: 700 }), { retry: true, wait: 700, reason: 'slow down' });
  assert.equal(classify({ code: 'rate_limited', retry_after_ms: 1 }).wait, 50);
  assert.equal(classify({ code: 'rate_limited', retry_after_ms: 1e9 }).wait, 60000);
  assert.equal(classify({ code: 'rate_limited' }).wait, 2500);
  assert.equal(classify({ code: 'token_expired' }).retry, true);
  assert.deepEqual(classify({ code: 'forbidden', message: 'not yours' }), { retry: false, reason: 'not yours' });
  assert.deepEqual(classify({ code: 'not_found' }), { retry: false, reason: 'not_found' });
});

test('maxCursor keeps the later of two cursors, either of which may be missing', () => {
  assert.equal(maxCursor(null, c(3)), c(3));
  assert.equal(maxCursor(c(3), null), c(3));
  assert.equal(maxCursor(c(0x10), c(0x9)), c(0x10));
});

test('a room resumes from its newest event of any kind, once its own join is answered', () => {
  const log = new RoomLog();
  assert.deepEqual(log.join('r', 1), { type: 'join', room: 'r', since: ZERO_CURSOR });
  assert.equal(log.join('r', 1), null, 'one join per socket');
  log.loadedUpTo(c(5));
  // Before our join is answered, frames may belong to the server's own join: they do not count.
  log.onEvent({ type: 'message', cursor: c(9) });
  assert.equal(log.cursor, c(5));
  assert.equal(log.onJoined({ type: 'joined', cursor: c(6) }, 1), true);
  assert.equal(log.cursor, c(6));
  for (const [type, n] of [['edited', 7], ['reaction', 8], ['deleted', 9], ['message', 10]]) {
    log.onEvent({ type, cursor: c(n) });
    assert.equal(log.cursor, c(n), type);
  }
  // Joins, leaves, topics and the room's creation are in its log too.
  for (const [type, n] of [['member', 11], ['topic', 12], ['created', 13]]) {
    log.onEvent({ type, cursor: c(n) });
    assert.equal(log.cursor, c(n), type);
  }
  log.onEvent({ type: 'typing', cursor: c(99) });
  // The user's stream carries cursors of the room too, but is not its log: a resume from
  // them would skip events.
  log.onEvent({ type: 'read', cursor: c(98) });
  log.onEvent({ type: 'mention', cursor: c(97) });
  log.onEvent({ type: 'reaction', cursor: c(4) }); // never backwards
  assert.equal(log.cursor, c(13));
  // The next socket joins from there.
  log.down();
  assert.equal(log.joined, false);
  assert.deepEqual(log.join('r', 2), { type: 'join', room: 'r', since: c(13) });
});

test('the join the server makes by itself (the URL\'s room) is not taken for ours', () => {
  const log = new RoomLog();
  log.expectServerJoin();
  log.join('r', 1);
  assert.equal(log.onJoined({ type: 'joined', cursor: null }, 1), false);
  assert.equal(log.joined, false);
  assert.equal(log.onJoined({ type: 'joined', cursor: c(2) }, 1), true);
  assert.equal(log.cursor, c(2));
});

test('the outbox sends after the room\'s join, once per socket, and again on the next one', () => {
  const w = world();
  w.outbox.add(w.item('one'));
  assert.deepEqual(w.bodies(), [], 'no socket yet');
  w.open();
  assert.deepEqual(w.bodies(), ['one']);
  w.outbox.add(w.item('two'));
  w.outbox.flush('r');
  assert.deepEqual(w.bodies(), ['one', 'two'], 'each once on this socket');
  // A new socket: everything unanswered goes again, with the same client_ids, in order.
  w.open();
  assert.deepEqual(w.state.sent.slice(2).map((f) => f.client_id), ['c-one', 'c-two']);
});

test('acks and refusals: the outbox tells, the caller settles', () => {
  const w = world();
  w.open();
  const one = w.outbox.add(w.item('one'));
  assert.deepEqual(w.outbox.answer({ type: 'ack', client_id: 'c-one', id: 'm1' }), { item: one, ok: true });
  assert.equal(w.outbox.has('c-one'), true, 'kept until the caller deletes it');
  w.outbox.delete('c-one');
  assert.equal(w.outbox.answer({ type: 'ack', client_id: 'c-one' }), null, 'not ours (any more)');
  assert.equal(w.outbox.answer({ type: 'error', code: 'validation_failed' }), null, 'no client_id');

  const two = w.outbox.add(w.item('two'));
  assert.deepEqual(w.outbox.answer({ type: 'error', code: 'forbidden', message: 'no', client_id: 'c-two' }),
    { item: two, ok: false, retry: false, reason: 'no' });
  // A failed item is not sent again, not even on a new socket, until the caller makes it pending.
  two.state = 'failed';
  const before = w.state.sent.length;
  w.open();
  assert.equal(w.state.sent.length, before);
  two.state = 'pending';
  w.outbox.flush('r');
  assert.deepEqual(w.bodies().slice(-1), ['two']);
});

test('after rate_limited the room waits, then sends again in the order things were made', () => {
  const w = world();
  w.open();
  for (const b of ['a', 'b', 'c']) w.outbox.add(w.item(b));
  w.outbox.add(w.item('x', 's')); // another room is not held
  assert.deepEqual(w.bodies(), ['a', 'b', 'c', 'x']);
  const answer = w.outbox.answer({ type: 'error', code: 'rate_limited', retry_after_ms: 1000, client_id: 'c-b' });
  assert.equal(answer.retry, true);
  assert.equal(answer.reason, 'slow down');
  // Made during the wait: it waits too, behind the refused one.
  w.outbox.add(w.item('d'));
  w.outbox.add(w.item('y', 's'));
  w.outbox.flush('r');
  assert.deepEqual(w.bodies(), ['a', 'b', 'c', 'x', 'y']);
  w.wait(999);
  assert.deepEqual(w.bodies(), ['a', 'b', 'c', 'x', 'y']);
  w.wait(1);
  // a and c were not refused (still waiting for their ack on this socket): only b and d go.
  assert.deepEqual(w.bodies(), ['a', 'b', 'c', 'x', 'y', 'b', 'd']);
  assert.deepEqual(w.state.sent.slice(-2).map((f) => f.client_id), ['c-b', 'c-d']);
});

test('unavailable holds the room for the default wait; a longer hold is not cut short', () => {
  const w = world();
  w.open();
  w.outbox.add(w.item('a'));
  w.outbox.add(w.item('b'));
  w.outbox.answer({ type: 'error', code: 'rate_limited', retry_after_ms: 5000, client_id: 'c-a' });
  w.outbox.answer({ type: 'error', code: 'unavailable', client_id: 'c-b' });
  w.wait(2500);
  assert.deepEqual(w.bodies(), ['a', 'b'], 'still within the longer wait');
  w.wait(2500);
  assert.deepEqual(w.bodies(), ['a', 'b', 'a', 'b']);
});

test('a hold\'s release can flush other outboxes too (messages, then actions)', () => {
  const w = world();
  const flushed = [];
  const outbox = new Outbox({
    link: { gen: () => w.state.gen, room: (n) => w.rooms.get(n), send: () => {} },
    frame: (i) => i,
    onRelease: (room) => flushed.push(room),
    now: () => w.state.now,
    timers: { set: (fn, ms) => { w.state.timers.push({ fn, at: w.state.now + ms }); }, clear: () => {} },
  });
  w.open();
  outbox.add(w.item('a'));
  outbox.answer({ type: 'error', code: 'unavailable', client_id: 'c-a' });
  w.wait(2500);
  assert.deepEqual(flushed, ['r']);
});
