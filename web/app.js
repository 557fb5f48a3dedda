/*
 * banter — the web chat.
 *
 * Plain JS, no build step. The page runs under a strict CSP, so everything is
 * wired with addEventListener, and all user-provided text reaches the page
 * through textContent only (never innerHTML).
 *
 * Outline:
 *   storage   — per-user session tokens and state (rooms, read marks, outbox) in
 *               localStorage, shared by that user's tabs; which user a tab is, in sessionStorage.
 *   http      — fetch wrapper for the JSON envelope; auth calls go to config.auth_url.
 *   session   — log in/out, refresh before expiry (one tab per user at a time), 401 → refresh once.
 *   rooms     — Room objects: messages sorted by cursor, members, typing, unread.
 *   render    — sidebar, message list, presence, typing, status.
 *   text      — message bodies as DOM nodes: links, `code`, ```blocks```; never HTML.
 *   actions   — edit, delete, react: frames with a client_id, re-sent until answered.
 *   outbox    — own messages until the server has them; re-sent with the same client_id.
 *   thread    — the side panel of one thread: its first message, the replies, a composer.
 *   socket    — ONE WebSocket joined to every sidebar room; resume with `since`.
 *   lifecycle — opening, adding and leaving rooms; history; polling GET /rooms.
 *
 * What keeps the conversation whole over a bad network (resume cursors, the outbox of
 * frames waiting for an answer, re-sends, backoff) is client.js, which has no DOM.
 */
import { Outbox, RoomLog, ZERO_CURSOR, backoff, maxCursor } from './client.js';

const PAGE_SIZE = 50;
const POLL_MS = 10000;
const TYPING_SEND_MS = 2000;
const TYPING_SHOW_MS = 3000;
const GROUP_GAP_MS = 5 * 60 * 1000;   // same author within this: one visual group
const KEEP_AWAY = 200;                // messages kept in memory for rooms not on screen
const SLEEP_GAP_MS = 3 * 60 * 1000;   // a timer this late means the machine slept
const MAX_BODY = 4000;
const EMOJI = ['👍', '❤️', '😂', '🎉', '😮', '😢', '👀', '✅'];
const QUOTE_CHARS = 90;               // of a replied-to message's first line
const ROOM_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const USER_RE = /^[A-Za-z0-9_.-]{3,32}$/;
// Sessions are per user, not per browser, so that two people can use two
// tabs of one browser: each tab remembers (per tab) whose it is.
const SESSION_PREFIX = 'banter.session.';      // + lowercased username, in localStorage
const LEGACY_SESSION_KEY = 'banter.session';   // the one session of older versions
const TAB_USER_KEY = 'banter.tab.user';        // in sessionStorage

const $ = (id) => document.getElementById(id);
const ui = {
  authView: $('auth-view'), authForm: $('auth-form'), authAlert: $('auth-alert'),
  authInfo: $('auth-info'), username: $('username'), password: $('password'),
  loginBtn: $('login-btn'), registerBtn: $('register-btn'),
  accounts: $('accounts'), accountList: $('account-list'),
  chatView: $('chat-view'), sidebar: $('sidebar'), sidebarToggle: $('sidebar-toggle'),
  sidebarClose: $('sidebar-close'), menuDot: $('menu-dot'), meName: $('me-name'),
  logoutBtn: $('logout-btn'), roomForm: $('room-form'), roomInput: $('room-input'),
  channelList: $('channel-list'), dmList: $('dm-list'), dmEmpty: $('dm-empty'),
  browse: $('browse'), browseList: $('browse-list'),
  roomName: $('room-name'), conn: $('conn-status'), chatAlert: $('chat-alert'),
  messages: $('messages'), loadOlder: $('load-older'), historyNote: $('history-note'),
  list: $('message-list'), jump: $('jump-latest'), typing: $('typing'), announcer: $('announcer'),
  composer: $('composer'), input: $('message-input'),
  members: $('members'), membersToggle: $('members-toggle'), membersClose: $('members-close'),
  membersCount: $('members-count'), membersToggleCount: $('members-toggle-count'),
  memberList: $('member-list'), scrim: $('scrim'),
  thread: $('thread'), threadRoom: $('thread-room'), threadClose: $('thread-close'),
  threadScroll: $('thread-scroll'), threadNote: $('thread-note'), threadOlder: $('thread-older'),
  threadList: $('thread-list'), threadComposer: $('thread-composer'), threadInput: $('thread-input'),
  threadReplying: $('thread-replying'), threadReplyingText: $('thread-replying-text'),
  threadReplyingCancel: $('thread-replying-cancel'),
  confirm: $('confirm'), confirmQuote: $('confirm-quote'), confirmOk: $('confirm-ok'),
};

/* ------------------------------------------------------------------ state */

const config = { authBase: '' };  // '' = the auth API is on this origin
let session = null;               // {token, refresh_token, username, expires_at}
let epoch = 0;                    // bumped when a session starts or ends; late results of an old one are dropped
let refreshing = null;            // the refresh in flight (one per tab and session)
let refreshTimer = null;
let pollTimer = null;
let lastTick = 0;
let alertTimer = null;

const rooms = new Map();          // name → Room, in sidebar order
let current = null;               // the Room on screen
let prefs = null;                 // {current, read: {room: cursor}, dismissed: {room: last_message_at}}
// What goes over the socket for the outboxes below: the open socket's generation, the rooms.
const link = {
  gen: () => (socketReady() ? socket.gen : 0),
  room: (name) => rooms.get(name),
  send: (frame) => sendFrame(frame),
};
const released = (name) => { const room = rooms.get(name); if (room) flushOutbox(room); };
// Own messages not stored yet, by client_id, in send order (the items are the messages shown).
const outbox = new Outbox({ link, frame: sendFrameOf, onRelease: released });
// Ids deleted while this page ran. A history page read before a deletion can
// land after its `deleted` frame, and a resume may replay a message deleted
// moments ago: neither may bring it back.
const deletedIds = new Set();
// Edits, deletes and reactions of mine until the server answers them: {clientId, room,
// frame, done, fail}.
const actions = new Outbox({ link, frame: (a) => a.frame, onRelease: released });
// The open thread panel, or null: {room, rootId, root, msgs (replies by cursor), byId,
// hasMore, loading, error, replyTo (a reply being answered, else the root)}.
let thread = null;
// The open message menu or reaction picker: {msg, li (its node), button (that opened it), node}.
let popup = null;

const socket = { ws: null, gen: 0, attempts: 0, timer: null, hasOpened: false };
let lastScrollTop = 0;

// A room as the page has it; its place in the log and its join are RoomLog's (client.js).
class Room extends RoomLog {
  constructor(name) {
    super();
    this.name = name;
    this.msgs = [];           // stored messages, sorted by cursor
    this.byId = new Map();
    this.loaded = false;      // the newest history page is in
    this.loading = null;      // that page's request, while in flight
    this.loadError = '';
    this.hasMore = false;
    this.loadingOlder = false;
    this.members = new Set();
    this.membersLive = false; // members came over the current socket (else use the polled count)
    this.polledOnline = 0;
    this.lastMessageAt = null;
    this.typing = new Map();  // user → timer that hides "is typing"
    this.typingSentAt = 0;
    this.unread = new Set();  // ids of messages from others not seen yet
    this.draft = '';
    this.nav = null;          // sidebar elements
  }

  get online() {
    return this.membersLive ? this.members.size : this.polledOnline;
  }

  get newest() {
    return this.msgs.length ? this.msgs[this.msgs.length - 1].cursor : null;
  }
}

/* ---------------------------------------------------------------- helpers */

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

// Icons are CSS masks (style.css), so no markup of ours looks like an
// image or SVG in the message list.
function icon(name) {
  const span = el('span', `icon icon-${name}`);
  span.setAttribute('aria-hidden', 'true');
  return span;
}

// The colour follows the name, so a person looks the same in every list.
function avatar(name) {
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  const node = el('span', `avatar hue-${hash % 8}`, (name[0] || '?').toUpperCase());
  node.setAttribute('aria-hidden', 'true');
  return node;
}

function iconButton(name, label, onClick, className = '') {
  const b = el('button', `icon-btn ${className}`.trim());
  b.type = 'button';
  b.setAttribute('aria-label', label);
  b.title = label;
  b.append(icon(name));
  b.addEventListener('click', onClick);
  return b;
}

function newClientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // randomUUID needs a secure context; plain http on a LAN address is not one.
  const b = crypto.getRandomValues(new Uint8Array(16));
  return 'c-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

const isMe = (user) => !!session && String(user).toLowerCase() === session.username.toLowerCase();
const pageVisible = () => document.visibilityState === 'visible';

function hhmm(date) {
  return `${String(date.getHours()).padStart(2, '0')}:${String(date.getMinutes()).padStart(2, '0')}`;
}

function dayLabel(date) {
  const opts = { weekday: 'long', month: 'long', day: 'numeric' };
  if (date.getFullYear() !== new Date().getFullYear()) opts.year = 'numeric';
  return date.toLocaleDateString(undefined, opts);
}

const sameDay = (a, b) => a.toDateString() === b.toDateString();

/* ---------------------------------------------------------- room names */

const isDm = (name) => name.startsWith('dm:');

// The server's canonical DM name: both usernames lowercased, sorted.
function dmName(a, b) {
  return 'dm:' + [a.toLowerCase(), b.toLowerCase()].sort().join(':');
}

function dmPeer(name) {
  const [, a, b] = name.split(':');
  return a === session.username.toLowerCase() ? b : a;
}

const roomLabel = (name) => (isDm(name) ? `@ ${dmPeer(name)}` : `# ${name}`);

