/*
 * banter — the plain web chat page.
 *
 * No framework, no build step. Served under a strict CSP, so everything is
 * wired with addEventListener, and every piece of user-provided text goes
 * into the page through textContent (never innerHTML).
 *
 * Outline:
 *   session   — tokens in localStorage, refresh before expiry / on 401.
 *   api()     — fetch wrapper that unwraps the JSON envelope.
 *   room      — history over HTTP, then "join" over the socket with `since`.
 *   messages  — kept sorted by cursor, deduplicated by id.
 *   outbox    — own messages waiting for their "ack", re-sent after reconnects.
 *   socket    — reconnect with backoff + jitter, resume from the last cursor.
 */
'use strict';

const API = '/api/v1';
const SESSION_KEY = 'banter.session'; // {token, refresh_token, username, expires_at}
const ROOM_KEY = 'banter.room';
const PAGE_SIZE = 50;
const TYPING_SEND_EVERY_MS = 2000;
const TYPING_SHOW_MS = 3000;
const RETRYABLE_SEND_ERRORS = new Set(['rate_limited', 'unavailable']);

const $ = (id) => document.getElementById(id);
const ui = {
  authView: $('auth-view'), authForm: $('auth-form'), authAlert: $('auth-alert'),
  authInfo: $('auth-info'), username: $('username'), password: $('password'),
  loginBtn: $('login-btn'), registerBtn: $('register-btn'),
  chatView: $('chat-view'), meName: $('me-name'), conn: $('conn-status'),
  logoutBtn: $('logout-btn'), roomForm: $('room-form'), roomInput: $('room-input'),
  roomList: $('room-list'), chatAlert: $('chat-alert'), roomName: $('room-name'),
  messages: $('messages'), loadOlder: $('load-older'), list: $('message-list'),
  typing: $('typing'), composer: $('composer'), input: $('message-input'),
  membersDetails: $('members-details'), membersCount: $('members-count'),
  memberList: $('member-list'),
};

/* ------------------------------------------------------------------ state */

let session = null;      // see SESSION_KEY
let sessionEpoch = 0;    // bumped on login/logout so stale async work is ignored
let refreshTimer = null;
let refreshing = null;   // in-flight refresh promise (single flight)
let lastRefreshAt = 0;

const room = {
  name: null,            // current room
  historyLoaded: false,  // HTTP history loaded → safe to "join" with since
  joined: false,         // server confirmed "joined" on the current socket
  hasMore: false,
  lastCursor: null,      // newest cursor seen in the stream (resume point)
  msgs: [],              // [{id, cursor, el}] sorted by cursor
  byId: new Map(),
  members: new Set(),
  typing: new Map(),     // user → timeout id
  joinSeq: 0,            // guards against overlapping joinRoom() calls
  loadingOlder: false,
};

// client_id → {client_id, room, body, el, id?}; Map keeps send order.
const outbox = new Map();

let ws = null;
let wsAttempts = 0;        // for backoff; reset once a room is joined
let failsWithoutOpen = 0;  // handshakes that never opened (maybe a bad token)
let everConnected = false;
let reconnectTimer = null;
let lastTypingSent = 0;
let alertTimer = null;

/* ---------------------------------------------------------------- helpers */

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function newClientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // randomUUID needs a secure context; build a v4 UUID by hand otherwise.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function hhmm(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

function store(key, value) {
  try {
    if (value == null) localStorage.removeItem(key);
    else localStorage.setItem(key, typeof value === 'string' ? value : JSON.stringify(value));
  } catch { /* storage unavailable (private mode): the session lasts this page only */ }
}

function readStoredSession() {
  try {
    const s = JSON.parse(localStorage.getItem(SESSION_KEY));
    return s && s.token && s.refresh_token && s.username ? s : null;
  } catch {
    return null;
  }
}

function showChatError(message) {
  ui.chatAlert.textContent = message;
  clearTimeout(alertTimer);
  alertTimer = setTimeout(() => { ui.chatAlert.textContent = ''; }, 8000);
}

/* -------------------------------------------------------------------- api */

