/*
 * banter's reliable client, without a DOM: what makes sure nothing is lost, doubled or
 * out of order between a page and the server, whatever the network does. app.js draws;
 * this decides what goes over the socket, when, and again.
 *
 *   RoomLog  — a room's place in its log (the resume cursor) and its join on the current
 *              socket: `join` with `since` replays every event after the cursor (messages,
 *              edits, deletes, reactions, members, topics), so every event's cursor moves it.
 *   Outbox   — frames that change rooms (send, edit, delete, react, unreact), each with a
 *              client_id of its own, kept until the server answers: sent after the room's
 *              join, again on every new socket, and after `unavailable` / `rate_limited`
 *              once the room's wait is over, in the order they were made. The server
 *              applies a client_id once, so sending again is always safe.
 *   backoff  — how long to wait before the next connection attempt.
 *
 * Nothing here touches the page, storage or the network itself: the caller passes a link
 * (the socket's generation, the rooms, a send function) and, for tests, a clock and timers.
 */

export const ZERO_CURSOR = '0'.repeat(24); // below every cursor: "replay everything"
export const RETRY_MS = 2500;              // wait after `unavailable` (no hint from the server)

// The frames of a room's log; each carries its cursor. (`read` and `mention` carry a cursor
// too, but they are the user's stream, not the room's log.)
export const LOGGED = new Set(['message', 'edited', 'deleted', 'reaction', 'member', 'topic', 'created']);

// Refusals after which nothing happened and the same frame may go again, with a word for people.
const RETRYABLE = { unavailable: 'server busy', token_expired: 'reconnecting', rate_limited: 'slow down' };

/** The later of two cursors (either may be null). Cursors of a room compare as strings. */
export const maxCursor = (a, b) => (!a ? b : !b ? a : a > b ? a : b);

/** Milliseconds before connection attempt `attempt` (0, 1, …): 0.5 s doubling to 10 s, ±25 %. */
export function backoff(attempt, random = Math.random) {
  return Math.min(10000, 500 * 2 ** attempt) * (0.75 + random() / 2);
}

/**
 * What an `error` frame answering one of our frames means: `{retry: true, wait, reason}` when
 * the server did nothing and the frame should go again after `wait` ms, else
 * `{retry: false, reason}`.
 */
export function classify(f) {
  const label = RETRYABLE[f.code];
  if (!label) return { retry: false, reason: f.message || f.code || 'refused' };
  const hinted = f.code === 'rate_limited' && Number.isFinite(f.retry_after_ms);
  return { retry: true, wait: hinted ? Math.min(Math.max(f.retry_after_ms, 50), 60000) : RETRY_MS, reason: label };
}

/** A room's resume point and its join on the current socket (see the top of the file). */
export class RoomLog {
  constructor() {
    this.cursor = null;       // resume point: we have every event up to here
    this.joinSentOn = 0;      // socket generation our `join` went out on
    this.joinsAwaited = 0;    // `joined` answers still due on this socket
    this.joined = false;      // our own join was answered on this socket
    this.holdUntil = 0;       // after a refusal: nothing of this room goes out before
    this.release = null;      // the timer that sends the held frames, in order
  }

  /** History up to `cursor` is in (the newest message of a page, or nothing: ZERO). */
  loadedUpTo(cursor) {
    this.cursor = maxCursor(this.cursor, cursor || ZERO_CURSOR);
  }

  /** The server joins the room named in the socket's URL by itself; its `joined` is not ours. */
  expectServerJoin() {
    this.joinsAwaited = 1;
  }

  /** Our `join` for socket `gen`, or null when it went out already. */
  join(name, gen) {
    if (this.joinSentOn === gen) return null;
    this.joinSentOn = gen;
    this.joinsAwaited++;
    return { type: 'join', room: name, since: this.cursor || ZERO_CURSOR };
  }

  /** A `joined` frame; returns whether it answered our join (everything up to its cursor is replayed). */
  onJoined(f, gen) {
    this.joinsAwaited = Math.max(0, this.joinsAwaited - 1);
    if (this.joinsAwaited > 0 || this.joinSentOn !== gen) return false;
    this.joined = true;
    if (typeof f.cursor === 'string') this.cursor = maxCursor(this.cursor, f.cursor);
    return true;
  }