// What the Room field accepts: "dev", "#dev", "@bob", "dm:bob:alice".
// Returns the server's name for it, or throws a message for the person.
function parseRoomInput(text) {
  const input = text.trim().replace(/^#/, '');
  let peer = null;
  if (input.startsWith('@')) peer = input.slice(1);
  else if (input.startsWith('dm:')) {
    const users = input.slice(3).split(':');
    if (users.length !== 2 || !users.some(isMe)) throw new Error('You can only open direct messages you are part of.');
    peer = isMe(users[0]) ? users[1] : users[0];
  }
  if (peer !== null) {
    if (!USER_RE.test(peer)) throw new Error('Usernames are 3 to 32 letters, digits, dots, dashes or underscores.');
    if (isMe(peer)) throw new Error('That is you — pick someone else to message.');
    return dmName(session.username, peer);
  }
  if (!ROOM_RE.test(input)) throw new Error('Room names are 1 to 64 letters, digits, dots, dashes or underscores.');
  return input;
}

function validStoredRoom(name) {
  try { return typeof name === 'string' && parseRoomInput(name) === name; } catch { return false; }
}

/* ---------------------------------------------------------------- storage */

function store(key, value) {
  try {
    if (value == null) localStorage.removeItem(key);
    else localStorage.setItem(key, JSON.stringify(value));
  } catch { /* storage full or disabled: this page keeps working, a reload forgets */ }
}

function load(key) {
  try { return JSON.parse(localStorage.getItem(key)); } catch { return null; }
}

const userKey = (what) => `banter.${what}.${session.username}`;
const sessionKey = (user) => SESSION_PREFIX + user.toLowerCase();
const isSession = (s) => !!s && typeof s.token === 'string' && typeof s.refresh_token === 'string' &&
  typeof s.username === 'string';

function readSession(user) {
  const s = load(sessionKey(user));
  return isSession(s) && s.username.toLowerCase() === user.toLowerCase() ? s : null;
}

// Everyone signed in on this browser, by name.
function storedSessions() {
  const found = [];
  try {
    for (let i = 0; i < localStorage.length; i++) {
      const key = localStorage.key(i);
      const s = key.startsWith(SESSION_PREFIX) && readSession(key.slice(SESSION_PREFIX.length));
      if (s) found.push(s);
    }
  } catch { /* storage disabled: nobody to offer */ }
  return found.sort((a, b) => a.username.localeCompare(b.username));
}

function tabUser() {
  try { return sessionStorage.getItem(TAB_USER_KEY); } catch { return null; }
}

function setTabUser(user) {
  try {
    if (user) sessionStorage.setItem(TAB_USER_KEY, user);
    else sessionStorage.removeItem(TAB_USER_KEY);
  } catch { /* storage disabled: a reload of this tab shows the login form */ }
}

// Older versions kept one session for the whole browser. Its owner stays
// signed in: the session moves to their key, and the tab that finds it is theirs.
function migrateLegacySession() {
  const s = load(LEGACY_SESSION_KEY);
  if (s === null) return;
  if (isSession(s) && !readSession(s.username)) {
    store(sessionKey(s.username), s);
    if (!tabUser()) setTabUser(s.username);
  }
  store(LEGACY_SESSION_KEY, null);
}

function saveRoomNames() {
  store(userKey('rooms'), [...rooms.keys()]);
}

function loadPrefs() {
  const p = load(userKey('view')) || {};
  return {
    current: typeof p.current === 'string' ? p.current : null,
    read: p.read && typeof p.read === 'object' ? p.read : {},
    dismissed: p.dismissed && typeof p.dismissed === 'object' ? p.dismissed : {},
  };
}

const savePrefs = () => store(userKey('view'), prefs);

// The outbox is shared with this user's other tabs: change one entry at a
// time instead of writing our whole map over theirs.
function storeOutboxEntry(p) {
  const list = (load(userKey('outbox')) || []).filter((e) => e.client_id !== p.clientId);
  list.push({
    client_id: p.clientId, room: p.room, body: p.body, created_at: p.createdAt, state: p.state, error: p.error,
    reply_to: p.replyTo, thread_root: p.threadRoot,
  });
  store(userKey('outbox'), list);
}

function forgetOutboxEntry(clientId) {
  const list = (load(userKey('outbox')) || []).filter((e) => e.client_id !== clientId);
  store(userKey('outbox'), list.length ? list : null);
}

/* -------------------------------------------------------------------- http */

class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

// Calls the JSON API and returns the envelope's `data`, or throws ApiError
// with the server's human-readable message. An authenticated call that gets
// a 401 refreshes the token and tries once more; a second 401 ends the session.
async function request(base, method, path, { body, auth = true } = {}, retried = false) {
  const myEpoch = epoch;
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (auth) {
    await ensureFreshToken();
    if (!session) throw new ApiError(401, 'unauthorized', 'You are signed out.');
    headers.Authorization = `Bearer ${session.token}`;
  }
  let res;
  try {
    res = await fetch(`${base}/api/v1${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach the server. Check your connection.');
  }
  let env = null;
  try { env = await res.json(); } catch { /* not JSON: a proxy's error page */ }
  if (res.ok && env && env.success !== false) return env.data || {};

  if (auth && res.status === 401 && session && myEpoch === epoch) {
    if (!retried) {
      await refreshSession();
      return request(base, method, path, { body, auth }, true);
    }
    endSession('Your session has ended. Please log in again.');
  }
  throw new ApiError(
    res.status,
    (env && env.error) || `http_${res.status}`,
    (env && env.message) || `The server answered ${res.status}.`,
    env && env.data && env.data.field,
  );
}

const api = (method, path, opts) => request('', method, path, opts);
const authApi = (method, path, opts) => request(config.authBase, method, path, opts);

/* ---------------------------------------------------------------- session */

function saveSession(data, username) {
  session = {
    token: data.token,
    refresh_token: data.refresh_token,
    username: (data.user && data.user.username) || username || session.username,
    expires_at: Date.now() + (Number(data.expires_in) || 900) * 1000,
  };
  store(sessionKey(session.username), session);
  useToken();
}

// A new access token: plan the next refresh, and renew the open socket's
// authentication so the server does not close it at the old token's expiry.
function useToken() {
  scheduleRefresh();
  sendFrame({ type: 'auth', token: session.token });
}

function scheduleRefresh(delay) {
  clearTimeout(refreshTimer);
  if (!session) return;
  if (delay === undefined) {
    const left = session.expires_at - Date.now();
    // A fifth of the lifetime early (at most a minute), jittered so tabs do not collide.
    delay = Math.max(1000, left - Math.min(60000, left / 5) - Math.random() * 5000);
  }
  refreshTimer = setTimeout(() => {
    refreshSession().catch(() => { if (session) scheduleRefresh(10000); });
  }, delay);
}

async function ensureFreshToken() {
  if (session && session.expires_at - Date.now() < 20000) await refreshSession();
}

function refreshSession() {
  if (!session) return Promise.reject(new ApiError(401, 'unauthorized', 'You are signed out.'));
  if (!refreshing) {
    // Refresh tokens rotate and a reused one revokes the whole login, so only
    // one tab of a user may refresh at a time (Web Locks, where available).
    const myEpoch = epoch;
    const lock = `banter-refresh-${session.username.toLowerCase()}`;
    const run = navigator.locks ? navigator.locks.request(lock, () => doRefresh(myEpoch)) : doRefresh(myEpoch);
    const done = run.finally(() => { if (refreshing === done) refreshing = null; });
    refreshing = done;
  }
  return refreshing;
}

async function doRefresh(myEpoch) {
  // Signed out (maybe in as someone else) while waiting for the lock.
  if (myEpoch !== epoch) throw new ApiError(401, 'unauthorized', 'You are signed out.');
  const stored = readSession(session.username);
  if (stored && stored.refresh_token !== session.refresh_token) {
    // Another tab of this user refreshed while we waited for the lock.
    session = stored;
    useToken();
    if (stored.expires_at - Date.now() > 30000) return;
  }
  try {
    const data = await authApi('POST', '/refresh', { body: { refresh_token: session.refresh_token }, auth: false });
    if (myEpoch === epoch) saveSession(data);
  } catch (err) {
    if (err.status === 401 && myEpoch === epoch) endSession('Your session has expired. Please log in again.');
    throw err;
  }
}

async function logIn(username, password) {
  const data = await authApi('POST', '/login', { body: { username, password }, auth: false });
  epoch++;
  saveSession(data, username);
  startChat();
}

async function logOut() {
  const outboxKey = userKey('outbox');
  ui.logoutBtn.disabled = true;
  try {
    await authApi('POST', '/logout', { body: { refresh_token: session.refresh_token } });
  } catch { /* sign out here anyway; the refresh token expires on its own */ }
  // Unsent messages should not wait for the next person at this browser.
  store(outboxKey, null);
  ui.logoutBtn.disabled = false;
  endSession('', 'You have been logged out.');
}

// Back to the login form. The per-user state (rooms, read marks, and the
// outbox unless the person logged out) stays stored, so signing in again
// picks up where this left off.
function endSession(error = '', info = '', { keepStored = false } = {}) {
  epoch++;
  clearTimeout(refreshTimer);
  clearInterval(pollTimer);
  dropSocket();
  if (session && !keepStored) store(sessionKey(session.username), null);
  session = null;
  refreshing = null;
  for (const room of rooms.values()) for (const t of room.typing.values()) clearTimeout(t);
  for (const room of rooms.values()) clearTimeout(room.release);
  rooms.clear();
  closePopup({ focus: false });
  closeThread({ focus: false });
  if (ui.confirm.open) ui.confirm.close();
  outbox.clear();
  actions.clear();
  deletedIds.clear();
  current = null;
  socket.hasOpened = false;
  socket.attempts = 0;
  ui.list.replaceChildren();
  ui.memberList.replaceChildren();
  setDrawer(null);
  showAuth(error, info);
}

/* ------------------------------------------------------------------ views */

// The login form is this tab belonging to no one. It never signs in by
// itself: sessions stored by other tabs are offered as buttons instead.
function showAuth(error = '', info = '') {
  setTabUser(null);
  renderAccounts();
  ui.chatView.hidden = true;
  ui.authView.hidden = false;
  document.title = 'banter';
  ui.authAlert.textContent = error;
  ui.authInfo.textContent = info;
  ui.username.focus();
}

async function submitAuth(kind) {
  const username = ui.username.value.trim();
  const password = ui.password.value;
  ui.authAlert.textContent = '';
  ui.authInfo.textContent = '';
  if (!username || !password) {
    ui.authAlert.textContent = 'Enter a username and a password.';
    (username ? ui.password : ui.username).focus();
    return;
  }
  setAuthBusy(true);
  try {
    if (kind === 'register') {
      await authApi('POST', '/register', { body: { username, password }, auth: false });
      ui.authInfo.textContent = 'Account created. Signing you in…';
    }
    await logIn(username, password);
    ui.password.value = '';
    ui.authInfo.textContent = '';
  } catch (err) {
    ui.authAlert.textContent = err.message;
    if (err.field === 'username') ui.username.focus();
    else if (err.field === 'password' || err.code === 'invalid_credentials') ui.password.focus();
  } finally {
    setAuthBusy(false);
  }
}

// While a login is under way no other way in may start a second chat.
function setAuthBusy(busy) {
  for (const b of [ui.loginBtn, ui.registerBtn, ...ui.accountList.querySelectorAll('button')]) b.disabled = busy;
}

function renderAccounts() {
  const sessions = storedSessions();
  ui.accounts.hidden = sessions.length === 0;
  ui.accountList.replaceChildren(...sessions.map((s) => {
    const li = el('li');
    const b = el('button', 'btn btn-secondary account-btn');
    b.type = 'button';
    b.disabled = ui.loginBtn.disabled;
    b.append(avatar(s.username), el('span', 'account-label', `Continue as ${s.username}`));
    b.addEventListener('click', () => continueAs(s.username));
    li.append(b);
    return li;
  }));
}

function continueAs(user) {
  session = readSession(user);
  if (!session) { renderAccounts(); return; } // logged out in another tab meanwhile
  epoch++;
  startChat();
}

function startChat() {
  setTabUser(session.username);
  ui.authView.hidden = true;
  ui.chatView.hidden = false;
  ui.meName.textContent = session.username;
  prefs = loadPrefs();
  const saved = (load(userKey('rooms')) || []).filter(validStoredRoom);
  for (const name of saved.length ? saved : ['general']) addRoom(name);
  restoreOutbox();
  openRoom(rooms.get(prefs.current) || rooms.values().next().value);
  // The room on screen first; the others fill in their unread counts.
  for (const room of [current, ...rooms.values()]) loadRoom(room);
  connect();
  lastTick = Date.now();
  pollRooms();
  pollTimer = setInterval(tick, POLL_MS);
  scheduleRefresh();
  ui.input.focus();
}

function setStatus(state) {
  ui.conn.dataset.state = state;
  ui.conn.textContent = state;
}

function showAlert(message) {
  ui.chatAlert.textContent = message;
  clearTimeout(alertTimer);
  alertTimer = setTimeout(() => { ui.chatAlert.textContent = ''; }, 8000);
}

function announce(text) {
  ui.announcer.textContent = text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

/* ----------------------------------------------------------------- sidebar */

function renderNav() {
  const channels = [];
  const dms = [];
  for (const room of rooms.values()) {
    if (!room.nav) buildNavItem(room);
    (isDm(room.name) ? dms : channels).push(room.nav.item);
    updateNav(room);
  }
  ui.channelList.replaceChildren(...channels);
  ui.dmList.replaceChildren(...dms);
  ui.dmEmpty.hidden = dms.length > 0;
}

function buildNavItem(room) {
  const item = el('li', 'room-item');
  const link = el('button', 'room-link');
  link.type = 'button';
  link.dataset.room = room.name;
  const unread = el('span', 'unread', '0');
  const online = el('span', 'online', '0');
  link.append(el('span', 'room-label', roomLabel(room.name)), unread, online);
  link.addEventListener('click', () => {
    openRoom(room);
    if (setDrawer(null)) ui.input.focus();
  });
  const leaveLabel = isDm(room.name) ? `Close conversation with ${dmPeer(room.name)}` : `Leave # ${room.name}`;
  const close = iconButton('close', leaveLabel, () => leaveRoom(room), 'room-close');
  item.append(link, close);
  room.nav = { item, link, unread, online, close };
}

function updateNav(room) {
  if (!room.nav) return;
  const { link, unread, online, close } = room.nav;
  const n = room.unread.size;
  unread.textContent = String(n);
  unread.hidden = n === 0;
  online.textContent = String(room.online);
  link.classList.toggle('has-unread', n > 0);
  if (room === current) link.setAttribute('aria-current', 'true');
  else link.removeAttribute('aria-current');
  const spoken = isDm(room.name) ? `Direct message with ${dmPeer(room.name)}` : room.name;
  link.setAttribute('aria-label', `${spoken}${n ? `, ${n} unread` : ''}, ${room.online} online`);
  close.hidden = rooms.size < 2;
  updateUnreadSummary();
}

function updateUnreadSummary() {
  let total = 0;
  for (const room of rooms.values()) total += room.unread.size;
  ui.menuDot.hidden = total === 0;
  const where = current ? `${roomLabel(current.name)} · ` : '';
  document.title = `${total ? `(${total}) ` : ''}${where}banter`;
}

// Public rooms from the last poll that are not in the sidebar yet.
function renderBrowse(list) {
  ui.browse.hidden = list.length === 0;
  ui.browseList.replaceChildren(...list.map((r) => {
    const li = el('li');
    const b = el('button', 'browse-link');
    b.type = 'button';
    b.append(el('span', 'room-label', `# ${r.room}`), el('span', 'browse-online', `${Number(r.online) || 0} online`));
    b.addEventListener('click', () => {
      openRoom(addRoom(r.room));
      loadRoom(current);
      if (setDrawer(null)) ui.input.focus();
    });
    li.append(b);
    return li;
  }));
}

/* ---------------------------------------------------------- message view */

// A message of the server (history, the socket, a thread page) as the page keeps it.
function messageOf(room, m) {
  return {
    id: m.id, cursor: m.cursor, room: room.name, author: String(m.author || 'unknown'),
    body: String(m.body ?? ''), createdAt: m.created_at, clientId: m.client_id || null,
    state: 'sent', error: '', el: null, tel: null,
    editedAt: m.edited_at || null,
    reactions: reactionsOf(m.reactions),
    replyTo: typeof m.reply_to === 'string' ? m.reply_to : null,
    threadRoot: typeof m.thread_root === 'string' ? m.thread_root : null,
    replyCount: Number(m.reply_count) || 0,
    busy: '',       // what an action of mine on it is doing ("Saving…"), until answered
    editing: null,  // 'main' or 'thread': where its inline editor is open
  };
}

// The node of a message, in the timeline (`main`) or in the thread panel.
function buildNode(msg, where) {
  const li = el('li', 'msg');
  li.dataset.author = msg.author;
  if (msg.clientId) li.dataset.clientId = msg.clientId;
  if (isMe(msg.author)) li.classList.add('own');

  const quote = el('button', 'reply-quote');
  quote.type = 'button';
  quote.hidden = true;
  quote.addEventListener('click', () => followQuote(msg));
  const meta = el('div', 'meta');
  const edited = el('span', 'edited', '(edited)');
  edited.hidden = true;
  meta.append(el('span', 'author', msg.author), el('time', 'time'), edited, el('span', 'note'));
  const replies = el('button', 'thread-link');
  replies.type = 'button';
  replies.hidden = true;
  replies.addEventListener('click', () => openThread(msg));
  const main = el('div', 'msg-main');
  main.append(quote, meta, el('div', 'body'), el('div', 'reactions'), replies);
  li.append(avatar(msg.author), main, el('div', 'msg-actions'));
  li.view = { where, quote, edited, replies, reactions: main.querySelector('.reactions'), chips: new Map(), body: null, actions: '' };
  paintNode(msg, li);
  return li;
}

function renderMessage(msg) {
  msg.el = buildNode(msg, 'main');
  return msg.el;
}

// Updates what changes over a message's life, in each place it is shown.
function paintMessage(msg) {
  for (const li of [msg.el, msg.tel]) if (li) paintNode(msg, li);
}

function paintNode(msg, li) {
  const v = li.view;
  li.dataset.state = msg.state;
  if (msg.id) li.dataset.id = msg.id;

  const time = li.querySelector('time');
  const date = new Date(msg.createdAt);
  if (!Number.isNaN(date.getTime())) {
    time.dateTime = date.toISOString();
    time.textContent = hhmm(date);
    time.title = date.toLocaleString(undefined, { dateStyle: 'full', timeStyle: 'short' });
  }
  v.edited.hidden = !msg.editedAt;
  if (msg.editedAt) {
    const at = new Date(msg.editedAt);
    v.edited.title = Number.isNaN(at.getTime()) ? 'Edited' : `Edited ${at.toLocaleString(undefined, { dateStyle: 'full', timeStyle: 'short' })}`;
  }
  li.querySelector('.note').textContent =
    msg.state === 'pending' ? (msg.error ? `Retrying… (${msg.error})` : 'Sending…') :
    msg.state === 'failed' ? `Not sent: ${msg.error}` : msg.busy;
  if (v.body !== msg.body) {
    li.querySelector('.body').replaceChildren(richText(msg.body));
    v.body = msg.body;
  }
  paintQuote(msg, li);
  paintReactions(msg, li);
  const n = msg.replyCount;
  v.replies.hidden = v.where !== 'main' || n === 0;
  v.replies.textContent = n === 1 ? '1 reply' : `${n} replies`;
  paintActions(msg, li);
}

// A reply shows a line of what it answers; in the thread panel, not when that is the root.
function paintQuote(msg, li) {
  const { quote, where } = li.view;
  const room = rooms.get(msg.room);
  const show = !!msg.replyTo && !!room && !(where === 'thread' && thread && msg.replyTo === thread.rootId);
  quote.hidden = !show;
  if (!show) return;
  const parent = findMsg(room, msg.replyTo);
  const parts = [icon('reply')];
  if (parent) parts.push(el('span', 'quote-author', parent.author), el('span', 'quote-text', firstLine(parent.body)));
  else parts.push(el('span', 'quote-text', deletedIds.has(msg.replyTo) ? 'Original message deleted' : 'Reply to an earlier message'));
  quote.replaceChildren(...parts);
  quote.setAttribute('aria-label', parent ? `Reply to ${parent.author}: ${firstLine(parent.body)}` : 'Reply to an earlier message: show the thread');
}

function firstLine(text) {
  const line = String(text).trim().split('\n')[0].replace(/`{3}/g, '');
  const chars = [...line];
  return chars.length > QUOTE_CHARS ? `${chars.slice(0, QUOTE_CHARS).join('')}…` : line;
}

// Chips under the message, one per emoji; updated in place so focus stays on a clicked chip.
function paintReactions(msg, li) {
  const { reactions: box, chips } = li.view;
  const ok = msg.state === 'sent';
  for (const [emoji, chip] of chips) {
    if (!msg.reactions.has(emoji) || !ok) { chip.remove(); chips.delete(emoji); }
  }
  if (ok) {
    for (const [emoji, r] of msg.reactions) {
      let chip = chips.get(emoji);
      if (!chip) {
        chip = el('button', 'reaction');
        chip.type = 'button';
        chip.dataset.emoji = emoji;
        chip.append(el('span', 'reaction-emoji', emoji), el('span', 'reaction-count'));
        chip.addEventListener('click', () => toggleReaction(msg, emoji));
        chips.set(emoji, chip);
      }
      box.append(chip); // (re)appended in the message's order
      const mine = r.users.some(isMe);
      chip.setAttribute('aria-pressed', String(mine));
      chip.querySelector('.reaction-count').textContent = String(r.count);
      chip.title = reactedBy(r, emoji);
      chip.setAttribute('aria-label', `${emoji} ${r.count}: ${chip.title}${mine ? '; click to remove yours' : ''}`);
    }
  }
  box.hidden = chips.size === 0;
}

function reactedBy(r, emoji) {
  const names = r.users.map((u) => (isMe(u) ? 'you' : u));
  const more = r.count - names.length;
  if (more > 0) names.push(`${more} more`);
  const list = names.length > 1 ? `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}` : names[0] || 'someone';
  return `${list} reacted with ${emoji}`;
}

// The hover toolbar (React, Reply, More) of a stored message, Retry and Discard of a failed one.
function paintActions(msg, li) {
  const own = isMe(msg.author);
  const key = `${msg.state}|${own}|${msg.editing === li.view.where}`;
  if (li.view.actions === key) return;
  li.view.actions = key;
  const box = li.querySelector('.msg-actions');
  box.replaceChildren();
  if (msg.state === 'sent' && msg.editing !== li.view.where) {
    const where = li.view.where;
    const more = iconButton('more', 'More actions', (e) => openMenu(msg, li, e.currentTarget));
    more.setAttribute('aria-haspopup', 'menu');
    more.setAttribute('aria-expanded', 'false');
    box.append(
      iconButton('smile', 'Add reaction', (e) => openPicker(msg, li, e.currentTarget)),
      iconButton('reply', 'Reply in thread', () => replyTo(msg, where)),
      more,
    );
  } else if (own && msg.state === 'failed') {
    const retry = el('button', 'btn btn-quiet btn-small', 'Retry');
    retry.type = 'button';
    retry.addEventListener('click', () => retryPending(msg));
    const discard = el('button', 'btn btn-quiet btn-small', 'Discard');
    discard.type = 'button';
    discard.addEventListener('click', () => dropPending(msg));
    box.append(retry, discard);
  }
}

// Groups a message with the one before it (same author, a few minutes
// apart) and marks the first message of each day. A reply starts a group of its own.
function restyle(room, i) {
  const msg = room.msgs[i];
  if (!msg) return;
  const prev = room.msgs[i - 1];
  const date = new Date(msg.createdAt);
  const prevDate = prev && new Date(prev.createdAt);
  const newDay = !prev || !sameDay(prevDate, date);
  msg.el.classList.toggle('cont', !newDay && !msg.replyTo && prev.author === msg.author && date - prevDate < GROUP_GAP_MS);
  if (newDay && !Number.isNaN(date.getTime())) msg.el.dataset.day = dayLabel(date);
  else delete msg.el.dataset.day;
}

/* -------------------------------------------------------------------- text */

// A message body as DOM nodes: ```fenced blocks``` become <pre><code>, `inline code`
// <code>, http(s) URLs links. Every piece of user text goes in with textContent (as
// text nodes), so nothing a person writes can become markup.
function richText(text) {
  const frag = document.createDocumentFragment();
  const parts = text.split('```');
  // An unclosed fence is text: glue the last piece back on.
  if (parts.length % 2 === 0) parts.splice(-2, 2, `${parts[parts.length - 2]}\`\`\`${parts[parts.length - 1]}`);
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      const pre = el('pre', 'code-block');
      pre.append(el('code', null, part.replace(/^[^\S\n]*\n/, '').replace(/\n[^\S\n]*$/, '')));
      frag.append(pre);
      return;
    }
    // The line breaks next to a block are the block's own edges.
    let t = part;
    if (i > 0) t = t.replace(/^\n/, '');
    if (i < parts.length - 1) t = t.replace(/\n$/, '');
    inlineText(t, frag);
  });
  return frag;
}