// Calls the JSON API and returns the envelope's `data`, or throws ApiError
// carrying the server's human-readable `message` and machine `error` code.
async function api(method, path, { body, auth = false, retry = true } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (auth) {
    await ensureFreshToken();
    if (!session) throw new ApiError(401, 'no_session', 'You are not logged in.');
    headers.Authorization = `Bearer ${session.token}`;
  }
  let res;
  try {
    res = await fetch(API + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network_error', 'Cannot reach the server. Check your connection.');
  }
  let env = null;
  try { env = await res.json(); } catch { /* not JSON (e.g. a proxy error page) */ }
  if (res.ok && env && env.success !== false) return env.data || {};

  const code = (env && env.error) || `http_${res.status}`;
  if (auth && retry && res.status === 401 && code === 'token_expired') {
    await refreshSession();
    return api(method, path, { body, auth, retry: false });
  }
  throw new ApiError(res.status, code, (env && env.message) || `Request failed (HTTP ${res.status}).`);
}

/* ---------------------------------------------------------------- session */

// Stores a login/refresh answer as the current session.
function applyTokens(data, fallbackUsername) {
  session = {
    token: data.token,
    refresh_token: data.refresh_token,
    username: (data.user && data.user.username) || fallbackUsername || (session && session.username),
    expires_at: Date.now() + (Number(data.expires_in) || 300) * 1000,
  };
  store(SESSION_KEY, session);
  scheduleRefresh();
  sendAuthFrame();
}

// Takes over a session another tab has just refreshed.
function adoptSession(s) {
  session = s;
  scheduleRefresh();
  sendAuthFrame();
}

function sendAuthFrame() {
  if (session) wsSend({ type: 'auth', token: session.token });
}

// Refresh a little before expiry (up to 60 s early, with jitter so several
// tabs do not all refresh at the same instant).
function scheduleRefresh(delayMs) {
  clearTimeout(refreshTimer);
  if (!session) return;
  if (delayMs === undefined) {
    const left = session.expires_at - Date.now();
    delayMs = Math.max(1000, left - Math.min(60000, left * 0.2) - Math.random() * 5000);
  }
  refreshTimer = setTimeout(() => {
    refreshSession().catch(() => { if (session) scheduleRefresh(10000); });
  }, delayMs);
}

async function ensureFreshToken() {
  if (session && session.expires_at - Date.now() < 15000) await refreshSession();
}

function refreshSession() {
  if (!refreshing) refreshing = doRefresh().finally(() => { refreshing = null; });
  return refreshing;
}

async function doRefresh() {
  if (!session) throw new ApiError(401, 'no_session', 'You are not logged in.');
  const epoch = sessionEpoch;
  // Another tab may already have rotated the refresh token; use its result.
  const stored = readStoredSession();
  if (stored && stored.refresh_token !== session.refresh_token) {
    adoptSession(stored);
    if (stored.expires_at - Date.now() > 15000) return;
  }
  const oldRefresh = session.refresh_token;
  lastRefreshAt = Date.now();
  try {
    const data = await api('POST', '/refresh', { body: { refresh_token: oldRefresh } });
    if (epoch === sessionEpoch) applyTokens(data);
  } catch (err) {
    if (err.status === 401 && epoch === sessionEpoch) {
      const s = readStoredSession();
      if (s && s.refresh_token !== oldRefresh) { adoptSession(s); return; } // lost a race with another tab
      endSession({ error: 'Your session has expired. Please log in again.' });
    }
    throw err;
  }
}

async function logIn(username, password) {
  const data = await api('POST', '/login', { body: { username, password } });
  sessionEpoch++;
  applyTokens(data, username);
  startChat();
}

async function logOut() {
  ui.logoutBtn.disabled = true;
  try {
    if (session) await api('POST', '/logout', { body: { refresh_token: session.refresh_token }, auth: true });
  } catch { /* log out locally anyway */ }
  ui.logoutBtn.disabled = false;
  endSession({ info: 'You have been logged out.' });
}

// Drops all session state and shows the login form.
function endSession({ error = '', info = '', clearStorage = true } = {}) {
  sessionEpoch++;
  clearTimeout(refreshTimer);
  disconnect();
  session = null;
  if (clearStorage) store(SESSION_KEY, null);
  outbox.clear();
  resetRoom();
  room.name = null;
  showAuth(error, info);
}

/* -------------------------------------------------------------- views */

function showAuth(error = '', info = '') {
  ui.chatView.hidden = true;
  ui.authView.hidden = false;
  ui.authAlert.textContent = error;
  ui.authInfo.textContent = info;
  ui.username.focus();
}

function startChat() {
  ui.authView.hidden = true;
  ui.chatView.hidden = false;
  ui.meName.textContent = session.username;
  setStatus('connecting');
  // On a phone, start with the member list collapsed to save room.
  if (window.matchMedia('(max-width: 640px)').matches) ui.membersDetails.open = false;
  scheduleRefresh();
  let saved = null;
  try { saved = localStorage.getItem(ROOM_KEY); } catch { /* ignore */ }
  joinRoom(saved || 'general').finally(() => { if (session && !ws) connect(); });
  refreshRoomList();
  ui.input.focus();
}

async function submitAuth(kind) {
  const username = ui.username.value.trim();
  const password = ui.password.value;
  ui.authAlert.textContent = '';
  ui.authInfo.textContent = '';
  ui.loginBtn.disabled = ui.registerBtn.disabled = true;
  try {
    if (kind === 'register') {
      await api('POST', '/register', { body: { username, password } });
      ui.authInfo.textContent = 'Account created. Logging you in…';
    }
    await logIn(username, password);
    ui.password.value = '';
  } catch (err) {
    ui.authAlert.textContent = err.message;
  } finally {
    ui.loginBtn.disabled = ui.registerBtn.disabled = false;
  }
}

function setStatus(state) {
  ui.conn.dataset.state = state;
  ui.conn.textContent = state;
}

/* ------------------------------------------------------------------ rooms */

async function fetchHistory(name, before) {
  const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (before) q.set('before', before);
  const data = await api('GET', `/rooms/${encodeURIComponent(name)}/messages?${q}`, { auth: true });
  return { messages: Array.isArray(data.messages) ? data.messages : [], hasMore: !!data.has_more };
}

function resetRoom() {
  room.historyLoaded = room.joined = room.hasMore = false;
  room.lastCursor = null;
  room.msgs = [];
  room.byId.clear();
  room.members.clear();
  for (const t of room.typing.values()) clearTimeout(t);
  room.typing.clear();
  ui.list.replaceChildren();
  renderMembers();
  renderTyping();
  updateLoadOlder();
}

// Switches to a room: load the latest history over HTTP first (so a failure
// leaves the current room untouched), then join over the socket with `since`.
async function joinRoom(name, force = false) {
  name = name.trim();
  if (!name) return;
  if (!force && name === room.name && room.historyLoaded) return;
  const seq = ++room.joinSeq;
  let page;
  try {
    page = await fetchHistory(name);
  } catch (err) {
    if (seq !== room.joinSeq || !session) return;
    showChatError(`Could not open “${name}”: ${err.message}`);
    if (!room.name) { room.name = name; ui.roomName.textContent = name; } // retried once the socket opens
    return;
  }
  if (seq !== room.joinSeq || !session) return;

  if (room.name && room.name !== name) wsSend({ type: 'leave', room: room.name });
  resetRoom();
  room.name = name;
  ui.roomName.textContent = name;
  ui.roomInput.value = name;
  store(ROOM_KEY, name);

  for (const m of page.messages) addMessage(m, false);
  if (room.msgs.length) bumpCursor(room.msgs[room.msgs.length - 1].cursor);
  room.hasMore = page.hasMore;
  room.historyLoaded = true;
  updateLoadOlder();
  for (const p of outbox.values()) if (p.room === name) renderPending(p);
  scrollToBottom();
  if (wsOpen()) sendJoin();
}

function sendJoin() {
  const frame = { type: 'join', room: room.name };
  if (room.lastCursor) frame.since = room.lastCursor;
  wsSend(frame);
}

async function loadOlder() {
  if (room.loadingOlder || !room.msgs.length) return;
  const name = room.name;
  room.loadingOlder = true;
  ui.loadOlder.disabled = true;
  try {
    const page = await fetchHistory(name, room.msgs[0].cursor);
    if (name !== room.name) return;
    // Keep the visible messages where they are while older ones go on top.
    const before = ui.messages.scrollHeight;
    for (const m of page.messages) addMessage(m, false);
    ui.messages.scrollTop += ui.messages.scrollHeight - before;
    room.hasMore = page.hasMore;
  } catch (err) {
    if (session) showChatError(err.message);
  } finally {
    room.loadingOlder = false;
    ui.loadOlder.disabled = false;
    updateLoadOlder();
  }
}

function updateLoadOlder() {
  const hide = !(room.hasMore && room.msgs.length);
  if (hide && document.activeElement === ui.loadOlder) ui.messages.focus();
  ui.loadOlder.hidden = hide;
}

// Fills the Room field's suggestions with the rooms the server knows about.
async function refreshRoomList() {
  try {
    const data = await api('GET', '/rooms', { auth: true });
    const rooms = Array.isArray(data.rooms) ? data.rooms : [];
    ui.roomList.replaceChildren(...rooms.map((r) => {
      const opt = document.createElement('option');
      opt.value = r.room;
      return opt;
    }));
  } catch { /* suggestions are optional */ }
}

/* --------------------------------------------------------------- messages */

function bumpCursor(cursor) {
  if (cursor && (!room.lastCursor || cursor > room.lastCursor)) room.lastCursor = cursor;
}

function isNearBottom() {
  const b = ui.messages;
  return b.scrollHeight - b.scrollTop - b.clientHeight < 80;
}

function scrollToBottom() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

// Builds one <li>. All user text goes in through textContent.
function renderMessage({ author, body, created_at }) {
  const li = document.createElement('li');
  li.className = 'msg';
  if (session && author === session.username) li.classList.add('own');

  const meta = document.createElement('div');
  meta.className = 'meta';
  const who = document.createElement('span');
  who.className = 'author';
  who.textContent = author || 'unknown';
  meta.append(who);
  if (created_at) {
    const time = document.createElement('time');
    time.dateTime = created_at;
    time.textContent = hhmm(created_at);
    time.title = new Date(created_at).toLocaleString();
    meta.append(time);
  }
  const note = document.createElement('span');
  note.className = 'note';
  meta.append(note);

  const text = document.createElement('div');
  text.className = 'body';
  text.textContent = body == null ? '' : String(body);

  li.append(meta, text);
  return li;
}

function setNote(li, text) {
  li.querySelector('.note').textContent = text;
}

// Inserts a server message at its place (by cursor). Returns false for
// duplicates. Pending own messages always stay at the bottom.
function addMessage(m, follow = true) {
  if (!m || !m.id || room.byId.has(m.id)) return false;
  const stick = follow && isNearBottom();
  const entry = { id: m.id, cursor: String(m.cursor || ''), el: renderMessage(m) };

  let lo = 0;
  let hi = room.msgs.length; // first index with a greater cursor
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (room.msgs[mid].cursor <= entry.cursor) lo = mid + 1; else hi = mid;
  }
  const next = room.msgs[lo];
  ui.list.insertBefore(entry.el, next ? next.el : ui.list.querySelector(':scope > .pending'));
  room.msgs.splice(lo, 0, entry);
  room.byId.set(entry.id, entry);
  if (stick) scrollToBottom();
  return true;
}