  /**
   * Any frame of the room. Once our join is answered, frames of the log arrive in cursor
   * order, so each one moves the resume point; before, they may be the server's own join's.
   */
  onEvent(f) {
    if (this.joined && LOGGED.has(f.type) && typeof f.cursor === 'string') this.cursor = maxCursor(this.cursor, f.cursor);
  }

  /** The socket went away: the next one joins again (from the cursor). */
  down() {
    this.joined = false;
    this.joinsAwaited = 0;
  }

  /** Whether a frame of this room may go out on socket `gen` now. */
  open(gen, now) {
    return gen !== 0 && this.joinSentOn === gen && now >= this.holdUntil;
  }
}

// Called as plain functions: a browser's setTimeout refuses another `this`.
const defaultTimers = { set: (fn, ms) => setTimeout(fn, ms), clear: (id) => clearTimeout(id) };

/**
 * Frames waiting for the server's answer, by client_id, in the order they were made.
 * An item is the caller's object with at least {clientId, room, state, sentOn}; only
 * items whose state is 'pending' are sent, each at most once per socket.
 *
 * `link`: {gen() → the open socket's generation (0: none), room(name) → RoomLog,
 * send(frame)}; `frame(item)` → the frame to send; `onRelease(room)`: a hold ended
 * (send what waits, of every outbox). The outbox never drops an item by itself: the
 * caller deletes it once it is settled.
 */
export class Outbox {
  constructor({ link, frame, onRelease, now = () => Date.now(), timers = defaultTimers }) {
    this.link = link;
    this.frame = frame;
    this.onRelease = onRelease || ((room) => this.flush(room));
    this.now = now;
    this.timers = timers;
    this.items = new Map();
  }

  get size() { return this.items.size; }
  get(clientId) { return this.items.get(clientId); }
  has(clientId) { return this.items.has(clientId); }
  delete(clientId) { return this.items.delete(clientId); }
  values() { return this.items.values(); }
  clear() { this.items.clear(); }

  /** Keeps `item` (after the others) and sends it if it can go now. */
  add(item) {
    item.sentOn = 0;
    this.items.set(item.clientId, item);
    this.send(item);
    return item;
  }

  /**
   * Sends `item` if it is pending, its room is joined on the open socket and not held, and
   * it has not gone out on this socket yet. A held item waits for the hold: items made
   * after one that was refused never overtake it. Returns whether it went.
   */
  send(item) {
    const room = this.link.room(item.room);
    const gen = this.link.gen();
    if (item.state !== 'pending' || !room || item.sentOn === gen || !room.open(gen, this.now())) return false;
    item.sentOn = gen;
    this.link.send(this.frame(item));
    return true;
  }

  /** Sends whatever of `room` can go, oldest first. */
  flush(room) {
    for (const item of this.items.values()) if (item.room === room) this.send(item);
  }

  /** Nothing of `room` goes out for `wait` ms; then `onRelease(room)`. */
  hold(room, wait) {
    const log = this.link.room(room);
    if (!log) return;
    log.holdUntil = Math.max(log.holdUntil, this.now() + wait);
    this.timers.clear(log.release);
    log.release = this.timers.set(() => this.onRelease(room), log.holdUntil - this.now());
  }

  /**
   * An `ack` or `error` frame. Returns null when it is not about one of ours, else
   * `{item, ok: true}` for an ack, `{item, ok: false, retry, reason}` for an error. After a
   * retryable error the item goes again once the room's hold is over (or on the next socket);
   * after another, it stays as it is (the caller marks it failed or drops it).
   */
  answer(f) {
    const item = typeof f.client_id === 'string' ? this.items.get(f.client_id) : undefined;
    if (!item) return null;
    if (f.type === 'ack') return { item, ok: true };
    const c = classify(f);
    if (c.retry) {
      item.sentOn = 0;
      this.hold(item.room, c.wait);
    }
    return { item, ok: false, ...c };
  }
}