function inlineText(text, parent) {
  const re = /`([^`\n]+)`/g;
  let at = 0;
  for (let m; (m = re.exec(text));) {
    linkify(text.slice(at, m.index), parent);
    parent.append(el('code', 'code-inline', m[1]));
    at = m.index + m[0].length;
  }
  linkify(text.slice(at), parent);
}

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;

function linkify(text, parent) {
  let at = 0;
  URL_RE.lastIndex = 0;
  for (let m; (m = URL_RE.exec(text));) {
    let url = m[0];
    // Sentence punctuation after a link is not part of it; nor is a closing bracket it did not open.
    for (;;) {
      const last = url[url.length - 1];
      if ('.,;:!?\'"'.includes(last)) url = url.slice(0, -1);
      else if (last === ')' && (url.match(/\(/g) || []).length < (url.match(/\)/g) || []).length) url = url.slice(0, -1);
      else if (last === ']' && !url.includes('[')) url = url.slice(0, -1);
      else break;
    }
    let href = null;
    try {
      const u = new URL(url);
      if (u.protocol === 'http:' || u.protocol === 'https:') href = u.href;
    } catch { /* not a URL after all: text */ }
    if (!href) continue;
    if (m.index > at) parent.append(document.createTextNode(text.slice(at, m.index)));
    const a = el('a', 'link', url);
    a.href = href;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    parent.append(a);
    at = m.index + url.length;
    URL_RE.lastIndex = at;
  }
  if (at < text.length) parent.append(document.createTextNode(text.slice(at)));
}

function renderCurrent() {
  const room = current;
  ui.roomName.textContent = roomLabel(room.name);
  ui.input.placeholder = `Message ${roomLabel(room.name)}`;
  const pending = [...outbox.values()].filter((p) => p.room === room.name).map((p) => p.el);
  ui.list.replaceChildren(...room.msgs.map((m) => m.el), ...pending);
  ui.jump.hidden = true;
  renderMembers();
  renderTyping();
  renderHistoryState();
  scrollToBottom();
  updateUnreadSummary();
}

function renderHistoryState() {
  const room = current;
  const hideOlder = !(room.loaded && room.hasMore && room.msgs.length);
  if (hideOlder && document.activeElement === ui.loadOlder) ui.messages.focus();
  ui.loadOlder.hidden = hideOlder;
  // aria-disabled, not disabled: a disabled button would lose keyboard focus.
  ui.loadOlder.setAttribute('aria-disabled', String(room.loadingOlder));
  const empty = !room.msgs.length && ![...outbox.values()].some((p) => p.room === room.name);
  const note =
    room.loadError ? `Could not load messages (${room.loadError}). Retrying…` :
    !room.loaded ? 'Loading messages…' :
    room.hasMore ? '' :
    empty ? (isDm(room.name) ? `This is the start of your conversation with ${dmPeer(room.name)}.` : `No messages in # ${room.name} yet. Say hello!`) :
    `This is the beginning of ${roomLabel(room.name)}.`;
  ui.historyNote.textContent = note;
  ui.historyNote.hidden = !note;
}