function removeMessage(id) {
  const entry = room.byId.get(id);
  if (!entry) return;
  entry.el.remove();
  room.byId.delete(id);
  room.msgs.splice(room.msgs.indexOf(entry), 1);
  updateLoadOlder();
}

function renderPending(p) {
  const li = renderMessage({ author: session.username, body: p.body });
  li.classList.add('own', 'pending');
  setNote(li, 'sending…');
  ui.list.append(li);
  p.el = li;
}

function sendMessage() {
  const body = ui.input.value.trim();
  if (!body || !room.name || !session) return;
  const p = { client_id: newClientId(), room: room.name, body, el: null };
  outbox.set(p.client_id, p);
  renderPending(p);
  ui.input.value = '';
  scrollToBottom();
  trySend(p);
}

// Sends now if the socket is in the message's room; otherwise it waits in
// the outbox and flushOutbox() sends it after the next "joined".
function trySend(p) {
  if (room.joined && p.room === room.name && wsOpen()) {
    wsSend({ type: 'send', room: p.room, body: p.body, client_id: p.client_id });
  }
}

function flushOutbox() {
  for (const p of outbox.values()) trySend(p);
}

function handleSendError(p, f) {
  const reason = f.message || f.code;
  if (f.code === 'token_expired') {
    refreshSession().then(() => trySend(p), () => {});
  } else if (RETRYABLE_SEND_ERRORS.has(f.code)) {
    if (p.el) setNote(p.el, `${reason} (retrying…)`);
    setTimeout(() => { if (outbox.get(p.client_id) === p) trySend(p); }, 3000);
  } else {
    outbox.delete(p.client_id);
    if (p.el) {
      p.el.classList.remove('pending');
      p.el.classList.add('failed');
      setNote(p.el, `not sent: ${reason}`);
    }
  }
}

