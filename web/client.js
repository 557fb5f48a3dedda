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

/**
 * BanterClient — the whole client for scripts, bots and other apps (browsers, Node 20+ with
 * a WebSocket): it logs in and refreshes, keeps one WebSocket open (reconnecting with
 * backoff, moving to the next of `servers` when one fails: another gateway), resumes every
 * room from its cursor (`join` with `since`), keeps each send in an Outbox until its ack
 * (re-sent with its client_id on every new socket, so the server stores it once), and hands
 * each event of the rooms' logs to `on(type, fn)` once, in log order.
 *
 *   const client = new BanterClient({ servers: ['http://localhost:8080'], token });
 *   client.on('message', (m) => console.log(m.author, m.body));
 *   client.join('general');
 *   await client.connect();
 *   await client.send('general', 'hello');   // resolves with the ack, once durable
 *
 * `token` is a bot's token or a user's access token; or call `login(username, password)`.
 * `auth`: the auth API's base URL when it is not on the servers (`banter auth` beside the
 * gateways); login, refresh and `me` go there.
 * Options for other runtimes and tests: `WebSocket`, `fetch`, `random`, `timers`, and
 * `connectTimeoutMs` (10 s: a handshake not done by then is given up, the next server tried).
 */
export class BanterClient {
  constructor({
    servers, auth = null, token = null, refreshToken = null, WebSocket: Socket = globalThis.WebSocket,
    fetch: fetchFn = globalThis.fetch, random = Math.random, timers = defaultTimers,
    connectTimeoutMs = 10000,
  }) {
    if (!Array.isArray(servers) || servers.length === 0) throw new Error('BanterClient needs servers: [base URL, …]');
    if (typeof Socket !== 'function') throw new Error('no WebSocket here: pass one (Node 20: run with --experimental-websocket)');
    this.servers = servers.map((s) => String(s).replace(/\/+$/, ''));
    this.auth = auth ? String(auth).replace(/\/+$/, '') : null; // the auth API, when elsewhere
    this.token = token;
    this.refreshToken = refreshToken;
    this.username = null;
    this.Socket = Socket;
    this.fetch = fetchFn;
    this.random = random;
    this.timers = timers;
    this.connectTimeoutMs = connectTimeoutMs;
    this.server = 0;          // index of the server in use
    this.gen = 0;             // the open socket's generation (0: none open)
    this.generations = 0;     // sockets opened so far: every socket a generation of its own
    this.socket = null;
    this.attempt = 0;
    this.closed = false;
    this.rooms = new Map();   // name → RoomLog
    this.seen = new Map();    // name → Set of cursors handed out (a replay may repeat live frames)
    this.handlers = new Map();
    this.opened = null;
    this.seq = 0;
    this.outbox = new Outbox({
      link: { gen: () => this.gen, room: (name) => this.rooms.get(name), send: (f) => this.socket.send(JSON.stringify(f)) },
      frame: (item) => item.frame,
      timers,
    });
  }