const nearBottom = () => ui.messages.scrollHeight - ui.messages.scrollTop - ui.messages.clientHeight < 80;

function scrollToBottom() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
  lastScrollTop = ui.messages.scrollTop;
  ui.jump.hidden = true;
}

/* -------------------------------------------------------------- messages */

// Places a stored message by cursor. Pending own messages stay below all
// stored ones, so in the DOM it goes before the first of them.
function insertMessage(room, msg) {
  let lo = 0;
  let hi = room.msgs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (room.msgs[mid].cursor <= msg.cursor) lo = mid + 1; else hi = mid;
  }
  room.msgs.splice(lo, 0, msg);
  room.byId.set(msg.id, msg);
  if (room === current) {
    const next = room.msgs[lo + 1];
    ui.list.insertBefore(msg.el, next ? next.el : ui.list.querySelector(':scope > .is-outbox'));
  }
  restyle(room, lo);
  restyle(room, lo + 1);
}

// Adds a message from history or the socket. Returns it, or null for a
// duplicate. An own message carrying a pending client_id takes the pending
// message's place instead of appearing twice. `live`: it is new (the socket, an
// ack), so its thread's first message has one more reply; history counts its own.
function addMessage(room, m, { live = false } = {}) {
  if (!m || typeof m.id !== 'string' || typeof m.cursor !== 'string') return null;
  if (room.byId.has(m.id) || deletedIds.has(m.id)) return null;
  const pending = m.client_id && isMe(m.author) ? outbox.get(m.client_id) : undefined;
  let msg;
  if (pending && pending.room === room.name) {
    msg = settle(pending, m);
  } else {
    // Already known from the thread panel: the same object, shown in both places.
    msg = (thread && thread.room === room && thread.byId.get(m.id)) ||
      (thread && thread.room === room && thread.root && thread.root.id === m.id && thread.root) ||
      messageOf(room, m);
    if (!msg.el) renderMessage(msg);
  }
  insertMessage(room, msg);
  if (msg.threadRoot) {
    if (live) {
      const root = findMsg(room, msg.threadRoot);
      if (root) { root.replyCount++; paintMessage(root); }
    }
    if (thread && thread.room === room && msg.threadRoot === thread.rootId) threadAdd(msg);
  }
  return msg;
}

// A loaded message of the room, in the timeline or only in the open thread.
function findMsg(room, id) {
  const found = room.byId.get(id);
  if (found || !thread || thread.room !== room) return found;
  return thread.byId.get(id) || (thread.root && thread.root.id === id ? thread.root : undefined);
}

// Messages whose quote shows `id`: repainted when it changes or goes.
function repaintQuotes(room, id) {
  for (const m of room.msgs) if (m.replyTo === id) paintMessage(m);
  for (const p of outbox.values()) if (p.replyTo === id) paintMessage(p);
  if (thread && thread.room === room) for (const m of thread.msgs) if (m.replyTo === id && !room.byId.has(m.id)) paintMessage(m);
}

function removeMessage(room, id) {
  deletedIds.add(id);
  const msg = findMsg(room, id);
  if (!msg) return;
  if (msg.editing) closeEditor(msg, { focus: false });
  if (popup && popup.msg === msg) closePopup({ focus: false });
  const i = room.msgs.indexOf(msg);
  if (i >= 0) {
    room.msgs.splice(i, 1);
    room.byId.delete(id);
    room.unread.delete(id);
    if (msg.el.contains(document.activeElement)) ui.messages.focus();
    msg.el.remove();
    restyle(room, i);
  }
  if (msg.threadRoot) {
    const root = findMsg(room, msg.threadRoot);
    if (root && root.replyCount > 0) { root.replyCount--; paintMessage(root); }
  }
  if (thread && thread.room === room) threadRemove(msg);
  repaintQuotes(room, id);
  updateNav(room);
  if (room === current) renderHistoryState();
}

// Keeps only the newest messages of a room that is off screen; the rest can
// be paged in again from history.
function trim(room, keep) {
  const extra = room.msgs.length - keep;
  if (extra <= 0) return;
  for (const msg of room.msgs.splice(0, extra)) room.byId.delete(msg.id);
  room.hasMore = true;
  restyle(room, 0);
}

function markRead(room) {
  if (room !== current || !pageVisible() || !room.loaded) return;
  room.unread.clear();
  // An empty room seen on screen is read "up to its beginning": whatever comes later is new.
  const newest = maxCursor(prefs.read[room.name], room.newest || ZERO_CURSOR);
  if (newest !== prefs.read[room.name]) {
    prefs.read[room.name] = newest;
    savePrefs();
  }
  updateNav(room);
}

// Unread counts for a room whose history just came in: what is newer than
// the last message seen on screen. A conversation never seen here (a new DM)
// counts what came after my own last word.
function countUnread(room, messages) {
  if (room === current) { markRead(room); return; }
  let after = prefs.read[room.name];
  if (!after) {
    if (!isDm(room.name)) {
      prefs.read[room.name] = room.newest || ZERO_CURSOR;
      savePrefs();
      return;
    }
    const mine = messages.findLast((m) => isMe(m.author));
    after = mine ? mine.cursor : '';
  }
  for (const m of messages) if (!isMe(m.author) && m.cursor > after) room.unread.add(m.id);
  updateNav(room);
}

/* ----------------------------------------------------------------- actions */

// An edit, delete, react or unreact of mine: a frame with a client_id of its own, sent
// after the room's join (like sends) and again on every new socket until the server
// answers it (an ack or an error with that client_id); the server applies it once.
// `done(ack)` and `fail(error frame)` tell the caller.
function act(room, frame, { done = () => {}, fail = () => {} } = {}) {
  const a = { clientId: newClientId(), room: room.name, frame, state: 'pending', done, fail };
  a.frame.client_id = a.clientId;
  actions.add(a);
}

// The ack or error of an action. Refusals after which nothing happened go again by themselves.
function onActionAnswer(answer) {
  const { item: a, ok, retry } = answer;
  if (retry) return;
  actions.delete(a.clientId);
  if (ok) { a.done(answer.frame); return; }
  a.fail(answer.frame);
  // Deleted meanwhile (or never readable): it goes from the page too.
  const room = rooms.get(a.room);
  if (answer.frame.code === 'not_found' && room && a.frame.id) removeMessage(room, a.frame.id);
}

const refusal = (f) => (f.code === 'not_found' ? 'the message is gone' : f.message || f.code);

/* --------------------------------------------------------------- reactions */