/* ------------------------------------------------------- members, typing */

function renderMembers() {
  const users = [...room.members].sort((a, b) => a.localeCompare(b));
  ui.memberList.replaceChildren(...users.map((u) => {
    const li = document.createElement('li');
    li.textContent = u;
    if (session && u === session.username) {
      const you = document.createElement('span');
      you.className = 'you';
      you.textContent = ' (you)';
      li.append(you);
    }
    return li;
  }));
  ui.membersCount.textContent = String(users.length);
}

function showTyping(user) {
  clearTimeout(room.typing.get(user));
  room.typing.set(user, setTimeout(() => stopTyping(user), TYPING_SHOW_MS));
  renderTyping();
}

function stopTyping(user) {
  if (!room.typing.has(user)) return;
  clearTimeout(room.typing.get(user));
  room.typing.delete(user);
  renderTyping();
}

function renderTyping() {
  const u = [...room.typing.keys()];
  ui.typing.textContent =
    u.length === 0 ? '' :
    u.length === 1 ? `${u[0]} is typing…` :
    u.length === 2 ? `${u[0]} and ${u[1]} are typing…` :
    'Several people are typing…';
}

/* ----------------------------------------------------------------- socket */

function wsOpen() {
  return ws !== null && ws.readyState === WebSocket.OPEN;
}