  /** Calls `fn(frame)` for each frame of `type` (`message`, `edited`, `ack`, …; `*`: all). */
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(fn);
    return this;
  }

  emit(type, frame) {
    for (const key of [type, '*']) for (const fn of this.handlers.get(key) || []) fn(frame);
  }

  /** Logs in as a user; keeps its access and refresh tokens. */
  async login(username, password) {
    const data = await this.api('POST', '/api/v1/login', { username, password }, { auth: false });
    this.token = data.token;
    this.refreshToken = data.refresh_token;
    this.username = null;
    return data;
  }

  /** A fresh access token from the refresh token (which rotates). */
  async refresh() {
    if (!this.refreshToken) throw new BanterError(401, 'token_expired', 'the token expired and there is no refresh token');
    const data = await this.api('POST', '/api/v1/refresh', { refresh_token: this.refreshToken }, { auth: false });
    this.token = data.token;
    this.refreshToken = data.refresh_token;
    return data;
  }

  /** Calls the HTTP API; returns the envelope's `data`, or throws a BanterError. */
  async api(method, path, body, { auth = true, retried = false } = {}) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (auth && this.token) headers.Authorization = `Bearer ${this.token}`;
    let response;
    try {
      const base = this.auth && AUTH_PATHS.has(path) ? this.auth : this.servers[this.server];
      response = await this.fetch(base + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      this.server = (this.server + 1) % this.servers.length;
      throw new BanterError(0, 'unavailable', `cannot reach the server: ${e.message}`);
    }
    const envelope = await response.json().catch(() => ({}));
    if (response.ok) return envelope.data;
    if (auth && !retried && envelope.error === 'token_expired' && this.refreshToken) {
      await this.refresh();
      return this.api(method, path, body, { auth, retried: true });
    }
    throw new BanterError(response.status, envelope.error || 'unknown', envelope.message || response.statusText);
  }

  /**
   * Follows `room`: joined on the open socket (and every later one), resumed from its cursor.
   * From `since` (a cursor; ZERO_CURSOR: its whole history), or by default from now on.
   */
  join(room, { since = null } = {}) {
    if (this.rooms.has(room)) return;
    const log = new RoomLog();
    if (since) log.loadedUpTo(since);
    log.fromNow = !since;
    this.rooms.set(room, log);
    this.seen.set(room, new Set());
    if (this.gen) this.sendJoin(room);
  }

  /**
   * Opens the socket (and keeps it open until `close()`); resolves once it is first open and
   * every room followed so far is joined (so nothing said from then on is missed).
   */
  connect() {
    this.closed = false;
    if (!this.opened) this.opened = new Promise((resolve, reject) => { this.whenOpen = { resolve, reject }; });
    this.open();
    return this.opened;
  }

  /**
   * Sends a message; resolves with its ack (`{id, room, cursor, created_at, client_id}`) once
   * it is durable, however many reconnects that takes; rejects with a BanterError when the
   * server refuses it for good.
   */
  send(room, body, { replyTo = null, attachments = [], clientId = null } = {}) {
    this.join(room);
    const id = clientId || `${Date.now().toString(36)}-${(this.seq++).toString(36)}-${Math.floor(this.random() * 1e9).toString(36)}`;
    const frame = { type: 'send', room, body, client_id: id };
    if (replyTo) frame.reply_to = replyTo;
    if (attachments.length) frame.attachments = attachments;
    return new Promise((resolve, reject) => {
      this.outbox.add({ clientId: id, room, state: 'pending', frame, resolve, reject });
    });
  }

  /** Closes the socket for good; sends not yet acked are refused. */
  close() {
    this.closed = true;
    const socket = this.socket;
    this.down();
    if (socket) socket.close(1000);
    for (const item of this.outbox.values()) item.reject(new BanterError(0, 'closed', 'the client was closed'));
    this.outbox.clear();
  }

  async open() {
    if (this.closed || this.socket) return;
    try {
      if (!this.username && this.token) this.username = (await this.api('GET', '/api/v1/me')).username;
      if (this.refreshToken && expiresWithin(this.token, 30)) await this.refresh();
    } catch (e) {
      if (e.status === 401 || e.status === 403) return this.fail(e);
      return this.retry();
    }
    if (this.closed || this.socket) return;
    const [first] = this.rooms.keys();
    const base = this.servers[this.server].replace(/^http/, 'ws');
    let url = `${base}/ws?token=${encodeURIComponent(this.token || '')}`;
    // The first room is joined by the URL itself, resuming after its cursor: no live event of
    // it can overtake its replay, as one could overtake a second `join` of ours.
    if (first) url += `&room=${encodeURIComponent(first)}`;
    const since = first && this.rooms.get(first).cursor;
    if (since) url += `&since=${since}`;
    const socket = new this.Socket(url);
    this.socket = socket;
    // A handshake the network swallowed may never end by itself (nor, in some runtimes,
    // tell): give up on it and try the next server.
    const giveUp = this.timers.set(() => {
      if (this.socket !== socket || this.gen) return;
      this.down();
      try { socket.close(); } catch { /* it never opened */ }
      this.emit('close', { type: 'close', code: 0, reason: 'the connection did not open in time' });
      this.retry();
    }, this.connectTimeoutMs);
    socket.onopen = () => {
      this.timers.clear(giveUp);
      if (this.socket !== socket) return;
      this.gen = ++this.generations;
      this.attempt = 0;
      for (const [name, log] of this.rooms) {
        log.down();
        if (name === first) log.join(name, this.gen); // the URL's join: answered like ours
        else this.sendJoin(name);
      }
      this.emit('open', { type: 'open', server: this.servers[this.server] });
      this.settleOpen();
    };
    socket.onmessage = (e) => {
      if (this.socket !== socket) return;
      let frame;
      try { frame = JSON.parse(e.data); } catch { return; }
      this.onFrame(frame);
    };
    socket.onclose = (e) => {
      this.timers.clear(giveUp);
      if (this.socket !== socket) return;
      this.down();
      this.emit('close', { type: 'close', code: e.code, reason: e.reason });
      if (this.closed) return;
      if (e.code === 4003) return this.fail(new BanterError(403, 'account_disabled', 'the account was deactivated or the bot revoked'));
      if (e.code === 4001 && !this.refreshToken) return this.fail(new BanterError(401, 'token_expired', 'the token expired'));
      this.retry();
    };
    socket.onerror = () => {};
  }

  sendJoin(room) {
    const log = this.rooms.get(room);
    const frame = log.join(room, this.gen);
    if (!frame) return;
    // Nothing seen yet and nothing asked of the past: from the live point on.
    if (log.fromNow && log.cursor === null) delete frame.since;
    this.socket.send(JSON.stringify(frame));
  }

  onFrame(f) {
    if (f.type === 'ack' || f.type === 'error') {
      const answer = this.outbox.answer(f);
      if (answer) {
        if (answer.ok) {
          this.outbox.delete(answer.item.clientId);
          answer.item.resolve(f);
        } else if (!answer.retry) {
          this.outbox.delete(answer.item.clientId);
          answer.item.reject(new BanterError(0, f.code, answer.reason));
        }
      }
      this.emit(f.type, f);
      return;
    }
    const log = typeof f.room === 'string' ? this.rooms.get(f.room) : undefined;
    if (f.type === 'joined' && log) {
      if (log.onJoined(f, this.gen)) this.outbox.flush(f.room);
      this.emit('joined', f);
      this.settleOpen();
      return;
    }
    if (log && LOGGED.has(f.type) && typeof f.cursor === 'string') {
      const seen = this.seen.get(f.room);
      if (seen.has(f.cursor)) return;
      seen.add(f.cursor);
      if (seen.size > 10000) seen.delete(seen.values().next().value);
      log.onEvent(f);
    }
    this.emit(f.type, f);
  }

  /** Resolves `connect()` once the socket is open and every room joined on it. */
  settleOpen() {
    if (!this.whenOpen || !this.gen) return;
    for (const log of this.rooms.values()) if (!log.joined) return;
    this.whenOpen.resolve();
    this.whenOpen = null;
  }

  down() {
    this.gen = 0;
    this.socket = null;
    for (const log of this.rooms.values()) log.down();
    for (const item of this.outbox.values()) item.sentOn = 0;
  }

  /** The next attempt, after a backoff, at the next server: another gateway may be up. */
  retry() {
    if (this.closed) return;
    if (this.attempt > 0) this.server = (this.server + 1) % this.servers.length;
    const wait = backoff(this.attempt++, this.random);
    this.timers.set(() => this.open(), wait);
  }

  fail(error) {
    this.closed = true;
    this.emit('failed', { type: 'failed', error });
    if (this.whenOpen) { this.whenOpen.reject(error); this.whenOpen = null; }
    for (const item of this.outbox.values()) item.reject(error);
    this.outbox.clear();
  }
}

// The auth API's paths: sent to `auth` when it is not on the servers (a split deployment).
const AUTH_PATHS = new Set(['/api/v1/register', '/api/v1/login', '/api/v1/refresh', '/api/v1/logout', '/api/v1/me']);

/** A refusal of the server: its HTTP status (0: none), its `error` code, its message. */
export class BanterError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Whether a JWT expires within `secs` (a bot's token, no JWT, never does). */
function expiresWithin(token, secs) {
  const parts = typeof token === 'string' ? token.split('.') : [];
  if (parts.length !== 3) return false;
  try {
    const json = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const { exp } = JSON.parse(globalThis.atob(json));
    return Number.isFinite(exp) && exp * 1000 < Date.now() + secs * 1000;
  } catch {
    return false;
  }
}