// Reactions of a message: emoji → {count, users (the names we know, up to 20 from history)}.
function reactionsOf(list) {
  const map = new Map();
  for (const r of Array.isArray(list) ? list : []) {
    if (!r || typeof r.emoji !== 'string') continue;
    const users = Array.isArray(r.users) ? r.users.filter((u) => typeof u === 'string') : [];
    const count = Math.max(Number(r.count) || 0, users.length);
    if (count > 0) map.set(r.emoji, { count, users });
  }
  return map;
}

// A set per (message, user, emoji): adding twice or removing what is absent changes nothing.
// Returns whether it changed.
function applyReaction(msg, emoji, user, op) {
  const key = String(user).toLowerCase();
  const r = msg.reactions.get(emoji);
  const at = r ? r.users.findIndex((u) => u.toLowerCase() === key) : -1;
  if (op === 'add') {
    if (at >= 0) return false;
    if (r) { r.users.push(user); r.count++; } else msg.reactions.set(emoji, { count: 1, users: [user] });
    return true;
  }
  if (!r) return false;
  if (at >= 0) r.users.splice(at, 1);
  else if (r.count <= r.users.length) return false; // not among the names, and there are no others
  r.count--;
  if (r.count <= 0) msg.reactions.delete(emoji);
  return true;
}

const reactedByMe = (msg, emoji) => !!msg.reactions.get(emoji)?.users.some(isMe);

// Shown at once, confirmed by the server's ack (and its `reaction` frame); undone if refused.
function toggleReaction(msg, emoji) {
  const room = rooms.get(msg.room);
  if (!room || msg.state !== 'sent') return;
  const had = reactedByMe(msg, emoji);
  applyReaction(msg, emoji, session.username, had ? 'remove' : 'add');
  paintMessage(msg);
  act(room, { type: had ? 'unreact' : 'react', id: msg.id, emoji }, {
    fail(f) {
      applyReaction(msg, emoji, session.username, had ? 'add' : 'remove');
      paintMessage(msg);
      showAlert(`Could not ${had ? 'remove' : 'add'} the reaction: ${refusal(f)}`);
    },
  });
}

function onReaction(room, f) {
  const msg = findMsg(room, f.id);
  if (!msg || typeof f.emoji !== 'string' || typeof f.user !== 'string') return;
  if (applyReaction(msg, f.emoji, f.user, f.op === 'remove' ? 'remove' : 'add')) paintMessage(msg);
}

/* ------------------------------------------------------------ edit, delete */

function onEdited(room, f) {
  const msg = findMsg(room, f.id);
  if (!msg || typeof f.body !== 'string') return;
  msg.body = f.body;
  msg.editedAt = f.edited_at || msg.editedAt || new Date().toISOString();
  paintMessage(msg);
  repaintQuotes(room, msg.id);
}

// The inline editor: a textarea in place of the body. Enter saves, Escape cancels.
function startEdit(msg, where = 'main') {
  if (!isMe(msg.author) || msg.state !== 'sent') return;
  closePopup({ focus: false });
  const li = where === 'thread' ? msg.tel : msg.el;
  if (!li) return;
  if (msg.editing) {
    if (msg.editing === where) { li.querySelector('.edit-input').focus(); return; }
    closeEditor(msg, { focus: false });
  }
  msg.editing = where;
  const form = el('form', 'edit-form');
  const box = el('textarea', 'edit-input');
  box.value = msg.body;
  box.rows = 1;
  box.setAttribute('aria-label', 'Edit message');
  const cancel = el('button', 'btn btn-quiet btn-small', 'Cancel');
  cancel.type = 'button';
  const save = el('button', 'btn btn-primary btn-small', 'Save');
  save.type = 'submit';
  const bar = el('div', 'edit-bar');
  bar.append(el('span', 'edit-hint', 'Enter to save · Escape to cancel'), cancel, save);
  form.append(box, bar);
  form.addEventListener('submit', (e) => { e.preventDefault(); saveEdit(msg, box.value); });
  cancel.addEventListener('click', () => closeEditor(msg));
  box.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); saveEdit(msg, box.value); }
    else if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); closeEditor(msg); }
  });
  li.querySelector('.body').hidden = true;
  li.querySelector('.body').after(form);
  paintNode(msg, li);
  li.scrollIntoView({ block: 'nearest' });
  box.focus();
  box.setSelectionRange(box.value.length, box.value.length);
}

function closeEditor(msg, { focus = true } = {}) {
  const where = msg.editing;
  if (!where) return;
  const li = where === 'thread' ? msg.tel : msg.el;
  msg.editing = null;
  if (li) {
    li.querySelector('.edit-form')?.remove();
    li.querySelector('.body').hidden = false;
    paintNode(msg, li);
  }
  if (focus) (where === 'thread' && !ui.thread.hidden ? ui.threadInput : ui.input).focus();
}

function saveEdit(msg, text) {
  const body = cleanBody(text);
  const room = rooms.get(msg.room);
  if (!room) return;
  if (!body.trim()) { closeEditor(msg); confirmDelete(msg); return; }
  if (body === msg.body) { closeEditor(msg); return; }
  const length = [...body].length;
  if (length > MAX_BODY) {
    showAlert(`A message can be at most ${MAX_BODY} characters; this one has ${length}.`);
    return;
  }
  const before = { body: msg.body, editedAt: msg.editedAt };
  msg.body = body;
  msg.busy = 'Saving…';
  closeEditor(msg);
  repaintQuotes(room, msg.id);
  act(room, { type: 'edit', id: msg.id, body }, {
    done(f) {
      msg.busy = '';
      if (!msg.editedAt) msg.editedAt = f.created_at || new Date().toISOString();
      paintMessage(msg);
    },
    fail(f) {
      msg.busy = '';
      if (msg.body === body) Object.assign(msg, before);
      paintMessage(msg);
      repaintQuotes(room, msg.id);
      showAlert(`Could not edit the message: ${refusal(f)}`);
    },
  });
}

// The last message of mine in a list, for Up in an empty composer.
function lastOwn(list) {
  for (let i = list.length - 1; i >= 0; i--) if (isMe(list[i].author) && list[i].state === 'sent') return list[i];
  return null;
}

// Asks in the page's own dialog (keyboard: Tab between the buttons, Escape cancels).
function confirmDelete(msg) {
  if (ui.confirm.open) return;
  const back = document.activeElement;
  ui.confirmQuote.textContent = firstLine(msg.body);
  ui.confirm.returnValue = '';
  ui.confirm.addEventListener('close', () => {
    if (ui.confirm.returnValue === 'ok') deleteMessage(msg);
    if (back && back.isConnected) back.focus();
    else (msg.tel && !ui.thread.hidden ? ui.threadInput : ui.input).focus();
  }, { once: true });
  ui.confirm.showModal();
  ui.confirmOk.focus();
}

// Gone from the page once the server acks it (its `deleted` frame may come first).
function deleteMessage(msg) {
  const room = rooms.get(msg.room);
  if (!room || msg.state !== 'sent') return;
  msg.busy = 'Deleting…';
  paintMessage(msg);
  act(room, { type: 'delete', id: msg.id }, {
    done() { removeMessage(room, msg.id); },
    fail(f) {
      msg.busy = '';
      paintMessage(msg);
      if (f.code !== 'not_found') showAlert(`Could not delete the message: ${refusal(f)}`);
    },
  });
}

/* ---------------------------------------------------------- menu, picker */

// One popup at a time, inside the message's toolbar: the actions menu or the emoji picker.
// Arrow keys move between its items, Escape closes it and gives focus back to its button.
function showPopup(msg, li, button, node) {
  const reopen = popup && popup.button === button;
  closePopup({ focus: false });
  if (reopen) return; // a second click on the button closes it
  li.classList.add('has-popup');
  button.after(node);
  button.setAttribute('aria-expanded', 'true');
  // Open upwards when there is more room above (near the composer).
  const scroller = li.closest('.messages, .thread-scroll');
  if (scroller) {
    const box = scroller.getBoundingClientRect();
    const at = button.getBoundingClientRect();
    node.classList.toggle('up', box.bottom - at.bottom < node.offsetHeight + 12 && at.top - box.top > box.bottom - at.bottom);
  }
  const items = [...node.querySelectorAll('button')];
  node.addEventListener('keydown', (e) => {
    const i = items.indexOf(document.activeElement);
    const step = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1 }[e.key];
    if (step) { e.preventDefault(); items[(i + step + items.length) % items.length].focus(); }
    else if (e.key === 'Home' || e.key === 'End') { e.preventDefault(); items[e.key === 'Home' ? 0 : items.length - 1].focus(); }
    else if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); closePopup(); }
    else if (e.key === 'Tab') closePopup({ focus: false });
  });
  popup = { msg, li, button, node };
  items[0].focus();
}

function closePopup({ focus = true } = {}) {
  if (!popup) return;
  const { li, button, node } = popup;
  popup = null;
  node.remove();
  li.classList.remove('has-popup');
  button.setAttribute('aria-expanded', 'false');
  if (focus && button.isConnected) button.focus();
}

function openMenu(msg, li, button) {
  const where = li.view.where;
  const menu = el('div', 'popup menu');
  menu.setAttribute('role', 'menu');
  menu.setAttribute('aria-label', 'Message actions');
  const item = (label, run, className = '') => {
    const b = el('button', `menu-item ${className}`.trim(), label);
    b.type = 'button';
    b.setAttribute('role', 'menuitem');
    // Focus goes back to the menu's button first: what the item opens returns it there.
    b.addEventListener('click', () => { closePopup(); run(); });
    menu.append(b);
  };
  item('Add reaction', () => openPicker(msg, li, button));
  item('Reply in thread', () => replyTo(msg, where));
  if (isMe(msg.author)) {
    item('Edit message', () => startEdit(msg, where));
    item('Delete message', () => confirmDelete(msg), 'menu-danger');
  }
  showPopup(msg, li, button, menu);
}

function openPicker(msg, li, button) {
  if (!button) return;
  const picker = el('div', 'popup picker');
  picker.setAttribute('role', 'group');
  picker.setAttribute('aria-label', 'Pick a reaction');
  for (const emoji of EMOJI) {
    const b = el('button', 'picker-emoji', emoji);
    b.type = 'button';
    const label = reactedByMe(msg, emoji) ? `Remove your ${emoji}` : `React with ${emoji}`;
    b.setAttribute('aria-label', label);
    b.title = label;
    b.setAttribute('aria-pressed', String(reactedByMe(msg, emoji)));
    b.addEventListener('click', () => { closePopup(); toggleReaction(msg, emoji); });
    picker.append(b);
  }
  showPopup(msg, li, button, picker);
}

// Outside the popup (and not on its button): close it.
document.addEventListener('pointerdown', (e) => {
  if (popup && !popup.node.contains(e.target) && !popup.button.contains(e.target)) closePopup({ focus: false });
});

/* ------------------------------------------------------------------ quotes */

// A reply's quote: to the replied-to message if it is on screen (briefly highlighted),
// else the thread panel, which has it.
function followQuote(msg) {
  const room = rooms.get(msg.room);
  const parent = room && room.byId.get(msg.replyTo);
  if (parent && room === current && parent.el.isConnected && !msg.tel?.contains(document.activeElement)) {
    parent.el.scrollIntoView({ block: 'center', behavior: 'smooth' });
    flash(parent.el);
  } else if (thread && thread.room === room && parent?.tel?.isConnected) {
    parent.tel.scrollIntoView({ block: 'center', behavior: 'smooth' });
    flash(parent.tel);
  } else {
    openThread(msg);
  }
}