function wsSend(frame) {
  if (wsOpen()) ws.send(JSON.stringify(frame));
}

function connect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  if (!session || ws) return;
  setStatus(everConnected ? 'reconnecting' : 'connecting');
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host +
    '/ws?token=' + encodeURIComponent(session.token) +
    '&room=' + encodeURIComponent(room.name || 'general');
  let sock;
  try { sock = new WebSocket(url); } catch { scheduleReconnect(); return; }
  ws = sock;
  let opened = false;

  sock.addEventListener('open', () => {
    if (ws !== sock) return;
    opened = true;
    everConnected = true;
    failsWithoutOpen = 0;
    room.joined = false;
    setStatus('online');
    // Resume: replay everything after the last cursor we saw.
    if (room.historyLoaded) sendJoin();
    else if (room.name) joinRoom(room.name, true);
  });
  sock.addEventListener('message', (e) => { if (ws === sock) handleFrame(e.data); });
  sock.addEventListener('close', (e) => {
    if (ws !== sock) return; // replaced or closed on purpose
    ws = null;
    room.joined = false;
    if (!opened) failsWithoutOpen++;
    if (!session) return;
    setStatus('reconnecting');
    scheduleReconnect(e.code === 4001); // 4001: token expired → refresh first
  });
}

// Backoff 0.5 s doubling to 10 s, ±20 % jitter. Before reconnecting make sure
// the token is fresh; if handshakes keep failing the token may be revoked, so
// try a refresh (at most once a minute) — a 401 there ends the session.
function scheduleReconnect(forceRefresh = false) {
  clearTimeout(reconnectTimer);
  const base = Math.min(10000, 500 * 2 ** wsAttempts);
  wsAttempts++;
  reconnectTimer = setTimeout(async () => {
    reconnectTimer = null;
    try {
      if (forceRefresh || (failsWithoutOpen >= 3 && Date.now() - lastRefreshAt > 60000)) {
        await refreshSession();
      } else {
        await ensureFreshToken();
      }
    } catch {
      if (!session) return; // refresh said 401: back at the login form
    }
    connect();
  }, base * (0.8 + Math.random() * 0.4));
}

function disconnect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  if (ws) {
    const sock = ws;
    ws = null; // the close handler ignores sockets that are no longer current
    try { sock.close(1000, 'bye'); } catch { /* already closing */ }
  }
  everConnected = false;
  wsAttempts = failsWithoutOpen = 0;
}

function handleFrame(raw) {
  let f;
  try { f = JSON.parse(raw); } catch { return; }
  if (!f || typeof f !== 'object') return;
  const here = f.room === room.name;

  switch (f.type) {
    case 'message': {
      if (!here) break;
      bumpCursor(f.cursor);
      stopTyping(f.author);
      // Our own message may be broadcast before it is acked: show it in place
      // but keep it marked pending until the ack arrives.
      const p = f.client_id ? outbox.get(f.client_id) : undefined;
      if (p && p.el) { p.el.remove(); p.el = null; }
      addMessage(f);
      const entry = room.byId.get(f.id);
      if (p && entry) {
        entry.el.classList.add('pending');
        setNote(entry.el, 'sending…');
        p.el = entry.el;
      }
      break;
    }
    case 'ack': {
      const p = outbox.get(f.client_id);
      if (!p) break;
      outbox.delete(f.client_id);
      const entry = room.byId.get(f.id);
      if (entry) {
        if (p.el && p.el !== entry.el) p.el.remove();
        entry.el.classList.remove('pending');
        setNote(entry.el, '');
      } else {
        if (p.el) p.el.remove();
        if (f.room === room.name) {
          addMessage({ id: f.id, author: session.username, body: p.body, created_at: f.created_at, cursor: f.cursor });
        }
      }
      break;
    }
    case 'joined':
      if (!here) break;
      bumpCursor(f.cursor);
      wsAttempts = 0; // the connection is healthy
      if (!room.joined) { room.joined = true; flushOutbox(); }
      break;
    case 'members':
      if (!here) break;
      room.members = new Set((f.users || []).map((u) => (typeof u === 'string' ? u : u.username)));
      renderMembers();
      break;
    case 'presence':
      if (!here) break;
      if (f.state === 'online') room.members.add(f.user);
      else { room.members.delete(f.user); stopTyping(f.user); }
      renderMembers();
      break;
    case 'typing':
      if (here && session && f.user !== session.username) showTyping(f.user);
      break;
    case 'deleted':
      if (here) removeMessage(f.id);
      break;
    case 'error': {
      const p = f.client_id ? outbox.get(f.client_id) : undefined;
      if (p) { handleSendError(p, f); break; }
      if (f.code === 'token_expired') refreshSession().catch(() => {});
      showChatError(f.message || f.code || 'Something went wrong.');
      break;
    }
    default: // "left", "authenticated" and unknown frames need nothing
      break;
  }
}

/* ------------------------------------------------------------------ wiring */

ui.authForm.addEventListener('submit', (e) => {
  e.preventDefault();
  submitAuth('login');
});
ui.registerBtn.addEventListener('click', () => {
  if (ui.authForm.reportValidity()) submitAuth('register');
});
ui.logoutBtn.addEventListener('click', logOut);

ui.roomForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  await joinRoom(ui.roomInput.value);
  if (ui.roomInput.value.trim() === room.name) ui.input.focus();
});
ui.loadOlder.addEventListener('click', loadOlder);

ui.composer.addEventListener('submit', (e) => {
  e.preventDefault();
  sendMessage();
  ui.input.focus();
});
// Enter sends; Shift+Enter inserts a newline; never interrupt IME composition.
ui.input.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    sendMessage();
  }
});
// Tell the room we are typing, at most every 2 s.
ui.input.addEventListener('input', () => {
  const now = Date.now();
  if (ui.input.value.trim() && room.joined && now - lastTypingSent > TYPING_SEND_EVERY_MS) {
    lastTypingSent = now;
    wsSend({ type: 'typing', room: room.name });
  }
});

// Keep tabs in step: another tab refreshed, logged out or logged in.
window.addEventListener('storage', (e) => {
  if (e.key !== SESSION_KEY) return;
  const s = readStoredSession();
  if (!s) {
    if (session) endSession({ info: 'You were logged out in another tab.', clearStorage: false });
  } else if (!session) {
    sessionEpoch++;
    session = s;
    startChat();
  } else if (s.username !== session.username) {
    location.reload();
  } else if (s.refresh_token !== session.refresh_token) {
    adoptSession(s);
  }
});

// Timers may have slept with the laptop; catch up when the page is back.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && session) ensureFreshToken().catch(() => {});
});
window.addEventListener('online', () => {
  if (session && !ws) { wsAttempts = 0; connect(); }
});

/* -------------------------------------------------------------------- boot */

session = readStoredSession();
if (session) startChat();
else showAuth();