function flash(li) {
  li.classList.remove('flash');
  void li.offsetWidth; // restart the animation
  li.classList.add('flash');
  li.addEventListener('animationend', () => li.classList.remove('flash'), { once: true });
}

/* ------------------------------------------------------------------ outbox */

// Keep indentation inside the message; drop blank lines around it.
const cleanBody = (text) => text.replace(/^\s*\n/, '').replace(/\s+$/, '');

function sendMessage() {
  const room = current;
  if (room && queueMessage(room, ui.input.value)) {
    ui.input.value = '';
    room.draft = '';
    markRead(room);
    renderHistoryState();
    scrollToBottom();
  }
}

// Puts a message of mine in the outbox and sends it. `replyTo`: the message it answers,
// `threadRoot`: that message's thread (known here so the panel can show it before the ack).
// Returns whether the text was taken.
function queueMessage(room, text, { replyTo = null, threadRoot = null } = {}) {
  const body = cleanBody(text);
  if (!room || !body.trim()) return false;
  const length = [...body].length;
  if (length > MAX_BODY) {
    showAlert(`A message can be at most ${MAX_BODY} characters; this one has ${length}.`);
    return false;
  }
  const p = pendingOf(room.name, {
    body, created_at: new Date().toISOString(), client_id: newClientId(), reply_to: replyTo, thread_root: threadRoot,
  });
  storeOutboxEntry(p);
  addPending(p);
  return true;
}

function pendingOf(roomName, e) {
  return {
    id: null, cursor: null, room: roomName, author: session.username, body: String(e.body),
    createdAt: e.created_at, clientId: e.client_id,
    state: e.state === 'failed' ? 'failed' : 'pending', error: e.error || '', el: null, tel: null, sentOn: 0,
    editedAt: null, reactions: new Map(), replyCount: 0, busy: '', editing: null,
    replyTo: typeof e.reply_to === 'string' ? e.reply_to : null,
    threadRoot: typeof e.thread_root === 'string' ? e.thread_root : null,
  };
}

function addPending(p) {
  renderMessage(p);
  p.el.classList.add('is-outbox');
  outbox.add(p); // and sends it, if it can go now
  if (current && p.room === current.name) ui.list.append(p.el);
  if (thread && p.room === thread.room.name && p.threadRoot === thread.rootId) renderThread({ stick: true });
}

function restoreOutbox() {
  for (const e of load(userKey('outbox')) || []) {
    if (!e || typeof e.client_id !== 'string' || outbox.has(e.client_id) || !rooms.has(e.room)) continue;
    addPending(pendingOf(e.room, e));
  }
}

// A message's frame. It goes once per socket, after the room's join (the server handles
// frames in order, so the send lands in a joined room), and again with the same client_id
// on a new socket, which the server never stores twice (client.js's Outbox).
function sendFrameOf(p) {
  const frame = { type: 'send', room: p.room, body: p.body, client_id: p.clientId };
  if (p.replyTo) frame.reply_to = p.replyTo;
  return frame;
}

// Sends what of the room waits: messages first, then actions, each in the order made.
function flushOutbox(room) {
  outbox.flush(room.name);
  actions.flush(room.name);
}

// The server has the message: the pending entry becomes the stored one.
function settle(p, m) {
  outbox.delete(p.clientId);
  forgetOutboxEntry(p.clientId);
  Object.assign(p, { id: m.id, cursor: m.cursor, createdAt: m.created_at || p.createdAt, state: 'sent', error: '' });
  if (typeof m.reply_to === 'string') p.replyTo = m.reply_to;
  if (typeof m.thread_root === 'string') p.threadRoot = m.thread_root;
  p.el.classList.remove('is-outbox');
  paintMessage(p);
  return p;
}

function dropPending(p) {
  outbox.delete(p.clientId);
  forgetOutboxEntry(p.clientId);
  if (p.el.contains(document.activeElement) || p.tel?.contains(document.activeElement)) ui.input.focus();
  p.el.remove();
  p.tel?.remove();
  if (current && p.room === current.name) renderHistoryState();
}

function retryPending(p) {
  p.state = 'pending';
  p.error = '';
  p.sentOn = 0;
  paintMessage(p);
  storeOutboxEntry(p);
  ui.input.focus();
  outbox.send(p);
}

function failPending(p, reason) {
  p.state = 'failed';
  p.error = reason;
  paintMessage(p);
  storeOutboxEntry(p);
  showAlert(`Your message to ${roomLabel(p.room)} was not sent: ${reason}`);
}

function onAck(f) {
  const action = actions.answer(f);
  if (action) { onActionAnswer({ ...action, frame: f }); return; }
  const p = outbox.answer(f)?.item;
  if (!p) return; // the `message` frame came first and settled it
  const room = rooms.get(p.room);
  const added = room && addMessage(room, {
    id: f.id, cursor: f.cursor, created_at: f.created_at,
    author: session.username, body: p.body, client_id: p.clientId,
    reply_to: p.replyTo, thread_root: p.threadRoot,
  }, { live: true });
  if (!added) dropPending(p); // already on screen, deleted meanwhile, or the room was left
}

/* ------------------------------------------------------------------ thread */

// Opens the panel of `msg`'s thread (its root's, for a reply). From "Reply" on a reply,
// the new message answers that reply (`reply_to`), in the same thread.
function replyTo(msg, where) {
  openThread(msg, { replyTo: msg.threadRoot ? msg.id : null });
  if (where === 'thread' || msg.threadRoot || msg.id === thread?.rootId) ui.threadInput.focus();
}

function openThread(msg, { replyTo: answer = null } = {}) {
  const room = rooms.get(msg.room);
  if (!room || !msg.id) return;
  const rootId = msg.threadRoot || msg.id;
  if (!thread || thread.rootId !== rootId || thread.room !== room) {
    closeThread({ focus: false });
    thread = {
      room, rootId, root: findMsg(room, rootId) || null, msgs: [], byId: new Map(),
      hasMore: false, loading: false, error: '', replyTo: null, draft: '',
    };
    for (const m of room.msgs) if (m.threadRoot === rootId) threadAdd(m, { render: false });
    loadThread();
  }
  thread.replyTo = answer && answer !== rootId ? answer : null;
  ui.thread.hidden = false;
  ui.chatView.classList.add('show-thread');
  renderThread();
  ui.threadScroll.scrollTop = ui.threadScroll.scrollHeight;
  ui.threadInput.focus();
}

function closeThread({ focus = true } = {}) {
  if (!thread) return;
  for (const m of [thread.root, ...thread.msgs, ...outbox.values()]) {
    if (!m || !m.tel) continue;
    if (m.editing === 'thread') closeEditor(m, { focus: false });
    m.tel.remove();
    m.tel = null;
  }
  if (popup && ui.thread.contains(popup.node)) closePopup({ focus: false });
  thread = null;
  ui.threadList.replaceChildren();
  ui.threadInput.value = '';
  ui.thread.hidden = true;
  ui.chatView.classList.remove('show-thread');
  if (focus) ui.input.focus();
}

// A page of the thread over HTTP: its root and replies, current state (edits, reactions).
async function loadThread(before) {
  const t = thread;
  if (!t || t.loading) return;
  t.loading = true;
  t.error = '';
  renderThread();
  const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (before) q.set('before', before);
  try {
    const data = await api('GET', `/messages/${encodeURIComponent(t.rootId)}/replies?${q}`);
    if (thread !== t) return;
    const fromBottom = ui.threadScroll.scrollHeight - ui.threadScroll.scrollTop;
    if (data.root && typeof data.root.id === 'string' && !deletedIds.has(data.root.id)) {
      t.root = findMsg(t.room, data.root.id) || messageOf(t.room, data.root);
    }
    for (const m of Array.isArray(data.messages) ? data.messages : []) {
      if (!m || typeof m.id !== 'string' || typeof m.cursor !== 'string' || deletedIds.has(m.id)) continue;
      threadAdd(findMsg(t.room, m.id) || messageOf(t.room, m), { render: false });
    }
    t.hasMore = !!data.has_more;
    t.loading = false;
    renderThread();
    ui.threadScroll.scrollTop = before ? ui.threadScroll.scrollHeight - fromBottom : ui.threadScroll.scrollHeight;
  } catch (err) {
    if (thread !== t) return;
    t.loading = false;
    t.error = err.status === 404 ? 'This thread is gone: its first message was deleted.' : `Could not load the thread (${err.message}).`;
    renderThread();
  }
}

function threadAdd(msg, { render = true } = {}) {
  const t = thread;
  if (t.byId.has(msg.id) || msg.id === t.rootId) return;
  t.byId.set(msg.id, msg);
  let lo = 0;
  let hi = t.msgs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (t.msgs[mid].cursor <= msg.cursor) lo = mid + 1; else hi = mid;
  }
  t.msgs.splice(lo, 0, msg);
  if (render) renderThread({ stick: true });
}

function threadRemove(msg) {
  const t = thread;
  if (msg.tel && msg.tel.contains(document.activeElement)) ui.threadInput.focus();
  if (msg === t.root) t.rootDeleted = true;
  if (t.byId.delete(msg.id)) t.msgs.splice(t.msgs.indexOf(msg), 1);
  msg.tel?.remove();
  msg.tel = null;
  renderThread();
}

// The panel from the thread's state; message nodes are kept, only their order is set here.
function renderThread({ stick = false } = {}) {
  const t = thread;
  if (!t) return;
  const atBottom = ui.threadScroll.scrollHeight - ui.threadScroll.scrollTop - ui.threadScroll.clientHeight < 80;
  ui.threadRoom.textContent = `in ${roomLabel(t.room.name)}`;
  const node = (m) => {
    if (!m.tel) {
      m.tel = buildNode(m, 'thread');
      if (m.state !== 'sent') m.tel.classList.add('is-outbox');
    } else paintNode(m, m.tel);
    return m.tel;
  };
  const items = [];
  if (t.root && !t.rootDeleted) items.push(node(t.root));
  else if (t.rootDeleted || (!t.loading && !t.root)) items.push(el('li', 'thread-gone', 'The first message of this thread was deleted.'));
  const n = t.root && !t.rootDeleted ? Math.max(t.root.replyCount, t.msgs.length) : t.msgs.length;
  items.push(el('li', 'thread-divider', n === 1 ? '1 reply' : `${n} replies`));
  for (const m of t.msgs) items.push(node(m));
  for (const p of outbox.values()) if (p.room === t.room.name && p.threadRoot === t.rootId) items.push(node(p));
  if (t.root && !t.rootDeleted) t.root.tel.classList.add('thread-root');
  ui.threadList.replaceChildren(...items);
  ui.threadOlder.hidden = !t.hasMore;
  ui.threadNote.textContent = t.error || (t.loading && !t.root ? 'Loading the thread…' : '');
  ui.threadNote.hidden = !ui.threadNote.textContent;
  const answering = t.replyTo && findMsg(t.room, t.replyTo);
  if (t.replyTo && !answering) t.replyTo = null;
  ui.threadReplying.hidden = !answering;
  if (answering) ui.threadReplyingText.textContent = `Replying to ${answering.author}: ${firstLine(answering.body)}`;
  ui.threadInput.placeholder = t.root ? `Reply to ${t.root.author}…` : 'Reply…';
  if (stick && atBottom) ui.threadScroll.scrollTop = ui.threadScroll.scrollHeight;
}

function sendReply() {
  const t = thread;
  if (!t) return;
  if (t.rootDeleted) { showAlert('This thread\u2019s first message was deleted; replies cannot be added.'); return; }
  const answer = t.replyTo || t.rootId;
  if (queueMessage(t.room, ui.threadInput.value, { replyTo: answer, threadRoot: t.rootId })) {
    ui.threadInput.value = '';
    t.replyTo = null;
    renderThread();
    ui.threadScroll.scrollTop = ui.threadScroll.scrollHeight;
    if (t.room === current) { markRead(t.room); renderHistoryState(); if (nearBottom()) scrollToBottom(); }
  }
}

/* --------------------------------------------------------- people, typing */

function renderMembers() {
  const users = [...current.members].sort((a, b) => (isMe(b) - isMe(a)) || a.localeCompare(b));
  ui.memberList.replaceChildren(...users.map((user) => {
    const li = el('li', 'member');
    li.dataset.user = user;
    const dot = el('span', 'presence-dot');
    dot.setAttribute('aria-hidden', 'true');
    li.append(dot, el('span', 'member-name', user));
    if (isMe(user)) li.append(el('span', 'member-you', '(you)'));
    else li.append(iconButton('chat', `Message ${user}`, () => openDm(user), 'member-dm'));
    return li;
  }));
  ui.membersCount.textContent = ui.membersToggleCount.textContent = String(users.length);
}

function showTyping(room, user) {
  clearTimeout(room.typing.get(user));
  room.typing.set(user, setTimeout(() => stopTyping(room, user), TYPING_SHOW_MS));
  if (room === current) renderTyping();
}

function stopTyping(room, user) {
  if (!room.typing.has(user)) return;
  clearTimeout(room.typing.get(user));
  room.typing.delete(user);
  if (room === current) renderTyping();
}

function renderTyping() {
  const u = [...current.typing.keys()];
  ui.typing.textContent =
    u.length === 0 ? '' :
    u.length === 1 ? `${u[0]} is typing…` :
    u.length === 2 ? `${u[0]} and ${u[1]} are typing…` :
    'Several people are typing…';
}

/* ------------------------------------------------------------------ socket */

const socketReady = () => socket.ws !== null && socket.ws.readyState === WebSocket.OPEN;

function sendFrame(frame) {
  if (socketReady()) socket.ws.send(JSON.stringify(frame));
}

function connect() {
  clearTimeout(socket.timer);
  socket.timer = null;
  if (!session || socket.ws) return;
  if (!navigator.onLine) { setStatus('offline'); return; }
  setStatus(socket.hasOpened ? 'reconnecting' : 'connecting');
  if (session.expires_at - Date.now() < 20000) {
    // The handshake would refuse a stale token (e.g. the morning after): refresh first.
    refreshSession().then(connect, () => { if (session) scheduleReconnect(); });
    return;
  }
  const gen = ++socket.gen;
  // The server joins the room named in the URL on its own (no `since`); its
  // `joined` answer is not ours, which joinsAwaited accounts for.
  const entry = current.name;
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws` +
    `?token=${encodeURIComponent(session.token)}&room=${encodeURIComponent(entry)}`;
  let ws;
  try { ws = new WebSocket(url); } catch { scheduleReconnect(); return; }
  socket.ws = ws;
  let opened = false;

  ws.addEventListener('open', () => {
    if (socket.ws !== ws) return;
    opened = true;
    socket.hasOpened = true;
    setStatus('connected');
    const auto = rooms.get(entry);
    if (auto) auto.expectServerJoin();
    for (const room of rooms.values()) {
      if (room.loaded) joinRoom(room);
      else loadRoom(room);
    }
  });
  ws.addEventListener('message', (e) => {
    if (socket.ws === ws && socket.gen === gen) handleFrame(e.data);
  });
  ws.addEventListener('close', (e) => {
    if (socket.ws !== ws) return; // replaced or closed on purpose
    socket.ws = null;
    socketDown();
    // 4001: the token expired first. A handshake that never opened may be a
    // refused token: let an authenticated request find out (and refresh).
    if (session) scheduleReconnect({ refreshFirst: e.code === 4001, probe: !opened });
  });
}

function socketDown() {
  for (const room of rooms.values()) {
    room.down();
    room.membersLive = false;
    for (const user of [...room.typing.keys()]) stopTyping(room, user);
    updateNav(room);
  }
}

// Closes the socket without the close handler planning a reconnect.
function dropSocket() {
  clearTimeout(socket.timer);
  socket.timer = null;
  const ws = socket.ws;
  if (!ws) return;
  socket.ws = null;
  try { ws.close(1000, 'bye'); } catch { /* already closing */ }
  socketDown();
}

function restartSocket() {
  dropSocket();
  socket.attempts = 0;
  connect();
}

// Backoff from 0.5 s doubling to 10 s, ±25 % so a restarted server is not
// hit by every client at once.
function scheduleReconnect({ refreshFirst = false, probe = false } = {}) {
  clearTimeout(socket.timer);
  if (!navigator.onLine) { setStatus('offline'); return; } // the `online` event reconnects
  setStatus('reconnecting');
  const delay = backoff(socket.attempts);
  socket.attempts++;
  socket.timer = setTimeout(async () => {
    socket.timer = null;
    const myEpoch = epoch;
    try {
      if (refreshFirst) await refreshSession();
      else if (probe) await api('GET', '/rooms');
      else await ensureFreshToken();
    } catch { /* server down or offline: the attempt below fails and backs off */ }
    if (myEpoch === epoch) connect();
  }, delay);
}

// Joins with `since` = the newest cursor we have (ZERO for an empty room), so
// the server replays whatever we missed; then sends what is waiting.
function joinRoom(room) {
  if (!socketReady() || !room.loaded) return;
  const join = room.join(room.name, socket.gen);
  if (!join) return;
  sendFrame(join);
  flushOutbox(room);
}

function handleFrame(raw) {
  let f;
  try { f = JSON.parse(raw); } catch { return; }
  if (!f || typeof f !== 'object') return;
  const room = typeof f.room === 'string' ? rooms.get(f.room) : undefined;
  // Every event of a room's log (messages, edits, deletes, reactions) moves its resume point.
  if (room) room.onEvent(f);
  switch (f.type) {
    case 'message': if (room) onMessage(room, f); break;
    case 'edited': if (room && typeof f.id === 'string') onEdited(room, f); break;
    case 'reaction': if (room && typeof f.id === 'string') onReaction(room, f); break;
    case 'ack': onAck(f); break;
    case 'joined': if (room) onJoined(room, f); break;
    case 'members':
      if (!room || !Array.isArray(f.users)) break;
      room.members = new Set(f.users.filter((u) => typeof u === 'string'));
      room.membersLive = true;
      onMembersChanged(room);
      break;
    case 'presence':
      if (!room || typeof f.user !== 'string') break;
      if (f.state === 'online') room.members.add(f.user);
      else { room.members.delete(f.user); stopTyping(room, f.user); }
      onMembersChanged(room);
      break;
    case 'typing':
      if (room && typeof f.user === 'string' && !isMe(f.user)) showTyping(room, f.user);
      break;
    case 'deleted': if (room && typeof f.id === 'string') removeMessage(room, f.id); break;
    case 'error': onError(f); break;
    default: break; // `left`, `authenticated`: nothing to do
  }
}

function onMessage(room, f) {
  const stick = room === current && nearBottom();
  const msg = addMessage(room, f, { live: true });
  if (!msg) return;
  stopTyping(room, msg.author);
  if (room !== current) {
    if (!isMe(msg.author)) { room.unread.add(msg.id); updateNav(room); }
    if (room.msgs.length > KEEP_AWAY * 1.5) trim(room, KEEP_AWAY);
    return;
  }
  renderHistoryState();
  if (isMe(msg.author)) { if (stick) scrollToBottom(); markRead(room); return; }
  if (pageVisible()) markRead(room);
  else { room.unread.add(msg.id); updateNav(room); }
  announce(`${msg.author}: ${msg.body}`);
  if (stick) scrollToBottom();
  else ui.jump.hidden = false;
}

function onJoined(room, f) {
  // Ours: everything up to its cursor has been replayed to us.
  if (room.onJoined(f, socket.gen)) socket.attempts = 0;
}

function onMembersChanged(room) {
  updateNav(room);
  if (room === current) renderMembers();
}

function onError(f) {
  const action = actions.answer(f);
  if (action) { onActionAnswer({ ...action, frame: f }); return; }
  const answer = outbox.answer(f);
  if (answer) {
    // Retryable: nothing was stored, and the outbox sends it again (same client_id) shortly,
    // or on the next socket; the message says why it waits. Otherwise it failed.
    if (answer.retry) { answer.item.error = answer.reason; paintMessage(answer.item); }
    else failPending(answer.item, answer.reason);
    return;
  }
  switch (f.code) {
    case 'unavailable':
      // A join could not read history: resume on a fresh connection shortly.
      showAlert('The server is having trouble. Reconnecting…');
      dropSocket();
      scheduleReconnect();
      break;
    case 'token_expired':
    case 'unauthorized':
      refreshSession().catch(() => {});
      break;
    default:
      showAlert(f.message || 'Something went wrong.');
  }
}

/* --------------------------------------------------------------- lifecycle */

function addRoom(name) {
  let room = rooms.get(name);
  if (room) return room;
  room = new Room(name);
  rooms.set(name, room);
  if (prefs.dismissed[name]) { delete prefs.dismissed[name]; savePrefs(); }
  saveRoomNames();
  renderNav();
  return room;
}

function openRoom(room) {
  if (room === current) return;
  const prev = current;
  if (prev) {
    prev.draft = ui.input.value;
    trim(prev, KEEP_AWAY);
  }
  current = room;
  if (thread && thread.room !== room) closeThread({ focus: false });
  closePopup({ focus: false });
  prefs.current = room.name;
  savePrefs();
  ui.input.value = room.draft;
  if (prev) updateNav(prev);
  renderCurrent();
  markRead(room);
  updateNav(room);
  // On phones the rooms are a row of chips that scrolls sideways.
  room.nav.link.scrollIntoView({ block: 'nearest', inline: 'nearest' });
}

function openDm(user) {
  openRoom(addRoom(dmName(session.username, user)));
  loadRoom(current);
  setDrawer(null);
  ui.input.focus();
}

function leaveRoom(room, { focus = true } = {}) {
  if (rooms.size < 2) return;
  if (isDm(room.name)) {
    // Closed on purpose: only a newer message brings it back (see pollRooms).
    const newest = room.msgs.length ? room.msgs[room.msgs.length - 1].createdAt : null;
    prefs.dismissed[room.name] = [room.lastMessageAt, newest].filter(Boolean).sort().pop() || new Date(0).toISOString();
    savePrefs();
  }
  for (const p of [...outbox.values()]) if (p.room === room.name) dropPending(p);
  for (const a of [...actions.values()]) if (a.room === room.name) actions.delete(a.clientId);
  if (thread && thread.room === room) closeThread({ focus: false });
  for (const t of room.typing.values()) clearTimeout(t);
  sendFrame({ type: 'leave', room: room.name });
  const names = [...rooms.keys()];
  const neighbour = names[names.indexOf(room.name) + 1] || names[names.indexOf(room.name) - 1];
  rooms.delete(room.name);
  saveRoomNames();
  if (current === room) openRoom(rooms.get(neighbour));
  renderNav();
  if (focus) current.nav.link.focus();
}

function fetchPage(name, before) {
  const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (before) q.set('before', before);
  return api('GET', `/rooms/${encodeURIComponent(name)}/messages?${q}`).then((data) => ({
    messages: Array.isArray(data.messages) ? data.messages : [],
    hasMore: !!data.has_more,
  }));
}

// The newest history page over HTTP, then the socket join with `since` its
// newest cursor: no gap between the two, and duplicates are dropped by id.
function loadRoom(room) {
  if (room.loaded || room.loading) return;
  const myEpoch = epoch;
  room.loading = fetchPage(room.name).then((page) => {
    if (myEpoch !== epoch || rooms.get(room.name) !== room) return;
    const stick = room === current && nearBottom();
    for (const m of page.messages) addMessage(room, m);
    room.hasMore = page.hasMore;
    room.loadedUpTo(room.newest);
    room.loaded = true;
    room.loadError = '';
    countUnread(room, page.messages);
    if (room === current) {
      renderHistoryState();
      if (stick) scrollToBottom();
    }
    joinRoom(room);
  }, (err) => {
    if (myEpoch !== epoch || rooms.get(room.name) !== room) return;
    if ([400, 403, 404].includes(err.status)) {
      // The room cannot exist for us: take it out of the sidebar.
      showAlert(`Could not open ${roomLabel(room.name)}: ${err.message}`);
      leaveRoom(room, { focus: false });
      return;
    }
    room.loadError = err.message; // retried by the next poll
    if (room === current) renderHistoryState();
  }).finally(() => { room.loading = null; });
}

async function loadOlder() {
  const room = current;
  if (!room.loaded || !room.hasMore || room.loadingOlder || !room.msgs.length) return;
  room.loadingOlder = true;
  renderHistoryState();
  try {
    const page = await fetchPage(room.name, room.msgs[0].cursor);
    if (rooms.get(room.name) !== room) return;
    // Keep what is on screen in place while older messages go on top.
    const fromBottom = ui.messages.scrollHeight - ui.messages.scrollTop;
    for (const m of page.messages) addMessage(room, m);
    room.hasMore = page.hasMore;
    if (room === current) {
      ui.messages.scrollTop = ui.messages.scrollHeight - fromBottom;
      lastScrollTop = ui.messages.scrollTop;
    }
  } catch (err) {
    if (room === current) showAlert(`Could not load older messages: ${err.message}`);
  } finally {
    room.loadingOlder = false;
    if (room === current) renderHistoryState();
  }
}

// GET /rooms: online counts, public rooms to suggest, and DMs someone else
// started with me (they join the sidebar as unread).
async function pollRooms() {
  const myEpoch = epoch;
  let data;
  try { data = await api('GET', '/rooms'); } catch { return; }
  if (myEpoch !== epoch) return;
  const others = [];
  for (const r of Array.isArray(data.rooms) ? data.rooms : []) {
    if (!r || typeof r.room !== 'string') continue;
    let room = rooms.get(r.room);
    if (!room && isDm(r.room) && r.last_message_at && validStoredRoom(r.room) &&
        (!prefs.dismissed[r.room] || r.last_message_at > prefs.dismissed[r.room])) {
      room = addRoom(r.room);
    }
    if (room) {
      room.polledOnline = Number(r.online) || 0;
      room.lastMessageAt = r.last_message_at || null;
      updateNav(room);
    } else if (!isDm(r.room) && ROOM_RE.test(r.room)) {
      others.push(r);
    }
  }
  renderBrowse(others);
  for (const room of rooms.values()) loadRoom(room);
}

// Every POLL_MS. A tick far too late means the machine slept: the socket
// may be dead without knowing it, so resume on a fresh one.
function tick() {
  const now = Date.now();
  const slept = now - lastTick > SLEEP_GAP_MS;
  lastTick = now;
  if (slept) ensureFreshToken().then(restartSocket, () => {});
  pollRooms();
}

/* -------------------------------------------------------------- drawers */

// On narrow screens the sidebar and the people list are drawers. Returns
// whether one was open.
function setDrawer(which) {
  const wasOpen = ui.chatView.classList.contains('show-sidebar') || ui.chatView.classList.contains('show-members');
  ui.chatView.classList.toggle('show-sidebar', which === 'sidebar');
  ui.chatView.classList.toggle('show-members', which === 'members');
  ui.sidebarToggle.setAttribute('aria-expanded', String(which === 'sidebar'));
  ui.membersToggle.setAttribute('aria-expanded', String(which === 'members'));
  ui.scrim.hidden = !which;
  return wasOpen;
}

function openDrawer(which) {
  setDrawer(which);
  const target = which === 'sidebar'
    ? (current && current.nav ? current.nav.link : ui.roomInput)
    : (ui.memberList.querySelector('button') || ui.membersClose);
  target.focus();
}

function closeDrawer() {
  const toggle = ui.chatView.classList.contains('show-members') ? ui.membersToggle : ui.sidebarToggle;
  if (setDrawer(null)) toggle.focus();
}

/* ------------------------------------------------------------------ wiring */

ui.authForm.addEventListener('submit', (e) => {
  e.preventDefault();
  submitAuth('login');
});
ui.registerBtn.addEventListener('click', () => submitAuth('register'));
ui.logoutBtn.addEventListener('click', logOut);

ui.roomForm.addEventListener('submit', (e) => {
  e.preventDefault();
  let name;
  try { name = parseRoomInput(ui.roomInput.value); } catch (err) {
    showAlert(err.message);
    ui.roomInput.focus();
    return;
  }
  openRoom(addRoom(name));
  loadRoom(current);
  ui.roomInput.value = '';
  setDrawer(null);
  ui.input.focus();
});

ui.loadOlder.addEventListener('click', loadOlder);
ui.jump.addEventListener('click', () => { scrollToBottom(); ui.input.focus(); });
ui.messages.addEventListener('scroll', () => {
  const top = ui.messages.scrollTop;
  // Only a scroll upwards near the top fetches more, not our own jumps to the bottom.
  if (top < lastScrollTop && top < 150) loadOlder();
  lastScrollTop = top;
  if (nearBottom()) ui.jump.hidden = true;
}, { passive: true });

ui.composer.addEventListener('submit', (e) => {
  e.preventDefault();
  sendMessage();
  ui.input.focus();
});
// Enter sends, Shift+Enter is a new line; never interrupt an IME composition.
// Up in an empty composer edits my last message there.
ui.input.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    sendMessage();
  } else if (e.key === 'ArrowUp' && !ui.input.value && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey && current) {
    const mine = lastOwn(current.msgs);
    if (mine) { e.preventDefault(); startEdit(mine, 'main'); }
  }
});

ui.threadComposer.addEventListener('submit', (e) => {
  e.preventDefault();
  sendReply();
  ui.threadInput.focus();
});
ui.threadInput.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    sendReply();
  } else if (e.key === 'ArrowUp' && !ui.threadInput.value && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey && thread) {
    const mine = lastOwn(thread.msgs) || (thread.root && lastOwn([thread.root]));
    if (mine) { e.preventDefault(); startEdit(mine, 'thread'); }
  }
});
ui.threadClose.append(icon('close'));
ui.threadClose.addEventListener('click', () => closeThread());
ui.threadOlder.addEventListener('click', () => { if (thread && thread.msgs.length) loadThread(thread.msgs[0].cursor); });
ui.threadReplyingCancel.addEventListener('click', () => {
  if (thread) { thread.replyTo = null; renderThread(); }
  ui.threadInput.focus();
});
// Tell the room we are typing, at most every TYPING_SEND_MS.
ui.input.addEventListener('input', () => {
  const room = current;
  const now = Date.now();
  if (!room || !ui.input.value.trim() || room.joinSentOn !== socket.gen || !socketReady()) return;
  if (now - room.typingSentAt < TYPING_SEND_MS) return;
  room.typingSentAt = now;
  sendFrame({ type: 'typing', room: room.name });
});

ui.sidebarToggle.prepend(icon('menu'));
ui.sidebarClose.append(icon('close'));
ui.membersClose.append(icon('close'));
ui.sidebarToggle.addEventListener('click', () => openDrawer('sidebar'));
ui.membersToggle.addEventListener('click', () => openDrawer('members'));
ui.sidebarClose.addEventListener('click', closeDrawer);
ui.membersClose.addEventListener('click', closeDrawer);
ui.scrim.addEventListener('click', closeDrawer);

document.addEventListener('keydown', (e) => {
  if (ui.chatView.hidden) return;
  // Escape closes the innermost thing: a drawer, else the thread panel.
  if (e.key === 'Escape' && !e.defaultPrevented && !ui.confirm.open) {
    if (ui.chatView.classList.contains('show-sidebar') || ui.chatView.classList.contains('show-members')) closeDrawer();
    else if (thread) closeThread();
  }
  // Alt+↑/↓ moves between rooms in sidebar order.
  if (e.altKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown') && current) {
    const order = [...ui.sidebar.querySelectorAll('[data-room]')].map((b) => rooms.get(b.dataset.room));
    const next = order[order.indexOf(current) + (e.key === 'ArrowUp' ? -1 : 1)];
    if (next) { e.preventDefault(); openRoom(next); }
  }
});

// Tabs of one user share its session: follow their refreshes and logout.
// Other users' sessions only change whom the login form offers.
window.addEventListener('storage', (e) => {
  if (e.key !== null && !e.key.startsWith(SESSION_PREFIX)) return; // null: storage cleared
  if (!session) { renderAccounts(); return; }
  if (e.key !== null && e.key !== sessionKey(session.username)) return;
  const s = readSession(session.username);
  if (!s) {
    endSession('', 'You were logged out in another tab.', { keepStored: true });
  } else if (s.refresh_token !== session.refresh_token) {
    session = s;
    useToken();
  }
});

document.addEventListener('visibilitychange', () => {
  if (!session || !pageVisible()) return;
  ensureFreshToken().catch(() => {});
  if (current) markRead(current);
});
// The browser knows about the network before the socket does.
window.addEventListener('offline', () => {
  if (!session) return;
  dropSocket();
  setStatus('offline');
});
window.addEventListener('online', () => {
  if (!session || socket.ws) return;
  socket.attempts = 0;
  connect();
});

/* -------------------------------------------------------------------- boot */

(async function boot() {
  try {
    const res = await fetch('/config.json', { cache: 'no-store' });
    const cfg = await res.json();
    if (cfg && typeof cfg.auth_url === 'string') config.authBase = cfg.auth_url.replace(/\/+$/, '');
  } catch { /* no config: the auth API is on this origin */ }
  migrateLegacySession();
  const user = tabUser();
  session = user ? readSession(user) : null;
  if (session) {
    epoch++;
    startChat();
  } else {
    showAuth();
  }
}());
