/*
 * banter — the web chat.
 *
 * Plain JS, no build step. The page runs under a strict CSP, so everything is
 * wired with addEventListener, and all user-provided text reaches the page
 * through textContent only (never innerHTML).
 *
 * Outline:
 *   storage   — per-user state (current room, closed DMs, outbox) in localStorage, shared by
 *               that user's tabs, beside the sessions session.js stores.
 *   http      — the JSON envelope, through session.js; auth calls go to config.auth_url.
 *   session   — log in/out, and what the page does when the session ends; session.js refreshes
 *               it before expiry (one tab per user at a time) and a 401 once. A deactivated
 *               account (socket closed 4003, or 403 `account_disabled`) is signed out.
 *   sign-in   — who may register (GET /register: open, invite, closed), an invite link
 *               (/join/<code>), and the admin link for admins (GET /me).
 *   rooms     — Room objects: messages sorted by cursor, members, typing, unread.
 *   render    — sidebar, message list, presence, typing, status.
 *   unread    — the server's unread/mention counts and read positions, kept exact live.
 *   text      — message bodies as DOM nodes: links, `code`, ```blocks```, @mentions; never HTML.
 *   actions   — edit, delete, react: frames with a client_id, re-sent until answered.
 *   outbox    — own messages until the server has them; re-sent with the same client_id.
 *   thread    — the side panel of one thread: its first message, the replies, a composer.
 *   people    — the member list, presence, typing; inviting, removing, leaving.
 *   socket    — ONE WebSocket joined to every sidebar room; resume with `since`. It also
 *               carries the user's stream (`room`, `read`, `mention`) whatever it joined.
 *   lifecycle — the sidebar (GET /rooms once, then the user stream), opening rooms, history.
 *   dialogs   — create a room, browse public rooms, edit a topic.
 *
 * What keeps the conversation whole over a bad network (resume cursors, the outbox of
 * frames waiting for an answer, re-sends, backoff) is client.js, which has no DOM. The
 * session itself (where it is stored, its refresh under a lock, following the user's other
 * tabs) is session.js, which the admin page shares.
 */
import { Outbox, RoomLog, backoff, maxCursor } from './client.js';
import {
  ApiError, TabSession, load, migrateLegacySession, readSession, setTabUser, store, storedSessions, tabUser,
} from './session.js';

const PAGE_SIZE = 50;
const WAKE_CHECK_MS = 10000;           // how often to look whether the machine slept
const READ_EVERY_MS = 1000;            // at most one `read` per room this often
const COUNT_CAP = 100;                 // the server's counts stop here ("99+")
const TYPING_SEND_MS = 2000;
const TYPING_SHOW_MS = 3000;
const GROUP_GAP_MS = 5 * 60 * 1000;   // same author within this: one visual group
const KEEP_AWAY = 200;                // messages kept in memory for rooms not on screen
const SLEEP_GAP_MS = 3 * 60 * 1000;   // a timer this late means the machine slept
const MAX_BODY = 4000;
const MAX_ATTACHMENTS = 10;           // per message, as the server allows
const EMOJI = ['👍', '❤️', '😂', '🎉', '😮', '😢', '👀', '✅'];
const QUOTE_CHARS = 90;               // of a replied-to message's first line
const ROOM_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const USER_RE = /^[A-Za-z0-9_.-]{3,32}$/;
const DEACTIVATED = 'Your account has been deactivated. Ask an admin to reactivate it.';
const WS_DEACTIVATED = 4003;                   // the server's close code for a deactivated account

const $ = (id) => document.getElementById(id);
const ui = {
  authView: $('auth-view'), authForm: $('auth-form'), authAlert: $('auth-alert'),
  authInfo: $('auth-info'), username: $('username'), password: $('password'),
  loginBtn: $('login-btn'), registerBtn: $('register-btn'),
  authTitle: $('auth-title'), authInvite: $('auth-invite'), authActions: $('auth-actions'),
  authNote: $('auth-note'), passwordHint: $('password-hint'), adminLink: $('admin-link'),
  archivedNote: $('archived-note'),
  accounts: $('accounts'), accountList: $('account-list'),
  chatView: $('chat-view'), sidebar: $('sidebar'), sidebarToggle: $('sidebar-toggle'),
  sidebarClose: $('sidebar-close'), menuDot: $('menu-dot'), meName: $('me-name'),
  logoutBtn: $('logout-btn'), roomForm: $('room-form'), roomInput: $('room-input'),
  channelList: $('channel-list'), dmList: $('dm-list'), dmEmpty: $('dm-empty'), roomsNote: $('rooms-note'),
  createOpen: $('create-open'), browseOpen: $('browse-open'),
  roomName: $('room-name'), roomLock: $('room-lock'), roomTopic: $('room-topic'), topicEdit: $('topic-edit'),
  conn: $('conn-status'), chatAlert: $('chat-alert'),
  messages: $('messages'), loadOlder: $('load-older'), historyNote: $('history-note'),
  list: $('message-list'), jump: $('jump-latest'), typing: $('typing'), announcer: $('announcer'),
  composer: $('composer'), input: $('message-input'),
  attachTray: $('attach-tray'), attachInput: $('attach-input'), attachButton: $('attach-button'),
  viewer: $('viewer'), viewerTitle: $('viewer-title'), viewerImage: $('viewer-image'),
  viewerDownload: $('viewer-download'), viewerClose: $('viewer-close'),
  members: $('members'), membersToggle: $('members-toggle'), membersClose: $('members-close'),
  membersCount: $('members-count'), membersToggleCount: $('members-toggle-count'),
  memberList: $('member-list'), membersOnline: $('members-online'), scrim: $('scrim'),
  inviteForm: $('invite-form'), inviteInput: $('invite-input'), inviteAlert: $('invite-alert'),
  leaveRoom: $('leave-room'),
  thread: $('thread'), threadRoom: $('thread-room'), threadClose: $('thread-close'),
  threadScroll: $('thread-scroll'), threadNote: $('thread-note'), threadOlder: $('thread-older'),
  threadList: $('thread-list'), threadComposer: $('thread-composer'), threadInput: $('thread-input'),
  threadReplying: $('thread-replying'), threadReplyingText: $('thread-replying-text'),
  threadReplyingCancel: $('thread-replying-cancel'),
  confirm: $('confirm'), confirmQuote: $('confirm-quote'), confirmOk: $('confirm-ok'),
  confirmTitle: $('confirm-title'), confirmText: $('confirm-text'),
  createDialog: $('create-dialog'), createForm: $('create-form'), createAlert: $('create-alert'),
  createName: $('create-name'), createTopic: $('create-topic'), createCancel: $('create-cancel'),
  createSubmit: $('create-submit'),
  browseDialog: $('browse-dialog'), browseList: $('browse-list'), browseNote: $('browse-note'),
  browseClose: $('browse-close'),
  topicDialog: $('topic-dialog'), topicForm: $('topic-form'), topicAlert: $('topic-alert'),
  topicInput: $('topic-input'), topicRoom: $('topic-room'), topicCancel: $('topic-cancel'), topicSave: $('topic-save'),
  searchOpen: $('search-open'), searchDialog: $('search-dialog'), searchClose: $('search-close'),
  searchForm: $('search-form'), searchInput: $('search-input'), searchScope: $('search-scope'),
  searchScopeRoom: $('search-scope-room'), searchNote: $('search-note'), searchResults: $('search-results'),
  searchMore: $('search-more'),
  notifyOpen: $('notify-open'), notifyDialog: $('notify-dialog'), notifyForm: $('notify-form'),
  notifyClose: $('notify-close'), notifyStatus: $('notify-status'), notifyPush: $('notify-push'),
  notifyPushNote: $('notify-push-note'), notifyDesktop: $('notify-desktop'), notifySound: $('notify-sound'),
  muteToggle: $('mute-toggle'),
};

/* ------------------------------------------------------------------ state */

// This tab's session (auth.session: {token, refresh_token, username, expires_at}, or null)
// and its generation (auth.epoch: bumped when a session starts or ends; late results of an
// old one are dropped), kept by session.js, which tells the page here.
const auth = new TabSession({
  // A new access token: renew the open socket's authentication so the server does not
  // close it at the old token's expiry.
  onToken: (s) => sendFrame({ type: 'auth', token: s.token }),
  onSignedOut: (reason) => sessionOver(reason),
  onStored: () => renderAccounts(),
});
let wakeTimer = null;
let lastTick = 0;
let alertTimer = null;
// Who may register (GET /api/v1/register; an older server does not say: open).
let registration = 'open';
// The code of an invite link (/join/<code>) until it is used or left.
let invite = inviteFromPath();

const rooms = new Map();          // name → Room, in sidebar order
let current = null;               // the Room on screen
let prefs = null;                 // {current, dismissed: {dm room: last_message_at when closed}}
// The sidebar is the user's memberships: GET /rooms once (and after each reconnect), then the
// user stream's `room` frames. `streamSeq` counts those frames, so a list fetched before one
// of them does not undo it.
const roomList = { syncing: null, again: false, fresh: false, streamSeq: 0 };
// client_ids of our `read` frames: their acks and errors are not about messages.
const readFrames = new Set();
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
    // A search result's context, loaded older than the newest page with messages between
    // them not loaded: {above: newest cursor of the context, below: oldest of the newest
    // page, el: the button that loads what is between, loading}. Else null.
    this.gap = null;
    this.members = new Set(); // who is online (presence), from the socket
    this.membersLive = false; // members came over the current socket (else use the listed count)
    this.polledOnline = 0;    // `online` of the room's entry in GET /rooms
    this.roster = null;       // every member: username → role ('owner' | 'member'), once fetched
    this.rosterLoading = null;
    this.bots = new Set();    // members that are bots, as the roster said
    this.rosterAgain = false; // fetch it once more when the one in flight is done
    this.rosterHeard = [];    // `member` frames heard while it was in flight: applied on top
    this.lastMessageAt = null;
    this.typing = new Map();  // user → timer that hides "is typing"
    this.typingSentAt = 0;
    // What the room's entry says (GET /rooms, `room` frames, POST and PATCH answers).
    this.kind = isDm(name) ? 'dm' : 'public';
    this.topic = '';
    this.owner = null;
    this.role = 'member';
    this.member = false;      // a membership the server told us of (else opened here, not yet joined)
    this.streamSeq = 0;       // roomList.streamSeq of the last `room` frame about it
    this.hidden = false;      // a DM closed here: out of the sidebar until a newer message
    this.arrivedLive = false; // a DM new to me just now: its first page is news (notified)
    // Muted (my own setting, on every device): only mentions notify, push or here, and its
    // unread count is quiet (not in the title). From its entry and `muted` frames.
    this.muted = false;
    this.mutedSeq = 0;        // roomList.streamSeq when a `muted` frame or my PUT set it
    this.muteBusy = false;    // my PUT in flight
    // Archived by an admin: read-only (its entry, `archived` frames); no composer then.
    this.archived = false;
    // Unread: the read position, and the counts shown. While the loaded messages reach back
    // to the read position they are counted here (exact); before, the server's numbers are
    // kept and moved by live events (see `recount`).
    this.readCursor = null;   // newest read position known (mine here, or any device's)
    this.readAcked = null;    // what the server said it has (its entry, `read` frames)
    this.readSent = null;     // that, or what we sent it on this socket
    this.readSentAt = 0;
    this.readTimer = null;
    this.unread = 0;
    this.mentions = 0;
    this.mentionIds = new Map(); // id → cursor of messages the server said mention me
    // Small lines of the room's log in the timeline (joins, topics): {cursor, el}, by cursor.
    this.events = [];
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

const isMe = (user) => !!auth.session && String(user).toLowerCase() === auth.session.username.toLowerCase();
// Whether the conversation on screen is being seen: the tab is showing (not hidden behind
// another tab, nor minimised). A window in the background on another screen still counts.
const pageVisible = () => document.visibilityState === 'visible';
// The server's counts stop at 100, which means "100 or more".
const countText = (n) => (n > 99 ? '99+' : String(n));

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
  return a === auth.session.username.toLowerCase() ? b : a;
}

const roomLabel = (name) => (isDm(name) ? `@ ${dmPeer(name)}` : `# ${name}`);
const isPrivate = (room) => room.kind === 'private';
const isOwner = (room) => room.role === 'owner' || (!!room.owner && isMe(room.owner));
// In the sidebar and header a private room shows a lock instead of the '#'.
const shortLabel = (room) => (isPrivate(room) ? room.name : roomLabel(room.name));

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
    return dmName(auth.session.username, peer);
  }
  if (!ROOM_RE.test(input)) throw new Error('Room names are 1 to 64 letters, digits, dots, dashes or underscores.');
  return input;
}

function validStoredRoom(name) {
  try { return typeof name === 'string' && parseRoomInput(name) === name; } catch { return false; }
}

/* ---------------------------------------------------------------- storage */

// The stored sessions themselves are session.js's; these are this user's own state.
const userKey = (what) => `banter.${what}.${auth.session.username}`;

// Older versions kept the sidebar's rooms and read marks here; the server has both now.
function loadPrefs() {
  store(userKey('rooms'), null);
  const p = load(userKey('view')) || {};
  return {
    current: typeof p.current === 'string' ? p.current : null,
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
    reply_to: p.replyTo, thread_root: p.threadRoot, attachments: p.attachments,
  });
  store(userKey('outbox'), list);
}

function forgetOutboxEntry(clientId) {
  const list = (load(userKey('outbox')) || []).filter((e) => e.client_id !== clientId);
  store(userKey('outbox'), list.length ? list : null);
}

/* -------------------------------------------------------------------- http */

// The JSON API (ApiError, the envelope, 401 → refresh once) is session.js's.
const api = (method, path, opts) => auth.api(method, path, opts);
const authApi = (method, path, opts) => auth.authApi(method, path, opts);

/* ---------------------------------------------------------------- session */

// The session is over (see TabSession): what the sign-in page says.
function sessionOver(reason) {
  switch (reason) {
    case 'refused': endSession('Your session has ended. Please log in again.'); break;
    case 'expired': endSession('Your session has expired. Please log in again.'); break;
    case 'deactivated': accountDisabled(); break;
    case 'deactivated-elsewhere': endSession(DEACTIVATED, '', { keepStored: true }); break;
    default: endSession('', 'You were logged out in another tab.', { keepStored: true });
  }
}

async function logIn(username, password) {
  const data = await authApi('POST', '/login', { body: { username, password }, auth: false });
  auth.useLogin(data, username);
  startChat();
}

// The account was deactivated (its socket closed with 4003, or a call answered 403
// `account_disabled`; auth.deactivated() has told its other tabs): this session ends like a
// logout (its tokens and unsent messages go, and the browser's pushes if they were its), and
// the sign-in page says why.
function accountDisabled() {
  if (!auth.session) return;
  const push = pushIsMine();
  store(userKey('outbox'), null);
  endSession(DEACTIVATED);
  // Signed out now, so this only drops the browser's subscription (the server has no token).
  if (push) disablePush().catch(() => {});
}

async function logOut() {
  const outboxKey = userKey('outbox');
  ui.logoutBtn.disabled = true;
  // This browser's pushes are this person's: the next one to use it must not get them.
  if (pushIsMine()) await disablePush().catch(() => {});
  if (!auth.session) { // the session ended meanwhile (it could not be refreshed)
    store(outboxKey, null);
    ui.logoutBtn.disabled = false;
    return;
  }
  try {
    await authApi('POST', '/logout', { body: { refresh_token: auth.session.refresh_token } });
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
  clearInterval(wakeTimer);
  dropSocket();
  auth.end({ keepStored });
  for (const room of rooms.values()) for (const t of room.typing.values()) clearTimeout(t);
  for (const room of rooms.values()) { clearTimeout(room.release); clearTimeout(room.readTimer); }
  rooms.clear();
  Object.assign(roomList, { syncing: null, again: false, fresh: false, streamSeq: 0 });
  readFrames.clear();
  // The files of one person's session are not the next one's.
  for (const got of thumbUrls.values()) got.then((url) => URL.revokeObjectURL(url), () => {});
  thumbUrls.clear();
  for (const item of tray) if (item.xhr && !item.data && !item.error) item.xhr.abort();
  clearTray();
  closePopup({ focus: false });
  closeThread({ focus: false });
  for (const d of [ui.confirm, ui.createDialog, ui.browseDialog, ui.topicDialog, ui.searchDialog, ui.notifyDialog]) if (d.open) d.close();
  resetNotify();
  // One person's searches are not shown to the next.
  clearTimeout(search.timer);
  Object.assign(search, { seq: search.seq + 1, params: null, before: null });
  ui.searchInput.value = '';
  ui.searchResults.replaceChildren();
  ui.searchNote.textContent = '';
  ui.searchMore.hidden = true;
  outbox.clear();
  actions.clear();
  deletedIds.clear();
  current = null;
  socket.hasOpened = false;
  socket.attempts = 0;
  ui.list.replaceChildren();
  ui.memberList.replaceChildren();
  ui.adminLink.hidden = true;
  setDrawer(null);
  showAuth(error, info);
  fetchRegistration(); // it may have changed since
}

/* ------------------------------------------------------------------ views */

// The login form is this tab belonging to no one. It never signs in by
// itself: sessions stored by other tabs are offered as buttons instead.
function showAuth(error = '', info = '') {
  setTabUser(null);
  renderAccounts();
  renderRegistration();
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
      const body = { username, password };
      if (invite) body.invite = invite;
      await authApi('POST', '/register', { body, auth: false });
      ui.authInfo.textContent = 'Account created. Signing you in…';
      // The invite is spent: a reload is the plain app.
      if (invite) leaveInvite();
    }
    await logIn(username, password);
    ui.password.value = '';
    ui.authInfo.textContent = '';
  } catch (err) {
    ui.authAlert.textContent = err.code === 'account_disabled' ? DEACTIVATED : err.message;
    if (err.code === 'registration_closed') fetchRegistration();
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
  const s = readSession(user);
  if (!s) { renderAccounts(); return; } // logged out in another tab meanwhile
  auth.use(s);
  if (invite) leaveInvite();
  startChat();
}

/* ---------------------------------------------------------------- sign-in */

// `/join/<code>` is an invite link: the same page, which registers with the code.
function inviteFromPath() {
  const m = /^\/join\/([^/]+)\/?$/.exec(location.pathname);
  if (!m) return null;
  try { return decodeURIComponent(m[1]); } catch { return null; }
}

function leaveInvite() {
  invite = null;
  try { history.replaceState(history.state, '', '/'); } catch { /* the address stays */ }
  renderRegistration();
}

async function fetchRegistration() {
  try {
    const d = await authApi('GET', '/register', { auth: false });
    if (['open', 'invite', 'closed'].includes(d.registration)) registration = d.registration;
  } catch { /* an older server, or unreachable: as it was */ }
  renderRegistration();
}

// The sign-in form as registration allows: open, everyone; invite-only, only with an invite
// link (which then makes Register the main button, and Enter registers); closed, nobody.
function renderRegistration() {
  const can = registration === 'open' || (registration === 'invite' && !!invite);
  const invited = can && !!invite;
  ui.registerBtn.hidden = !can;
  ui.passwordHint.hidden = !can;
  ui.authInvite.hidden = !invite;
  ui.authTitle.textContent = invited ? 'Create your account' : can ? 'Sign in or create an account' : 'Sign in';
  let note = '';
  if (registration === 'closed') note = `Registration is closed; ask an admin for an invite.${invite ? ' This invite cannot be used until then.' : ''}`;
  else if (!can) note = 'New accounts need an invite link; ask an admin for one.';
  ui.authNote.textContent = note;
  ui.authNote.hidden = !note;
  ui.registerBtn.type = invited ? 'submit' : 'button';
  ui.loginBtn.type = invited ? 'button' : 'submit';
  ui.registerBtn.className = `btn ${invited ? 'btn-primary' : 'btn-secondary'}`;
  ui.loginBtn.className = `btn ${invited ? 'btn-secondary' : 'btn-primary'}`;
  ui.authActions.prepend(invited ? ui.registerBtn : ui.loginBtn);
  ui.password.autocomplete = invited ? 'new-password' : 'current-password';
}

// The admin link, for admins: asked at each start and reconnect (rights change).
async function checkAdmin() {
  const myEpoch = auth.epoch;
  try {
    const me = await authApi('GET', '/me');
    if (myEpoch === auth.epoch) ui.adminLink.hidden = !(me && me.admin === true);
  } catch { /* as it was */ }
}

// The sidebar comes from GET /rooms (the user's memberships); then the socket keeps it.
// The session is in use already (auth.use or auth.useLogin: the tab is its user's, its
// refresh planned).
async function startChat() {
  const myEpoch = auth.epoch;
  ui.authView.hidden = true;
  ui.chatView.hidden = false;
  ui.meName.textContent = auth.session.username;
  prefs = loadPrefs();
  renderNav();
  ui.roomName.textContent = '';
  ui.roomsNote.textContent = 'Loading your rooms…';
  ui.roomsNote.hidden = false;
  await syncRooms();
  if (myEpoch !== auth.epoch) return;
  ui.roomsNote.hidden = true;
  // Everyone is in `general` (the socket joins it); until the list says so, it is here anyway.
  if (!rooms.has('general')) addRoom('general');
  restoreOutbox();
  const visible = [...rooms.values()].filter((r) => !r.hidden);
  // A link to a room (a push's click opens /chat?room=…) opens it; else the last one.
  const linked = takeLinkedRoom();
  if (linked) openRoom(addRoom(linked));
  else openRoom(rooms.get(prefs.current) && !rooms.get(prefs.current).hidden ? rooms.get(prefs.current) : rooms.get('general') || visible[0]);
  // The room on screen first; the others fill in their counts.
  for (const room of [current, ...rooms.values()]) loadRoom(room);
  connect();
  lastTick = Date.now();
  wakeTimer = setInterval(tick, WAKE_CHECK_MS);
  ui.input.focus();
  resyncPush().catch(() => {});
  checkAdmin();
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
    if (!room.hidden) (isDm(room.name) ? dms : channels).push(room.nav.item);
    updateNav(room);
  }
  ui.channelList.replaceChildren(...channels);
  ui.dmList.replaceChildren(...dms);
  ui.dmEmpty.hidden = dms.length > 0;
  updateUnreadSummary();
}

function buildNavItem(room) {
  const item = el('li', 'room-item');
  const link = el('button', 'room-link');
  link.type = 'button';
  link.dataset.room = room.name;
  const lock = icon('lock');
  lock.classList.add('room-lock');
  const label = el('span', 'room-label');
  // A muted room's struck bell right after its name (which shortens first).
  const muted = icon('bell-off');
  muted.classList.add('room-muted');
  const name = el('span', 'room-link-name');
  name.append(label, muted);
  const mentions = el('span', 'mention-badge');
  const unread = el('span', 'unread', '0');
  const online = el('span', 'online', '0');
  link.append(lock, name, mentions, unread, online);
  link.addEventListener('click', () => {
    openRoom(room);
    if (setDrawer(null)) ui.input.focus();
  });
  item.append(link);
  let close = null;
  if (isDm(room.name)) {
    // A DM cannot be left; closing it hides it here until someone writes again.
    close = iconButton('close', `Close conversation with ${dmPeer(room.name)}`, () => hideDm(room), 'room-close');
    item.append(close);
  }
  room.nav = { item, link, lock, label, muted, mentions, unread, online, close };
}

function updateNav(room) {
  if (!room.nav) return;
  const { link, lock, label, muted, mentions, unread, online, close } = room.nav;
  const n = room.unread;
  const at = room.mentions;
  label.textContent = shortLabel(room);
  lock.hidden = !isPrivate(room);
  link.dataset.kind = room.kind;
  unread.textContent = countText(n);
  unread.hidden = n === 0;
  mentions.textContent = `@${countText(at)}`;
  mentions.hidden = at === 0;
  online.textContent = String(room.online);
  // Muted: dimmed, with a bell struck through; its unread count quiet, mentions as ever.
  muted.hidden = !room.muted;
  link.classList.toggle('is-muted', room.muted);
  link.classList.toggle('has-unread', n > 0 && (!room.muted || at > 0));
  link.title = room.muted ? `${shortLabel(room)} (muted)` : '';
  if (room === current) link.setAttribute('aria-current', 'true');
  else link.removeAttribute('aria-current');
  const spoken = isDm(room.name) ? `Direct message with ${dmPeer(room.name)}` : `${room.name}${isPrivate(room) ? ' (private)' : ''}`;
  const counts = `${n ? `, ${countText(n)} unread` : ''}${at ? `, ${countText(at)} mentioning you` : ''}`;
  link.setAttribute('aria-label', `${spoken}${room.muted ? ', muted' : ''}${counts}, ${room.online} online`);
  if (close) close.hidden = !current || (room === current && visibleRooms().length < 2);
  updateUnreadSummary();
}

const visibleRooms = () => [...rooms.values()].filter((r) => !r.hidden);

// The tab's title and the phone's menu dot: unread over every room in the sidebar (a muted
// room only with its mentions, as Slack does). While the tab is hidden and messages came, the
// title counts those instead (see `noticeMessage`).
function updateUnreadSummary() {
  let total = 0;
  for (const room of rooms.values()) if (!room.hidden) total += room.muted ? room.mentions : room.unread;
  ui.menuDot.hidden = total === 0;
  const where = current ? `${roomLabel(current.name)} · ` : '';
  const n = !pageVisible() && notify.hidden ? notify.hidden : total;
  document.title = `${n ? `(${countText(n)}) ` : ''}${where}banter`;
}

/* ------------------------------------------------------------ attachments */

// Files on their way into the next message: {file, name, size, progress, data, error, xhr,
// node}. Each is uploaded as soon as it is chosen (with a progress bar); Send waits for them.
const tray = [];
// Object URLs of thumbnails, by path: fetched once with the token (an <img> cannot send one,
// and a token in a URL would land in logs) and shown from memory. Full-size files are
// fetched when opened or downloaded, and their URLs let go after.
const thumbUrls = new Map();
let viewerUrl = null;

function humanSize(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function addFiles(files) {
  for (const file of files) {
    if (tray.length >= MAX_ATTACHMENTS) {
      showAlert(`A message can carry at most ${MAX_ATTACHMENTS} files.`);
      break;
    }
    const item = { file, name: file.name || 'file', size: file.size, progress: 0, data: null, error: '', xhr: null };
    item.node = trayNode(item);
    paintItem(item);
    tray.push(item);
    uploadFile(item);
  }
  paintTray();
}

// XMLHttpRequest, not fetch: only it reports an upload's progress.
async function uploadFile(item) {
  try { await auth.ensureFreshToken(); } catch { /* the upload says what is wrong */ }
  if (!auth.session) { item.error = 'You are signed out.'; paintItem(item); return; }
  const xhr = new XMLHttpRequest();
  item.xhr = xhr;
  xhr.open('POST', `/api/v1/uploads?name=${encodeURIComponent(item.name)}`);
  xhr.setRequestHeader('Authorization', `Bearer ${auth.session.token}`);
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) { item.progress = e.loaded / e.total; paintItem(item); }
  };
  xhr.onload = () => {
    let env = null;
    try { env = JSON.parse(xhr.responseText); } catch { /* a proxy's page */ }
    if (xhr.status === 201 && env && env.data) {
      item.data = attachmentsOf([env.data])[0] || null;
      item.progress = 1;
      if (!item.data) item.error = 'The server answered something unexpected.';
    } else {
      item.error = (env && env.message) || `The server answered ${xhr.status}.`;
    }
    paintItem(item);
  };
  xhr.onerror = () => { item.error = 'Cannot reach the server. Check your connection.'; paintItem(item); };
  xhr.send(item.file);
}

function removeFromTray(item) {
  if (item.xhr && !item.data && !item.error) item.xhr.abort();
  const i = tray.indexOf(item);
  if (i >= 0) tray.splice(i, 1);
  paintTray();
  ui.input.focus();
}

function clearTray() {
  tray.length = 0;
  paintTray();
}

// The tray's items, in order (when one comes or goes).
function paintTray() {
  ui.attachTray.hidden = tray.length === 0;
  ui.attachTray.replaceChildren(...tray.map((item) => item.node));
}

// An item's node, made once (so a focused Remove button stays focused while the bar moves).
function trayNode(item) {
  const li = el('li', 'attach-item');
  const bar = el('progress', 'attach-progress');
  bar.max = 1;
  bar.setAttribute('aria-label', `Uploading ${item.name}`);
  li.append(icon('file'), el('span', 'attach-name', item.name), el('span', 'attach-state'), bar,
    iconButton('close', `Remove ${item.name}`, () => removeFromTray(item), 'attach-remove'));
  li.view = { bar, state: li.querySelector('.attach-state') };
  return li;
}

// What changes of an item as it uploads: its progress, its outcome.
function paintItem(item) {
  const { bar, state } = item.node.view;
  item.node.classList.toggle('has-error', !!item.error);
  bar.value = item.progress;
  bar.hidden = !!item.data || !!item.error;
  state.textContent = item.error ? item.error : item.data ? humanSize(item.size) : `${Math.round(item.progress * 100)} %`;
  if (item.data && item.data.thumbnail) item.node.firstChild.replaceWith(icon('image'));
}

// A file the user may read, fetched with the token, as a new object URL.
async function fetchFile(path, retried = false) {
  await auth.ensureFreshToken();
  if (!auth.session) throw new ApiError(401, 'unauthorized', 'You are signed out.');
  let res;
  try {
    res = await fetch(path, { headers: { Authorization: `Bearer ${auth.session.token}` } });
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach the server.');
  }
  if (res.status === 401 && !retried) {
    await auth.refresh();
    return fetchFile(path, true);
  }
  if (!res.ok) {
    throw new ApiError(res.status, `http_${res.status}`,
      res.status === 404 ? 'this file is gone' : `the server answered ${res.status}`);
  }
  return URL.createObjectURL(await res.blob());
}

function thumbUrl(path) {
  if (!thumbUrls.has(path)) {
    const got = fetchFile(path);
    got.catch(() => thumbUrls.delete(path));
    thumbUrls.set(path, got);
  }
  return thumbUrls.get(path);
}

async function downloadFile(a) {
  try {
    const url = await fetchFile(`/api/v1/files/${a.id}`);
    const link = el('a');
    link.href = url;
    link.download = a.name;
    document.body.append(link);
    link.click();
    link.remove();
    // The download has its own copy by the time this runs.
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (e) {
    showAlert(`Could not download ${a.name}: ${e.message}`);
  }
}

async function openViewer(a) {
  ui.viewerTitle.textContent = a.name;
  ui.viewerImage.alt = a.name;
  ui.viewerImage.removeAttribute('src');
  ui.viewerDownload.onclick = () => downloadFile(a);
  if (!ui.viewer.open) ui.viewer.showModal();
  try {
    const url = await fetchFile(`/api/v1/files/${a.id}`);
    if (viewerUrl) URL.revokeObjectURL(viewerUrl);
    viewerUrl = url;
    ui.viewerImage.src = url;
  } catch (e) {
    ui.viewerImage.alt = `${a.name}: ${e.message}`;
  }
}

// Images as thumbnails that open full size; other files as a card with a download button.
function paintAttachments(msg, box) {
  const list = msg.attachments || [];
  box.hidden = list.length === 0;
  box.replaceChildren(...list.map((a) => {
    if (a.thumbnail) {
      const b = el('button', 'attachment-image');
      b.type = 'button';
      b.setAttribute('aria-label', `${a.name}: open full size`);
      const img = el('img');
      img.alt = a.name;
      if (a.width && a.height) {
        const scale = Math.min(1, 400 / Math.max(a.width, a.height));
        img.width = Math.round(a.width * scale);
        img.height = Math.round(a.height * scale);
      }
      thumbUrl(`/api/v1/files/${a.id}/thumbnail`).then((url) => { img.src = url; }, (e) => { img.alt = `${a.name}: ${e.message}`; });
      b.append(img);
      b.addEventListener('click', () => openViewer(a));
      return b;
    }
    const card = el('div', 'attachment-file');
    const about = el('div', 'attachment-about');
    about.append(el('span', 'attachment-name', a.name), el('span', 'attachment-size', humanSize(a.size)));
    const get = el('button', 'btn attachment-download', 'Download');
    get.type = 'button';
    get.setAttribute('aria-label', `Download ${a.name}`);
    get.addEventListener('click', () => downloadFile(a));
    card.append(icon('file'), about, get);
    return card;
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
    mentions: mentionsOf(m.mentions),
    attachments: attachmentsOf(m.attachments),
    // A bot's message: shown with a badge, under the label a webhook gave it, if any.
    bot: m.bot === true,
    label: m.bot === true && typeof m.label === 'string' && m.label.trim() ? m.label : null,
    busy: '',       // what an action of mine on it is doing ("Saving…"), until answered
    editing: null,  // 'main' or 'thread': where its inline editor is open
  };
}

// The files a message carries, as the server described them (only well-formed ones: the
// page fetches nothing from a URL it did not build itself).
const attachmentsOf = (list) => (Array.isArray(list) ? list : [])
  .filter((a) => a && typeof a.id === 'string' && /^[0-9a-f-]{36}$/i.test(a.id))
  .map((a) => ({
    id: a.id, name: String(a.name || 'file'), size: Number(a.size) || 0,
    content_type: String(a.content_type || ''),
    thumbnail: typeof a.thumbnail_url === 'string' || a.thumbnail === true,
    width: Number(a.width) || 0, height: Number(a.height) || 0,
  }));

// The names a message mentions, as the server parsed them (history: always an array;
// live frames: only when there are some).
const mentionsOf = (list) => (Array.isArray(list) ? list.filter((u) => typeof u === 'string') : []);

// Whether a message mentions me: by its names, or a `mention` frame about it.
function mentionsMe(msg) {
  if (msg.mentions && msg.mentions.some(isMe)) return true;
  const room = rooms.get(msg.room);
  return !!room && !!msg.id && room.mentionIds.has(msg.id);
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
  const author = el('span', 'author', msg.label || msg.author);
  if (msg.label) author.title = `posted by ${msg.author}`;
  meta.append(author);
  if (msg.bot) {
    const badge = el('span', 'bot-badge', 'BOT');
    badge.title = `${msg.author} is a bot`;
    meta.append(badge);
  }
  meta.append(el('time', 'time'), edited, el('span', 'note'));
  const replies = el('button', 'thread-link');
  replies.type = 'button';
  replies.hidden = true;
  replies.addEventListener('click', () => openThread(msg));
  const main = el('div', 'msg-main');
  const files = el('div', 'attachments');
  files.hidden = true;
  main.append(quote, meta, el('div', 'body'), files, el('div', 'reactions'), replies);
  li.append(avatar(msg.label || msg.author), main, el('div', 'msg-actions'));
  li.view = { where, quote, edited, replies, files, filesKey: '', reactions: main.querySelector('.reactions'), chips: new Map(), body: null, actions: '' };
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
  const names = msg.mentions ? msg.mentions.join(' ') : '';
  if (v.body !== msg.body || v.names !== names) {
    li.querySelector('.body').replaceChildren(richText(msg.body, msg.mentions));
    v.body = msg.body;
    v.names = names;
  }
  li.classList.toggle('mentions-me', msg.state === 'sent' && !isMe(msg.author) && mentionsMe(msg));
  const filesKey = (msg.attachments || []).map((a) => a.id).join(' ');
  if (v.filesKey !== filesKey) {
    paintAttachments(msg, v.files);
    v.filesKey = filesKey;
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
  const between = !!prev && room.events.some((e) => e.cursor > prev.cursor && e.cursor < msg.cursor);
  const newDay = markDay(room, msg.el, date, msg.cursor);
  msg.el.classList.toggle('cont', !!prev && !newDay && !between && !msg.replyTo && prev.author === msg.author && date - prevDate < GROUP_GAP_MS);
}

// The first item of a day in the timeline (a message or a system line) carries the date.
// Returns whether `node` starts a day.
function markDay(room, node, date, cursor) {
  const before = dateBefore(room, cursor);
  const newDay = !before || !sameDay(before, date);
  if (newDay && !Number.isNaN(date.getTime())) node.dataset.day = dayLabel(date);
  else delete node.dataset.day;
  return newDay;
}

// The date of the newest message or system line before `cursor`, or null.
function dateBefore(room, cursor) {
  let lo = 0;
  let hi = room.msgs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (room.msgs[mid].cursor < cursor) lo = mid + 1; else hi = mid;
  }
  let best = lo > 0 ? room.msgs[lo - 1] : null;
  let date = best ? new Date(best.createdAt) : null;
  for (const e of room.events) {
    if (e.cursor < cursor && (!best || e.cursor > best.cursor)) { best = e; date = e.at; }
  }
  return date;
}

// Restyles whatever comes right after `cursor` in the timeline (its day mark, its grouping).
function restyleAfter(room, cursor) {
  const i = room.msgs.findIndex((m) => m.cursor > cursor);
  const ev = room.events.find((e) => e.cursor > cursor);
  if (ev && (i < 0 || ev.cursor < room.msgs[i].cursor)) markDay(room, ev.el, ev.at, ev.cursor);
  else if (i >= 0) restyle(room, i);
}

/* -------------------------------------------------------------------- text */

// A message body as DOM nodes: ```fenced blocks``` become <pre><code>, `inline code`
// <code>, http(s) URLs links, @names the server found mentioned a highlighted span. Every
// piece of user text goes in with textContent (as text nodes), so nothing a person writes
// can become markup.
function richText(text, mentions = []) {
  const names = new Set(mentions.map((u) => u.toLowerCase()));
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
    inlineText(t, frag, names);
  });
  return frag;
}

function inlineText(text, parent, names) {
  const re = /`([^`\n]+)`/g;
  let at = 0;
  for (let m; (m = re.exec(text));) {
    linkify(text.slice(at, m.index), parent, names);
    parent.append(el('code', 'code-inline', m[1]));
    at = m.index + m[0].length;
  }
  linkify(text.slice(at), parent, names);
}

// `@name` of a mentioned member becomes a span; "@bob." and "@bob-" end before the
// punctuation when that is what makes the name one of them. The rest stays text.
const MENTION_RE = /(^|[^A-Za-z0-9_.@-])@([A-Za-z0-9_.-]{3,32})/g;

function mentionify(text, parent, names) {
  let at = 0;
  if (names && names.size) {
    MENTION_RE.lastIndex = 0;
    for (let m; (m = MENTION_RE.exec(text));) {
      let name = m[2];
      while (name.length > 3 && !names.has(name.toLowerCase()) && /[.-]$/.test(name)) name = name.slice(0, -1);
      if (!names.has(name.toLowerCase())) continue;
      const start = m.index + m[1].length;
      if (start > at) parent.append(document.createTextNode(text.slice(at, start)));
      const span = el('span', isMe(name) ? 'mention mention-me' : 'mention', `@${name}`);
      parent.append(span);
      at = start + 1 + name.length;
      MENTION_RE.lastIndex = at;
    }
  }
  if (at < text.length) parent.append(document.createTextNode(text.slice(at)));
}

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;

function linkify(text, parent, names) {
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
    if (m.index > at) mentionify(text.slice(at, m.index), parent, names);
    const a = el('a', 'link', url);
    a.href = href;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    parent.append(a);
    at = m.index + url.length;
    URL_RE.lastIndex = at;
  }
  if (at < text.length) mentionify(text.slice(at), parent, names);
}

function renderCurrent() {
  const room = current;
  renderHeader();
  ui.input.placeholder = `Message ${roomLabel(room.name)}`;
  const pending = [...outbox.values()].filter((p) => p.room === room.name).map((p) => p.el);
  ui.list.replaceChildren(...timelineOf(room), ...pending);
  ui.jump.hidden = true;
  renderMembers();
  loadRoster(room);
  renderTyping();
  renderHistoryState();
  scrollToBottom();
  updateUnreadSummary();
}

// The room's name, lock and topic; the owner's Edit topic.
function renderHeader() {
  const room = current;
  if (!room) return;
  ui.roomName.textContent = shortLabel(room);
  ui.roomLock.replaceChildren(icon('lock'));
  ui.roomLock.hidden = !isPrivate(room);
  ui.roomLock.title = 'Private room';
  ui.roomTopic.textContent = room.topic;
  ui.roomTopic.title = room.topic;
  const editable = !isDm(room.name) && isOwner(room) && !room.archived;
  ui.topicEdit.hidden = !editable;
  ui.topicEdit.textContent = room.topic ? 'Edit topic' : 'Add a topic';
  ui.roomTopic.parentElement.hidden = !room.topic && !editable;
  renderMuteToggle();
  renderArchived();
}

// An archived room is read-only: a line instead of the composers (the server refuses sends).
function renderArchived() {
  const readOnly = !!current && current.archived;
  ui.composer.hidden = readOnly;
  ui.archivedNote.hidden = !readOnly;
  ui.threadComposer.hidden = !!thread && thread.room.archived;
}

// The header's bell: mutes the room on screen for me (a membership only). Its name stays
// "Mute room"; aria-pressed says whether it is.
function renderMuteToggle() {
  const room = current;
  const b = ui.muteToggle;
  b.hidden = !room || !room.member;
  if (!room) return;
  b.setAttribute('aria-pressed', String(room.muted));
  b.title = room.muted
    ? 'Muted: only mentions notify you. Click to unmute'
    : 'Mute room: no notifications except mentions';
  b.replaceChildren(icon(room.muted ? 'bell-off' : 'bell'));
}

// Muted or not, as its entry, a `muted` frame or my click says: sidebar, header, title.
function setMuted(room, muted) {
  if (room.muted === muted) return;
  room.muted = muted;
  updateNav(room);
  if (room === current) renderMuteToggle();
}

// PUT /rooms/{room}/muted. Shown at once; the answer (the room's entry) settles it, a refusal
// puts it back. My other devices hear a `muted` frame.
async function toggleMute() {
  const room = current;
  if (!room || !room.member || room.muteBusy) return;
  const want = !room.muted;
  const myEpoch = auth.epoch;
  room.muteBusy = true;
  room.mutedSeq = ++roomList.streamSeq;
  setMuted(room, want);
  announce(`${roomLabel(room.name)} ${want ? 'muted: only mentions notify you' : 'unmuted'}`);
  try {
    const entry = await api('PUT', `/rooms/${encodeURIComponent(room.name)}/muted`, { body: { muted: want } });
    if (myEpoch !== auth.epoch || rooms.get(room.name) !== room) return;
    room.mutedSeq = ++roomList.streamSeq;
    if (isEntry(entry)) applyEntry(entry); else setMuted(room, want);
  } catch (err) {
    if (myEpoch !== auth.epoch || rooms.get(room.name) !== room) return;
    setMuted(room, !want);
    showAlert(`Could not ${want ? 'mute' : 'unmute'} ${roomLabel(room.name)}: ${err.message || err}`);
  } finally {
    room.muteBusy = false;
  }
}

// Messages and system lines of a room, in cursor order.
function timelineOf(room) {
  const out = [];
  let i = 0;
  for (const m of room.msgs) {
    while (i < room.events.length && room.events[i].cursor < m.cursor) out.push(room.events[i++].el);
    out.push(m.el);
    if (room.gap && m.cursor === room.gap.above) out.push(room.gap.el);
  }
  while (i < room.events.length) out.push(room.events[i++].el);
  return out;
}

// Puts a timeline node (a message or a system line) where its cursor goes on screen: after
// the last one with a smaller cursor, before own messages not stored yet. Usually at the end.
function placeInTimeline(node, cursor) {
  node.dataset.cursor = cursor;
  let after = ui.list.lastElementChild;
  while (after && (after.classList.contains('is-outbox') || after === node || !(after.dataset.cursor <= cursor))) {
    after = after.previousElementSibling;
  }
  if (after) after.after(node);
  else ui.list.prepend(node);
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
  msg.el.dataset.cursor = msg.cursor;
  if (room === current) placeInTimeline(msg.el, msg.cursor);
  restyle(room, lo);
  restyleAfter(room, msg.cursor);
}

// Adds a message from history or the socket. Returns it, or null for a
// duplicate. An own message carrying a pending client_id takes the pending
// message's place instead of appearing twice. `live`: it is new (the socket, an
// ack), so its thread's first message has one more reply; history counts its own.
function addMessage(room, m, { live = false } = {}) {
  if (!m || typeof m.id !== 'string' || typeof m.cursor !== 'string') return null;
  const known = room.byId.get(m.id);
  if (known && Array.isArray(m.mentions) && m.mentions.join(' ') !== known.mentions.join(' ')) {
    // Our own message came in from its ack first, without the names the server found.
    known.mentions = mentionsOf(m.mentions);
    paintMessage(known);
  }
  if (known || deletedIds.has(m.id)) return null;
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
    if (msg.el.contains(document.activeElement)) ui.messages.focus();
    msg.el.remove();
    restyleAfter(room, msg.cursor);
  }
  if (msg.threadRoot) {
    const root = findMsg(room, msg.threadRoot);
    if (root && root.replyCount > 0) { root.replyCount--; paintMessage(root); }
  }
  if (thread && thread.room === room) threadRemove(msg);
  repaintQuotes(room, id);
  // The server no longer counts it either; counted here, it goes by itself.
  if (i >= 0 && !covered(room) && counts(room, msg)) {
    room.unread = Math.max(0, room.unread - 1);
    if (mentionsMe(msg)) room.mentions = Math.max(0, room.mentions - 1);
  }
  room.mentionIds.delete(id);
  recount(room);
  if (room === current) renderHistoryState();
}

// Keeps only the newest messages of a room that is off screen; the rest can
// be paged in again from history.
function trim(room, keep) {
  if (room.gap) {
    const upTo = room.gap.above;
    for (const msg of room.msgs.filter((m) => m.cursor <= upTo)) room.byId.delete(msg.id);
    room.msgs = room.msgs.filter((m) => m.cursor > upTo);
    room.gap.el.remove();
    room.gap = null;
    room.hasMore = true;
    if (!room.msgs.length) return;
  }
  const extra = room.msgs.length - keep;
  if (extra <= 0) return;
  for (const msg of room.msgs.splice(0, extra)) room.byId.delete(msg.id);
  room.events = room.events.filter((e) => e.cursor > room.msgs[0].cursor);
  room.hasMore = true;
  restyle(room, 0);
}

/* ------------------------------------------------------------------ unread */

// A message counts as unread when someone else wrote it after my read position.
const counts = (room, msg) => !isMe(msg.author) && (!room.readCursor || msg.cursor > room.readCursor);

// Whether the loaded messages reach back to the read position, so that counting them is exact.
function covered(room) {
  if (!room.loaded) return false;
  // Messages not loaded between a result's context and the newest page may be unread.
  if (room.gap && (!room.readCursor || room.readCursor < room.gap.below)) return false;
  if (!room.hasMore) return true;
  return !!room.readCursor && room.msgs.length > 0 && room.msgs[0].cursor <= room.readCursor;
}

// The room's badges. Covered: counted from the messages (and `mention` frames whose message
// has not come yet). Otherwise the server's numbers stand, moved by what comes live.
function recount(room) {
  if (covered(room)) {
    let unread = 0;
    let mentions = 0;
    for (const m of room.msgs) {
      if (!counts(room, m)) continue;
      unread++;
      if (mentionsMe(m)) mentions++;
    }
    for (const [id, cursor] of room.mentionIds) {
      if (!room.byId.has(id) && !deletedIds.has(id) && (!room.readCursor || cursor > room.readCursor)) { unread++; mentions++; }
    }
    room.unread = Math.min(unread, COUNT_CAP);
    room.mentions = Math.min(mentions, COUNT_CAP);
  }
  updateNav(room);
}

// The room on screen, seen: read up to its newest message, told to the server (debounced).
function markRead(room) {
  if (room !== current || !pageVisible() || !room.loaded) return;
  const newest = room.newest;
  if (newest && (!room.readCursor || newest > room.readCursor)) room.readCursor = newest;
  if (room.readCursor && room.readCursor !== room.readSent) queueRead(room);
  recount(room);
}

// At most one `read` per room every READ_EVERY_MS, and only forwards.
function queueRead(room) {
  if (room.readTimer) return;
  const wait = Math.max(0, room.readSentAt + READ_EVERY_MS - Date.now());
  room.readTimer = setTimeout(() => { room.readTimer = null; sendRead(room); }, wait);
}

function sendRead(room) {
  const cursor = room.readCursor;
  if (rooms.get(room.name) !== room || !cursor || (room.readSent && cursor <= room.readSent)) return;
  if (!socketReady()) return; // the next socket sends it (see `connect`)
  const clientId = newClientId();
  readFrames.add(clientId);
  room.readSent = cursor;
  room.readSentAt = Date.now();
  sendFrame({ type: 'read', room: room.name, cursor, client_id: clientId });
}

// The user stream's `read`: my read position moved, here or on another device.
function onRead(room, f) {
  if (typeof f.cursor !== 'string') return;
  room.readAcked = maxCursor(room.readAcked, f.cursor);
  room.readSent = maxCursor(room.readSent, f.cursor);
  if (room.readCursor && f.cursor <= room.readCursor) return;
  room.readCursor = f.cursor;
  if (room.loaded && room.newest && f.cursor >= room.newest) {
    room.unread = 0;
    room.mentions = 0;
  }
  if (covered(room) || (room.loaded && room.newest && f.cursor >= room.newest)) recount(room);
  else syncRooms(); // read somewhere in what is not loaded here: the server counts it
}

// A `mention` frame: a message mentions me.
function onMention(room, f) {
  if (typeof f.id !== 'string' || typeof f.cursor !== 'string' || room.mentionIds.has(f.id)) return;
  if (room.readCursor && f.cursor <= room.readCursor) return;
  const msg = room.byId.get(f.id);
  const already = msg && msg.mentions.some(isMe); // counted with its message
  room.mentionIds.set(f.id, f.cursor);
  if (!covered(room) && !already) room.mentions = Math.min(room.mentions + 1, COUNT_CAP);
  if (msg) { paintMessage(msg); alertFor(room, msg); }
  if (room === current) markRead(room);
  recount(room);
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
  applyReaction(msg, emoji, auth.session.username, had ? 'remove' : 'add');
  paintMessage(msg);
  act(room, { type: had ? 'unreact' : 'react', id: msg.id, emoji }, {
    fail(f) {
      applyReaction(msg, emoji, auth.session.username, had ? 'add' : 'remove');
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
  if (Array.isArray(f.mentions)) msg.mentions = mentionsOf(f.mentions);
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
// Resolves to whether the person said yes; focus goes back where it was (or to `fallback`).
function ask({ title, text, quote = '', ok, fallback = ui.input }) {
  if (ui.confirm.open) return Promise.resolve(false);
  const back = document.activeElement;
  ui.confirmTitle.textContent = title;
  ui.confirmText.textContent = text;
  ui.confirmQuote.textContent = quote;
  ui.confirmOk.textContent = ok;
  ui.confirm.returnValue = '';
  return new Promise((resolve) => {
    ui.confirm.addEventListener('close', () => {
      // The browser gives focus back by itself; `close` comes a task later, and by then
      // focus may have moved on (a menu opened): only a lost focus is put back.
      const lost = !document.activeElement || document.activeElement === document.body || ui.confirm.contains(document.activeElement);
      if (lost) (back && back.isConnected && back !== document.body ? back : fallback).focus();
      resolve(ui.confirm.returnValue === 'ok');
    }, { once: true });
    ui.confirm.showModal();
    ui.confirmOk.focus();
  });
}

async function confirmDelete(msg) {
  const yes = await ask({
    title: 'Delete message', text: 'Delete this message for everyone? This cannot be undone.',
    quote: firstLine(msg.body), ok: 'Delete', fallback: msg.tel && !ui.thread.hidden ? ui.threadInput : ui.input,
  });
  if (yes) deleteMessage(msg);
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
  if (tray.some((t) => !t.data && !t.error)) {
    showAlert('Wait a moment: the files are still uploading.');
    return;
  }
  const attachments = tray.filter((t) => t.data).map((t) => t.data);
  if (room && queueMessage(room, ui.input.value, { attachments })) {
    clearTray();
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
function queueMessage(room, text, { replyTo = null, threadRoot = null, attachments = [] } = {}) {
  const body = cleanBody(text);
  if (!room || (!body.trim() && attachments.length === 0)) return false;
  const length = [...body].length;
  if (length > MAX_BODY) {
    showAlert(`A message can be at most ${MAX_BODY} characters; this one has ${length}.`);
    return false;
  }
  const p = pendingOf(room.name, {
    body: body.trim() ? body : '', created_at: new Date().toISOString(), client_id: newClientId(),
    reply_to: replyTo, thread_root: threadRoot, attachments,
  });
  storeOutboxEntry(p);
  addPending(p);
  return true;
}

function pendingOf(roomName, e) {
  return {
    id: null, cursor: null, room: roomName, author: auth.session.username, body: String(e.body),
    createdAt: e.created_at, clientId: e.client_id,
    state: e.state === 'failed' ? 'failed' : 'pending', error: e.error || '', el: null, tel: null, sentOn: 0,
    editedAt: null, reactions: new Map(), replyCount: 0, busy: '', editing: null, mentions: [],
    replyTo: typeof e.reply_to === 'string' ? e.reply_to : null,
    threadRoot: typeof e.thread_root === 'string' ? e.thread_root : null,
    attachments: attachmentsOf(e.attachments),
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
    if (!e || typeof e.client_id !== 'string' || outbox.has(e.client_id) || !validStoredRoom(e.room)) continue;
    // A room not (yet) among my memberships, e.g. a new DM's first message: opened again here.
    addRoom(e.room);
    addPending(pendingOf(e.room, e));
  }
}

// A message's frame. It goes once per socket, after the room's join (the server handles
// frames in order, so the send lands in a joined room), and again with the same client_id
// on a new socket, which the server never stores twice (client.js's Outbox).
function sendFrameOf(p) {
  const frame = { type: 'send', room: p.room, body: p.body, client_id: p.clientId };
  if (p.replyTo) frame.reply_to = p.replyTo;
  if (p.attachments.length) frame.attachments = p.attachments.map((a) => a.id);
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
  if (Array.isArray(m.mentions)) p.mentions = mentionsOf(m.mentions);
  if (Array.isArray(m.attachments)) p.attachments = attachmentsOf(m.attachments);
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
  if (typeof f.client_id === 'string' && readFrames.delete(f.client_id)) return;
  const action = actions.answer(f);
  if (action) { onActionAnswer({ ...action, frame: f }); return; }
  const p = outbox.answer(f)?.item;
  if (!p) return; // the `message` frame came first and settled it
  const room = rooms.get(p.room);
  const added = room && addMessage(room, {
    id: f.id, cursor: f.cursor, created_at: f.created_at,
    author: auth.session.username, body: p.body, client_id: p.clientId,
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
  renderArchived();
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

/* ----------------------------------------------------------- @-autocomplete */

// Typing `@al` in a composer offers the room's members whose names start so; ↑/↓ choose,
// Enter or Tab takes one, Escape closes. The text box keeps focus (aria-activedescendant).
const MENTION_TYPED_RE = /(^|[^A-Za-z0-9_.@-])@([A-Za-z0-9_.-]{0,32})$/;

function mentionPicker(input, list) {
  const state = { open: false, items: [], at: 0, start: 0 };
  const close = () => {
    state.open = false;
    list.hidden = true;
    list.replaceChildren();
    input.removeAttribute('aria-activedescendant');
  };
  const room = () => (input === ui.threadInput && thread ? thread.room : current);
  const pick = (name) => {
    const end = input.selectionStart;
    const text = input.value;
    input.value = `${text.slice(0, state.start)}@${name} ${text.slice(end)}`;
    const caret = state.start + name.length + 2;
    input.setSelectionRange(caret, caret);
    close();
    input.focus();
  };
  const paint = () => {
    list.querySelectorAll('[role="option"]').forEach((li, i) => {
      li.setAttribute('aria-selected', String(i === state.at));
      if (i === state.at) input.setAttribute('aria-activedescendant', li.id);
    });
  };
  const update = () => {
    const r = room();
    const before = input.value.slice(0, input.selectionStart);
    const m = input.selectionStart === input.selectionEnd && r ? MENTION_TYPED_RE.exec(before) : null;
    if (!m) { close(); return; }
    const typed = m[2].toLowerCase();
    const names = new Map();
    for (const u of [...(r.roster ? r.roster.keys() : []), ...r.members]) {
      if (!isMe(u) && u.toLowerCase().startsWith(typed) && !names.has(u.toLowerCase())) names.set(u.toLowerCase(), u);
    }
    state.items = [...names.values()].sort((a, b) => a.localeCompare(b)).slice(0, 6);
    if (!state.items.length) { close(); return; }
    state.start = before.length - m[2].length - 1;
    state.at = Math.min(state.at, state.items.length - 1);
    state.open = true;
    list.replaceChildren(...state.items.map((name, i) => {
      const li = el('li', 'mention-option');
      li.id = `${list.id}-${i}`;
      li.setAttribute('role', 'option');
      li.append(avatar(name), el('span', null, name));
      // pointerdown, not click: the text box keeps focus.
      li.addEventListener('pointerdown', (e) => { e.preventDefault(); pick(name); });
      return li;
    }));
    list.hidden = false;
    paint();
  };
  input.addEventListener('input', () => { state.at = 0; update(); });
  input.addEventListener('blur', close);
  input.addEventListener('keydown', (e) => {
    if (!state.open || e.isComposing) return;
    const step = { ArrowDown: 1, ArrowUp: -1 }[e.key];
    if (step) {
      state.at = (state.at + step + state.items.length) % state.items.length;
      paint();
    } else if (e.key === 'Enter' || e.key === 'Tab') {
      pick(state.items[state.at]);
    } else if (e.key === 'Escape') {
      close();
    } else {
      return;
    }
    // Before the composer's own keys (Enter sends, Up edits, Escape closes the thread).
    e.preventDefault();
    e.stopImmediatePropagation();
  });
  return { close };
}

/* --------------------------------------------------------- people, typing */

// The room's members (all of them once GET …/members answered, else who is online), online
// first; the owner's Remove, everyone's Message; Add someone (a private room's owner) and Leave.
function renderMembers() {
  const room = current;
  if (!room) return;
  const roster = room.roster || new Map();
  const names = new Map(); // lowercased → as spelled
  for (const u of [...roster.keys(), ...room.members]) if (!names.has(u.toLowerCase())) names.set(u.toLowerCase(), u);
  const online = new Set([...room.members].map((u) => u.toLowerCase()));
  const users = [...names.values()].sort((a, b) => (isMe(b) - isMe(a)) ||
    (online.has(b.toLowerCase()) - online.has(a.toLowerCase())) || a.localeCompare(b));
  const owner = isOwner(room) && !isDm(room.name);
  ui.memberList.replaceChildren(...users.map((user) => {
    const li = el('li', 'member');
    li.dataset.user = user;
    const on = online.has(user.toLowerCase());
    li.dataset.online = String(on);
    const dot = el('span', 'presence-dot');
    dot.setAttribute('aria-hidden', 'true');
    const name = el('span', 'member-name', user);
    name.title = `${user}${on ? ', online' : ', offline'}`;
    li.append(dot, name);
    if (roleOf(room, user) === 'owner' && !isDm(room.name)) li.append(el('span', 'member-role', 'owner'));
    if (room.bots.has(user)) li.append(el('span', 'member-role', 'bot'));
    if (isMe(user)) li.append(el('span', 'member-you', '(you)'));
    else {
      li.append(iconButton('chat', `Message ${user}`, () => openDm(user), 'member-dm'));
      if (owner && roleOf(room, user) !== 'owner') {
        li.append(iconButton('close', `Remove ${user} from ${roomLabel(room.name)}`, () => removeMember(room, user), 'member-remove'));
      }
    }
    return li;
  }));
  const total = room.roster ? users.length : room.members.size;
  ui.membersCount.textContent = ui.membersToggleCount.textContent = String(total);
  ui.membersOnline.textContent = room.roster ? `${online.size} online` : 'online now';
  ui.inviteForm.hidden = !(owner && isPrivate(room));
  ui.leaveRoom.hidden = isDm(room.name) || room.name === 'general' || !room.member;
  ui.leaveRoom.textContent = `Leave ${shortLabel(room)}`;
}

function roleOf(room, user) {
  if (room.owner && room.owner.toLowerCase() === user.toLowerCase()) return 'owner';
  for (const [name, role] of room.roster || []) if (name.toLowerCase() === user.toLowerCase()) return role;
  return 'member';
}

// Every member of the room, once per room (then `member` frames keep it). A DM's are its two.
// `again`: fetch it anew (the room just became ours); a fetch in flight is followed by one more.
async function loadRoster(room, again = false) {
  if (room.rosterLoading) { room.rosterAgain = room.rosterAgain || again || !room.roster; return; }
  if (room.roster && !again) return;
  if (isDm(room.name)) {
    room.roster = new Map([[auth.session.username, 'member'], [dmPeer(room.name), 'member']]);
    if (room === current) renderMembers();
    return;
  }
  const myEpoch = auth.epoch;
  room.rosterHeard = [];
  room.rosterLoading = api('GET', `/rooms/${encodeURIComponent(room.name)}/members`).then((data) => {
    if (myEpoch !== auth.epoch || rooms.get(room.name) !== room) return;
    room.roster = new Map();
    for (const m of Array.isArray(data.members) ? data.members : []) {
      if (m && typeof m.username === 'string') room.roster.set(m.username, m.role === 'owner' ? 'owner' : 'member');
      if (m && m.bot === true && typeof m.username === 'string') room.bots.add(m.username);
    }
    for (const f of room.rosterHeard) applyMember(room, f);
    if (room === current) renderMembers();
  }, () => { /* not a member yet (opened a moment ago): its `room added` fetches it again */ })
    .finally(() => {
      room.rosterLoading = null;
      if (room.rosterAgain && rooms.get(room.name) === room) { room.rosterAgain = false; loadRoster(room, true); }
    });
}

// A `member` frame of the room's log: the roster changes, and the timeline says so.
function onMember(room, f) {
  if (typeof f.user !== 'string') return;
  if (room.rosterLoading) room.rosterHeard.push(f);
  applyMember(room, f);
  addSystem(room, f);
  if (room === current) renderMembers();
}

function applyMember(room, f) {
  if (!room.roster) return;
  const had = [...room.roster.keys()].find((u) => u.toLowerCase() === f.user.toLowerCase());
  if (f.op === 'joined' || f.op === 'added') { if (!had) room.roster.set(f.user, 'member'); }
  else if (had) room.roster.delete(had);
}

async function inviteMember() {
  const room = current;
  const user = ui.inviteInput.value.trim().replace(/^@/, '');
  ui.inviteAlert.textContent = '';
  if (!USER_RE.test(user)) { ui.inviteAlert.textContent = 'Usernames are 3 to 32 letters, digits, dots, dashes or underscores.'; ui.inviteInput.focus(); return; }
  try {
    await api('POST', `/rooms/${encodeURIComponent(room.name)}/members`, { body: { username: user } });
    if (room.roster && ![...room.roster.keys()].some((u) => u.toLowerCase() === user.toLowerCase())) room.roster.set(user, 'member');
    ui.inviteInput.value = '';
    if (room === current) renderMembers();
    announce(`${user} was added to ${roomLabel(room.name)}.`);
  } catch (err) {
    ui.inviteAlert.textContent = err.status === 404 ? `There is no one called ${user}.` : err.message;
    ui.inviteInput.focus();
  }
}

async function removeMember(room, user) {
  const ok = await ask({
    title: 'Remove member', text: `Remove ${user} from ${roomLabel(room.name)}? They will no longer see it.`, ok: 'Remove',
  });
  if (!ok) return;
  try {
    await api('DELETE', `/rooms/${encodeURIComponent(room.name)}/members/${encodeURIComponent(user)}`);
    if (room.roster) for (const u of [...room.roster.keys()]) if (u.toLowerCase() === user.toLowerCase()) room.roster.delete(u);
    if (room === current) renderMembers();
  } catch (err) {
    showAlert(`Could not remove ${user}: ${err.message}`);
  }
}

// Leaving for good: the membership goes (the server tells my other devices).
async function leaveRoom(room) {
  const text = isOwner(room)
    ? `Leave ${roomLabel(room.name)}? You own it: once you are gone, no one can add people to it or change its topic.`
    : isPrivate(room)
      ? `Leave ${roomLabel(room.name)}? It is private: only its owner can add you again.`
      : `Leave ${roomLabel(room.name)}? You can join it again from Browse rooms.`;
  if (!(await ask({ title: 'Leave room', text, ok: 'Leave' }))) return;
  try {
    await api('DELETE', `/rooms/${encodeURIComponent(room.name)}/members/${encodeURIComponent(auth.session.username)}`);
    dropRoom(room);
    announce(`You left ${roomLabel(room.name)}.`);
  } catch (err) {
    showAlert(`Could not leave ${roomLabel(room.name)}: ${err.message}`);
  }
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
  if (!auth.session || socket.ws) return;
  if (!navigator.onLine) { setStatus('offline'); return; }
  setStatus(socket.hasOpened ? 'reconnecting' : 'connecting');
  if (auth.session.expires_at - Date.now() < 20000) {
    // The handshake would refuse a stale token (e.g. the morning after): refresh first.
    auth.refresh().then(connect, () => { if (auth.session) scheduleReconnect(); });
    return;
  }
  const gen = ++socket.gen;
  // The server joins the room named in the URL on its own (no `since`); its
  // `joined` answer is not ours, which joinsAwaited accounts for. That is always
  // `general`, which everyone is in: the room on screen may have been taken from us meanwhile.
  const entry = 'general';
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws` +
    `?token=${encodeURIComponent(auth.session.token)}&room=${encodeURIComponent(entry)}`;
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
      sendRead(room); // read here while the socket was down
    }
    // What the user stream said while we were away: the list again (once, not a poll).
    if (!roomList.fresh) syncRooms();
    if (socket.gen > 1) checkAdmin();
  });
  ws.addEventListener('message', (e) => {
    if (socket.ws === ws && socket.gen === gen) handleFrame(e.data);
  });
  ws.addEventListener('close', (e) => {
    if (socket.ws !== ws) return; // replaced or closed on purpose
    socket.ws = null;
    socketDown();
    if (e.code === WS_DEACTIVATED) { auth.deactivated(); return; }
    // 4001: the token expired first. A handshake that never opened may be a
    // refused token: let an authenticated request find out (and refresh).
    if (auth.session) scheduleReconnect({ refreshFirst: e.code === 4001, probe: !opened });
  });
}

function socketDown() {
  roomList.fresh = false;
  readFrames.clear(); // their answers went with the socket
  for (const room of rooms.values()) {
    room.down();
    room.membersLive = false;
    // Not known to have reached the server: sent again on the next socket.
    room.readSent = room.readAcked || null;
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
    const myEpoch = auth.epoch;
    try {
      if (refreshFirst) await auth.refresh();
      else if (probe) await api('GET', '/rooms');
      else await auth.ensureFreshToken();
    } catch { /* server down or offline: the attempt below fails and backs off */ }
    if (myEpoch === auth.epoch) connect();
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
    case 'member': if (room) onMember(room, f); break;
    case 'topic':
      if (!room) break;
      if (typeof f.topic === 'string') { room.topic = f.topic; if (room === current) renderHeader(); }
      addSystem(room, f);
      break;
    case 'created': if (room) addSystem(room, f); break;
    // An admin archived or unarchived the room, or deleted it (its `room` removed frame may
    // come first or after: whichever does drops it).
    case 'archived':
      if (!room || typeof f.archived !== 'boolean') break;
      room.archived = f.archived;
      addSystem(room, f);
      if (room === current) renderHeader();
      break;
    case 'room_deleted':
      if (!room) break;
      if (room === current) showAlert(`${roomLabel(room.name)} was deleted by an admin.`);
      dropRoom(room);
      break;
    // The user stream: about me, on every connection of mine.
    case 'room': onRoomFrame(f); break;
    case 'read': if (room) onRead(room, f); break;
    case 'mention': if (room) onMention(room, f); break;
    // Muted or unmuted on another device of mine (or by my own PUT).
    case 'muted':
      if (room && typeof f.muted === 'boolean') { room.mutedSeq = ++roomList.streamSeq; setMuted(room, f.muted); }
      break;
    case 'error': onError(f); break;
    default: break; // `left`, `authenticated`: nothing to do
  }
}

// A line of the room's log that is not a message, in the timeline: "bob joined",
// "alice added carol", "alice set the topic: …". Replays bring the same cursor again: once.
function addSystem(room, f) {
  if (typeof f.cursor !== 'string' || room.events.some((e) => e.cursor === f.cursor)) return;
  if (room.loaded && room.hasMore && room.msgs.length && f.cursor < room.msgs[0].cursor) return; // before what is loaded
  const text = systemText(room, f);
  if (!text) return;
  const li = el('li', `system system-${f.type}`);
  li.append(el('span', 'system-text', text));
  const at = new Date(f.at);
  if (!Number.isNaN(at.getTime())) {
    const time = el('time', 'time', hhmm(at));
    time.dateTime = at.toISOString();
    time.title = at.toLocaleString(undefined, { dateStyle: 'full', timeStyle: 'short' });
    li.append(time);
  }
  li.dataset.cursor = f.cursor;
  const ev = { cursor: f.cursor, el: li, at };
  let i = room.events.length;
  while (i > 0 && room.events[i - 1].cursor > f.cursor) i--;
  room.events.splice(i, 0, ev);
  if (room === current) {
    const stick = nearBottom();
    placeInTimeline(li, f.cursor);
    if (stick) scrollToBottom();
  }
  // It may start a day; the message after it starts a group of its own.
  markDay(room, li, at, f.cursor);
  restyleAfter(room, f.cursor);
}

function systemText(room, f) {
  const by = typeof f.by === 'string' ? f.by : 'someone';
  const user = typeof f.user === 'string' ? f.user : 'someone';
  switch (f.type) {
    case 'member':
      return { joined: `${user} joined`, left: `${user} left`, added: `${by} added ${user}`, removed: `${by} removed ${user}` }[f.op] || '';
    case 'topic':
      return f.topic ? `${by} set the topic: ${f.topic}` : `${by} cleared the topic`;
    case 'archived':
      return f.archived ? `${by} archived ${roomLabel(room.name)}: it is read-only now` : `${by} unarchived ${roomLabel(room.name)}`;
    case 'created':
      return `${by} created ${roomLabel(room.name)}${f.kind === 'private' ? ' (private)' : ''}`;
    default:
      return '';
  }
}

function onMessage(room, f) {
  const stick = room === current && nearBottom();
  const msg = addMessage(room, f, { live: true });
  if (!msg) return;
  stopTyping(room, msg.author);
  noticeMessage(room, msg);
  // Counted here when the loaded messages are not the whole story (see `recount`).
  if (!covered(room) && counts(room, msg)) {
    room.unread = Math.min(room.unread + 1, COUNT_CAP);
    if (msg.mentions.some(isMe) && !room.mentionIds.has(msg.id)) room.mentions = Math.min(room.mentions + 1, COUNT_CAP);
  }
  if (room.hidden && !isMe(msg.author)) showDm(room); // a closed DM: someone wrote again
  if (room !== current) {
    if (room.msgs.length > KEEP_AWAY * 1.5) trim(room, KEEP_AWAY);
    recount(room);
    return;
  }
  renderHistoryState();
  markRead(room);
  recount(room);
  if (isMe(msg.author)) { if (stick) scrollToBottom(); return; }
  announce(`${msg.author}: ${msg.body}`);
  if (stick) scrollToBottom();
  else ui.jump.hidden = false;
}

function onJoined(room, f) {
  // Ours: everything up to its cursor has been replayed to us.
  if (!room.onJoined(f, socket.gen)) return;
  socket.attempts = 0;
  // Opened here by name: it is a membership now, and its entry (kind, owner, topic, counts)
  // comes as `room added`, or, if it was one already, from the list.
  if (!room.member) setTimeout(() => { if (rooms.get(room.name) === room && !room.member) syncRooms(); }, 1000);
}

function onMembersChanged(room) {
  updateNav(room);
  if (room === current) renderMembers();
}

function onError(f) {
  if (typeof f.client_id === 'string' && readFrames.delete(f.client_id)) return; // a read position: the next one goes anyway
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
      auth.refresh().catch(() => {});
      break;
    case 'account_disabled':
      auth.deactivated();
      break;
    case 'forbidden': {
      // A join of a room that is not ours (a private room, or one we were removed from).
      const room = typeof f.room === 'string' ? rooms.get(f.room) : undefined;
      if (room && !room.member) {
        showAlert(`You cannot open ${roomLabel(room.name)}: ${f.message || 'it is private'}.`);
        dropRoom(room);
        break;
      }
      showAlert(f.message || 'Not allowed.');
      break;
    }
    default:
      showAlert(f.message || 'Something went wrong.');
  }
}

/* --------------------------------------------------------------- lifecycle */

// A room in the sidebar: from the list or the user stream (a membership), or opened here
// by name (the join makes it one).
function addRoom(name) {
  let room = rooms.get(name);
  if (room) return room;
  room = new Room(name);
  rooms.set(name, room);
  if (isDm(name) && prefs.dismissed[name]) room.hidden = true; // until `applyEntry` sees newer activity
  renderNav();
  return room;
}

function openRoom(room) {
  if (!room || room === current) return;
  const prev = current;
  if (prev) {
    prev.draft = ui.input.value;
    trim(prev, KEEP_AWAY);
  }
  if (room.hidden) showDm(room);
  current = room;
  if (thread && thread.room !== room) closeThread({ focus: false });
  closePopup({ focus: false });
  prefs.current = room.name;
  savePrefs();
  ui.input.value = room.draft;
  ui.inviteAlert.textContent = '';
  for (const picker of mentionPickers) picker.close();
  if (prev) updateNav(prev);
  renderCurrent();
  markRead(room);
  updateNav(room);
  // On phones the rooms are a row of chips that scrolls sideways.
  room.nav.link.scrollIntoView({ block: 'nearest', inline: 'nearest' });
}

function openDm(user) {
  openRoom(addRoom(dmName(auth.session.username, user)));
  loadRoom(current);
  setDrawer(null);
  ui.input.focus();
}

// Closing a DM hides it here; only a newer message brings it back (it stays a membership).
function hideDm(room) {
  const newest = room.msgs.length ? room.msgs[room.msgs.length - 1].createdAt : null;
  prefs.dismissed[room.name] = [room.lastMessageAt, newest].filter(Boolean).sort().pop() || new Date(0).toISOString();
  savePrefs();
  room.hidden = true;
  if (current === room) openRoom(neighbourOf(room));
  renderNav();
  if (current && current.nav) current.nav.link.focus();
}

function showDm(room) {
  if (!room.hidden) return;
  room.hidden = false;
  delete prefs.dismissed[room.name];
  savePrefs();
  renderNav();
}

// The room next to `room` in the sidebar, to show instead of it.
function neighbourOf(room) {
  const list = visibleRooms().filter((r) => r !== room);
  const names = [...rooms.keys()];
  const at = names.indexOf(room.name);
  return list.find((r) => names.indexOf(r.name) > at) || list[list.length - 1] || null;
}

// The room goes from this page (left, removed, refused): its pending frames, its thread,
// its timers. The server has stopped sending it already, or never did.
function dropRoom(room) {
  if (rooms.get(room.name) !== room) return;
  for (const p of [...outbox.values()]) if (p.room === room.name) dropPending(p);
  for (const a of [...actions.values()]) if (a.room === room.name) actions.delete(a.clientId);
  if (thread && thread.room === room) closeThread({ focus: false });
  for (const t of room.typing.values()) clearTimeout(t);
  clearTimeout(room.readTimer);
  clearTimeout(room.release);
  if (room.joinSentOn === socket.gen && !room.member) sendFrame({ type: 'leave', room: room.name });
  const next = current === room ? neighbourOf(room) : null;
  rooms.delete(room.name);
  if (current === room) {
    current = null;
    // Nothing left (we never stay without a room): general, which everyone is in.
    openRoom(next || addRoom('general'));
    loadRoom(current);
  }
  renderNav();
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
  const myEpoch = auth.epoch;
  // A room that does not exist yet (a new public room, a new DM) has no history: its join or
  // first message creates it. Anything else refused means the room is not for us.
  const fresh = (err) => {
    if (err.status === 404 && !room.member) return { messages: [], hasMore: false };
    throw err;
  };
  room.loading = fetchPage(room.name).catch(fresh).then((page) => {
    if (myEpoch !== auth.epoch || rooms.get(room.name) !== room) return;
    const stick = room === current && nearBottom();
    for (const m of page.messages) {
      const msg = addMessage(room, m);
      if (msg && room.arrivedLive) noticeMessage(room, msg);
    }
    room.arrivedLive = false;
    room.hasMore = page.hasMore;
    room.loadedUpTo(room.newest);
    room.loaded = true;
    room.loadError = '';
    markRead(room);
    recount(room);
    if (room === current) {
      renderHistoryState();
      if (stick) scrollToBottom();
    }
    joinRoom(room);
  }, (err) => {
    if (myEpoch !== auth.epoch || rooms.get(room.name) !== room) return;
    if ([400, 403, 404].includes(err.status)) {
      // The room cannot exist for us (private, or not ours any more): out of the sidebar.
      showAlert(`Could not open ${roomLabel(room.name)}: ${err.message}`);
      dropRoom(room);
      return;
    }
    room.loadError = err.message; // retried on the next socket
    setTimeout(() => { if (rooms.get(room.name) === room && !room.loaded) loadRoom(room); }, 5000);
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
    recount(room); // maybe the loaded messages reach the read position now
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

// GET /rooms: every membership of mine, with its topic, online count, read position and
// exact unread and mention counts. At the start, after a reconnect, and when a `read` frame
// leaves the app unable to count (never on a timer). Calls while one is in flight make one
// more afterwards. Resolves to whether the list came.
function syncRooms() {
  if (roomList.syncing) { roomList.again = true; return roomList.syncing; }
  const myEpoch = auth.epoch;
  const seq = roomList.streamSeq;
  const done = api('GET', '/rooms').then((data) => {
    if (myEpoch !== auth.epoch) return false;
    applyRoomList(Array.isArray(data.rooms) ? data.rooms : [], seq);
    // Fresh for the socket that is open, or for the first one (it opens right after).
    if (socketReady() || !socket.hasOpened) roomList.fresh = true;
    return true;
  }, () => false).finally(() => {
    if (roomList.syncing !== done) return;
    roomList.syncing = null;
    if (roomList.again && myEpoch === auth.epoch) { roomList.again = false; syncRooms(); }
  });
  roomList.syncing = done;
  return done;
}

const isEntry = (e) => !!e && typeof e.room === 'string' && validStoredRoom(e.room);

// The list as the server has it: new rooms come in, rooms no longer listed go (unless the
// user stream said otherwise after the list was read), the others take its numbers.
function applyRoomList(list, seq) {
  const listed = new Set();
  for (const e of list) {
    if (!isEntry(e)) continue;
    listed.add(e.room);
    const room = rooms.get(e.room);
    if (room && room.streamSeq > seq) continue; // a `room` frame is newer than this list
    applyEntry(e, seq);
  }
  for (const room of [...rooms.values()]) {
    if (room.member && !listed.has(room.name) && room.streamSeq <= seq) dropRoom(room);
  }
  renderNav();
  if (current) for (const room of rooms.values()) loadRoom(room); // at the start, startChat does
}

// A room's entry (the list, a `room` frame, a POST, PATCH or PUT answer). `seq`: the list's
// (see `applyRoomList`), whose `muted` a later `muted` frame or click outdates.
function applyEntry(e, seq = Infinity) {
  const room = addRoom(e.room);
  room.member = true;
  if (typeof e.muted === 'boolean' && room.mutedSeq <= seq) room.muted = e.muted;
  if (['public', 'private', 'dm'].includes(e.kind)) room.kind = e.kind;
  if (typeof e.topic === 'string') room.topic = e.topic;
  if (typeof e.archived === 'boolean') room.archived = e.archived;
  room.owner = typeof e.owner === 'string' ? e.owner : null;
  room.role = e.role === 'owner' ? 'owner' : 'member';
  room.polledOnline = Number(e.online) || 0;
  room.lastMessageAt = e.last_message_at || room.lastMessageAt;
  if (typeof e.read_cursor === 'string') {
    room.readAcked = maxCursor(room.readAcked, e.read_cursor);
    room.readSent = maxCursor(room.readSent, e.read_cursor);
    room.readCursor = maxCursor(room.readCursor, e.read_cursor);
  }
  // The server's counts, as of its read position; where the loaded messages cover it,
  // `recount` counts them instead (the same numbers, and they stay exact live).
  if (!covered(room) && Number.isFinite(e.unread)) {
    room.unread = Math.min(Math.max(e.unread, 0), COUNT_CAP);
    room.mentions = Math.min(Math.max(Number(e.mentions) || 0, 0), COUNT_CAP);
  }
  if (room.hidden && room.lastMessageAt && room.lastMessageAt > prefs.dismissed[room.name]) showDm(room);
  recount(room);
  if (room === current) { renderHeader(); renderMembers(); }
  return room;
}

// The user stream's `room`: added to a room (invited, a new DM, created or joined on another
// device), removed from one (or left it elsewhere), or its entry changed (the topic).
function onRoomFrame(f) {
  const e = f.room;
  if (!isEntry(e)) return;
  roomList.streamSeq++;
  if (f.op === 'removed') {
    const room = rooms.get(e.room);
    if (!room) return;
    room.streamSeq = roomList.streamSeq;
    const wasCurrent = room === current;
    dropRoom(room);
    if (wasCurrent) showAlert(`You are no longer in ${roomLabel(e.room)}.`);
    return;
  }
  const known = rooms.get(e.room);
  const wasMember = !!known && known.member;
  const room = applyEntry(e);
  room.streamSeq = roomList.streamSeq;
  if (!known) renderNav();
  // A new DM: its first message comes with its history, and is news (see `noticeMessage`).
  if (!known && isDm(room.name)) room.arrivedLive = true;
  loadRoom(room); // a new one: its history, then its join
  joinRoom(room);
  // Opened here a moment ago and ours only now: the list fetched before may have been refused.
  if (room === current && (!wasMember || !room.roster)) loadRoster(room, !wasMember);
}

// Every WAKE_CHECK_MS. A tick far too late means the machine slept: the socket may be dead
// without knowing it, so resume on a fresh one (which fetches the list again).
function tick() {
  const now = Date.now();
  const slept = now - lastTick > SLEEP_GAP_MS;
  lastTick = now;
  if (slept) auth.ensureFreshToken().then(restartSocket, () => {});
}

/* ----------------------------------------------------------------- dialogs */

/* ------------------------------------------------------------------ search */

const SEARCH_PAGE = 20;
const SEARCH_DEBOUNCE_MS = 250;
const FROM_RE = /(?:^|\s)from:@?([A-Za-z0-9_.-]{3,32})(?=\s|$)/i;
const search = { timer: null, seq: 0, params: null, before: null };

function openSearch() {
  if (!auth.session || ui.chatView.hidden) return;
  if (document.querySelector('dialog[open]') && !ui.searchDialog.open) return;
  setDrawer(null);
  closePopup({ focus: false });
  ui.searchScopeRoom.textContent = current ? `In ${roomLabel(current.name)}` : 'This room';
  ui.searchScopeRoom.disabled = !current;
  if (!ui.searchDialog.open) ui.searchDialog.showModal();
  ui.searchInput.focus();
  ui.searchInput.select();
}

// What the box says, as the API's parameters: `from:name` is taken out as `from`.
function searchParams() {
  let q = ui.searchInput.value;
  const params = {};
  const from = q.match(FROM_RE);
  if (from) {
    params.from = from[1];
    q = q.replace(FROM_RE, ' ');
  }
  params.q = q.trim();
  if (ui.searchScope.value === 'room' && current) params.room = current.name;
  return params;
}

function queueSearch() {
  clearTimeout(search.timer);
  search.timer = setTimeout(() => runSearch(), SEARCH_DEBOUNCE_MS);
}

// The first page for what the box says, or the next page of the last search (`more`).
async function runSearch({ more = false } = {}) {
  clearTimeout(search.timer);
  const params = more ? search.params : searchParams();
  if (!params || !params.q) {
    search.seq++;
    search.params = null;
    ui.searchResults.replaceChildren();
    ui.searchMore.hidden = true;
    ui.searchNote.textContent = params && params.from ? 'Add a word to search for.' : '';
    return;
  }
  const seq = ++search.seq;
  const myEpoch = auth.epoch;
  const q = new URLSearchParams({ ...params, limit: String(SEARCH_PAGE) });
  if (more && search.before) q.set('before', search.before);
  if (!more) ui.searchNote.textContent = 'Searching…';
  ui.searchMore.setAttribute('aria-disabled', 'true');
  let data;
  try {
    data = await api('GET', `/search?${q}`);
  } catch (err) {
    if (seq === search.seq && myEpoch === auth.epoch) ui.searchNote.textContent = `Could not search: ${err.message}`;
    return;
  } finally {
    ui.searchMore.setAttribute('aria-disabled', 'false');
  }
  if (seq !== search.seq || myEpoch !== auth.epoch) return; // a newer search, or another session
  const found = Array.isArray(data.results) ? data.results.filter((r) => r && typeof r.id === 'string' && typeof r.room === 'string') : [];
  search.params = params;
  search.before = found.length ? found[found.length - 1].cursor : null;
  const items = found.map(resultItem);
  if (more) ui.searchResults.append(...items);
  else ui.searchResults.replaceChildren(...items);
  ui.searchMore.hidden = !data.has_more;
  const shown = ui.searchResults.children.length;
  ui.searchNote.textContent = shown
    ? `${shown}${data.has_more ? '+' : ''} ${shown === 1 ? 'message' : 'messages'}`
    : 'No messages match.';
}

// The server's highlight is its text HTML-escaped with <mark> around matches. It is read
// here as just that (marks, and the five entities it writes), never given to innerHTML.
const ENTITIES = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'" };
const unescapeHtml = (text) => text.replace(/&(?:amp|lt|gt|quot|#39);/g, (e) => ENTITIES[e]);

function highlighted(html) {
  const out = document.createDocumentFragment();
  for (const part of String(html || '').split(/(<mark>[^<]*<\/mark>)/)) {
    const marked = /^<mark>([^<]*)<\/mark>$/.exec(part);
    if (marked) out.append(el('mark', '', unescapeHtml(marked[1])));
    else if (part) out.append(unescapeHtml(part));
  }
  return out;
}

function resultItem(r) {
  const li = el('li');
  const b = el('button', 'search-result');
  b.type = 'button';
  b.dataset.id = r.id;
  const when = new Date(r.created_at);
  const meta = el('span', 'search-meta');
  const time = el('time', '', `${dayLabel(when)} ${hhmm(when)}`);
  time.dateTime = r.created_at;
  meta.append(el('span', 'search-room', roomLabel(r.room)), el('span', 'search-author', String(r.author)), time);
  const text = el('span', 'search-text');
  text.append(highlighted(r.highlight));
  b.append(meta, text);
  b.addEventListener('click', () => openResult(r));
  li.append(b);
  return li;
}

// A result opens its room scrolled to the message, marked. If the page does not have it,
// its context comes (around=) above what the room shows, with a button for what is between.
async function openResult(r) {
  ui.searchDialog.close();
  const myEpoch = auth.epoch;
  const room = addRoom(r.room);
  openRoom(room);
  loadRoom(room);
  if (room.loading) await room.loading.catch(() => {});
  if (myEpoch !== auth.epoch || rooms.get(room.name) !== room || current !== room || !room.loaded) return;
  let msg = room.byId.get(r.id);
  if (!msg) {
    try {
      msg = await loadContext(room, r);
    } catch (err) {
      if (current === room) showAlert(`Could not open the message: ${err.message}`);
      return;
    }
  }
  if (current !== room) return;
  if (!msg || !msg.el) { showAlert('That message is gone.'); return; }
  for (const old of ui.list.querySelectorAll('.msg.is-found')) old.classList.remove('is-found');
  msg.el.classList.add('is-found');
  msg.el.scrollIntoView({ block: 'center' });
  lastScrollTop = ui.messages.scrollTop;
  flash(msg.el);
}

async function loadContext(room, r) {
  const q = new URLSearchParams({ around: r.cursor, limit: String(PAGE_SIZE) });
  const data = await api('GET', `/rooms/${encodeURIComponent(room.name)}/messages?${q}`);
  if (rooms.get(room.name) !== room) return null;
  const page = Array.isArray(data.messages) ? data.messages.filter((m) => m && typeof m.cursor === 'string') : [];
  if (room.gap) { room.gap.el.remove(); room.gap = null; }
  const below = room.msgs.length ? room.msgs[0].cursor : null;
  for (const m of page) addMessage(room, m);
  room.hasMore = !!data.has_more;
  const above = page.length ? page[page.length - 1].cursor : null;
  if (data.has_newer && below && above && above < below) {
    room.gap = { above, below, el: gapNode(room), loading: false };
    if (room === current) placeInTimeline(room.gap.el, above);
  }
  recount(room);
  if (room === current) renderHistoryState();
  return room.byId.get(r.id) || null;
}

function gapNode(room) {
  const li = el('li', 'gap');
  const b = el('button', 'btn btn-secondary btn-small', 'Load newer messages');
  b.type = 'button';
  b.addEventListener('click', () => fillGap(room));
  li.append(b);
  return li;
}

// The page just after the context; the gap closes when it reaches the newest page.
async function fillGap(room) {
  const gap = room.gap;
  if (!gap || gap.loading) return;
  gap.loading = true;
  const button = gap.el.firstChild;
  button.setAttribute('aria-disabled', 'true');
  button.textContent = 'Loading…';
  try {
    const q = new URLSearchParams({ after: gap.above, limit: String(PAGE_SIZE) });
    const data = await api('GET', `/rooms/${encodeURIComponent(room.name)}/messages?${q}`);
    if (room.gap !== gap || rooms.get(room.name) !== room) return;
    const page = Array.isArray(data.messages) ? data.messages.filter((m) => m && typeof m.cursor === 'string') : [];
    for (const m of page) addMessage(room, m);
    const last = page.length ? page[page.length - 1].cursor : null;
    if (!data.has_newer || !last || last >= gap.below) {
      gap.el.remove();
      room.gap = null;
    } else {
      gap.above = last;
      if (room === current) placeInTimeline(gap.el, last);
    }
    recount(room);
  } catch (err) {
    if (room === current) showAlert(`Could not load newer messages: ${err.message}`);
  } finally {
    gap.loading = false;
    button.setAttribute('aria-disabled', 'false');
    button.textContent = 'Load newer messages';
  }
}

function openCreate() {
  ui.createForm.reset();
  ui.createAlert.textContent = '';
  ui.createSubmit.disabled = false;
  setDrawer(null);
  ui.createDialog.showModal();
  ui.createName.focus();
}

// POST /rooms; the new room opens. (Its `room added` frame comes too, to every device.)
async function submitCreate() {
  const name = ui.createName.value.trim().replace(/^#/, '');
  const kind = ui.createForm.elements.kind.value === 'private' ? 'private' : 'public';
  const topic = ui.createTopic.value.trim();
  ui.createAlert.textContent = '';
  if (!ROOM_RE.test(name)) {
    ui.createAlert.textContent = 'Room names are 1 to 64 letters, digits, dots, dashes or underscores.';
    ui.createName.focus();
    return;
  }
  ui.createSubmit.disabled = true;
  const myEpoch = auth.epoch;
  try {
    const body = { name, kind };
    if (topic) body.topic = topic;
    const entry = await api('POST', '/rooms', { body });
    if (myEpoch !== auth.epoch) return;
    const room = applyEntry(isEntry(entry) ? entry : { ...entry, room: name, kind, topic, role: 'owner', owner: auth.session.username });
    ui.createDialog.close();
    openRoom(room);
    loadRoom(room);
    ui.input.focus();
  } catch (err) {
    if (myEpoch !== auth.epoch) return;
    ui.createAlert.textContent = err.code === 'room_exists'
      ? `A room called “${name}” already exists. Pick another name, or find it in Browse rooms.`
      : err.message;
    (err.field === 'topic' ? ui.createTopic : ui.createName).focus();
  } finally {
    ui.createSubmit.disabled = false;
  }
}

// The public rooms: their topics, how many are in them, and whether I am.
async function openBrowse() {
  setDrawer(null);
  ui.browseList.replaceChildren();
  ui.browseNote.textContent = 'Loading public rooms…';
  ui.browseDialog.showModal();
  ui.browseClose.focus();
  const myEpoch = auth.epoch;
  let list;
  try {
    const data = await api('GET', '/rooms/public?limit=200');
    list = Array.isArray(data.rooms) ? data.rooms.filter(isEntry) : [];
  } catch (err) {
    if (myEpoch === auth.epoch) ui.browseNote.textContent = `Could not load the rooms: ${err.message}`;
    return;
  }
  if (myEpoch !== auth.epoch || !ui.browseDialog.open) return;
  ui.browseNote.textContent = list.length ? `${list.length} public ${list.length === 1 ? 'room' : 'rooms'}` : 'No public rooms yet.';
  ui.browseList.replaceChildren(...list.map((r) => {
    const li = el('li', 'browse-item');
    li.dataset.room = r.room;
    const joined = !!r.joined || (rooms.has(r.room) && rooms.get(r.room).member);
    const text = el('div', 'browse-text');
    const members = Number(r.members) || 0;
    text.append(
      el('span', 'browse-name', `# ${r.room}`),
      el('span', 'browse-meta', `${members} ${members === 1 ? 'member' : 'members'}${joined ? ' · joined' : ''}`),
    );
    if (r.topic) text.append(el('span', 'browse-topic', String(r.topic)));
    const b = el('button', `btn btn-small ${joined ? 'btn-quiet' : 'btn-secondary'}`, joined ? 'Open' : 'Join');
    b.type = 'button';
    b.setAttribute('aria-label', `${joined ? 'Open' : 'Join'} # ${r.room}`);
    b.addEventListener('click', () => {
      // Joining is the socket's `join` (after the history page): it makes the membership.
      ui.browseDialog.close();
      const room = addRoom(r.room);
      openRoom(room);
      loadRoom(room);
      ui.input.focus();
    });
    li.append(text, b);
    return li;
  }));
}

function openTopic() {
  const room = current;
  if (!room || !isOwner(room)) return;
  ui.topicForm.reset();
  ui.topicAlert.textContent = '';
  ui.topicRoom.textContent = shortLabel(room);
  ui.topicInput.value = room.topic;
  ui.topicDialog.showModal();
  ui.topicInput.focus();
  ui.topicInput.select();
}

async function submitTopic() {
  const room = current;
  const topic = ui.topicInput.value.trim();
  if ([...topic].length > 250) { ui.topicAlert.textContent = 'A topic can be at most 250 characters.'; return; }
  ui.topicSave.disabled = true;
  try {
    const entry = await api('PATCH', `/rooms/${encodeURIComponent(room.name)}`, { body: { topic } });
    if (rooms.get(room.name) === room) applyEntry(isEntry(entry) ? entry : { ...entry, room: room.name, topic });
    ui.topicDialog.close();
    ui.topicEdit.focus();
  } catch (err) {
    ui.topicAlert.textContent = err.message;
    ui.topicInput.focus();
  } finally {
    ui.topicSave.disabled = false;
  }
}

/* ---------------------------------------------------------- notifications */

// What reaches the person while they are not looking. The tab's title counts the messages
// that came while the tab was hidden. Per user on this browser (`banter.notify.<user>`): a
// desktop notification (on by default, once the browser allows them) and a sound (off by
// default) for direct messages and mentions while the tab is hidden. Web Push, for when no
// tab is connected at all, is per browser: its one subscription belongs to the account that
// switched it on last (as on the server, where an endpoint has one owner), kept in
// `banter.push.owner`. The browser is asked for permission only when the person switches
// one of them on, never on its own.
const PUSH_OWNER_KEY = 'banter.push.owner';
const NOTIFY_BODY_CHARS = 180;
const notify = {
  hidden: 0,               // messages from others that came while the tab was hidden
  alerted: new Set(),      // ids notified here (a message and its `mention` frame: once)
  open: new Set(),         // desktop notifications shown by this page, closed on return
  busy: null,              // push being switched 'on' or 'off'
  server: null,            // push on the server: null unknown, true, false (404)
  pushError: '',
  audio: null,             // the AudioContext of the chime, made on a click
};

function notifyPrefs() {
  const p = (auth.session && load(userKey('notify'))) || {};
  return {
    desktop: typeof p.desktop === 'boolean' ? p.desktop : true,
    sound: typeof p.sound === 'boolean' ? p.sound : false,
  };
}

const saveNotifyPrefs = (p) => store(userKey('notify'), p);
const notificationsSupported = () => 'Notification' in window;
const pushSupported = () => notificationsSupported() && 'serviceWorker' in navigator && 'PushManager' in window;
const permission = () => (notificationsSupported() ? Notification.permission : 'unsupported');
const pushOwner = () => { const o = load(PUSH_OWNER_KEY); return typeof o === 'string' ? o : null; };
const pushIsMine = () => !!auth.session && !!pushOwner() && isMe(pushOwner());

// The server's key (base64url, an uncompressed P-256 point) as the bytes subscribe() takes.
function base64UrlBytes(text) {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((text.length + 3) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function sameBytes(a, b) {
  if (!a || !b) return false;
  const x = new Uint8Array(a);
  const y = new Uint8Array(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

async function pushRegistration() {
  if (!('serviceWorker' in navigator)) return null;
  try { return (await navigator.serviceWorker.getRegistration('/')) || null; } catch { return null; }
}

// Switched on: the browser's permission (asked now, after the click), the service worker,
// the server's key, the browser's subscription, and the server told where to push.
async function enablePush() {
  if (!pushSupported()) throw new Error('This browser cannot receive push notifications.');
  const answer = await Notification.requestPermission();
  if (answer !== 'granted') {
    throw new Error(answer === 'denied'
      ? 'Notifications are blocked for this site. Allow them in the browser’s site settings, then switch this on again.'
      : 'The browser did not allow notifications. Switch this on again to be asked once more.');
  }
  let key;
  try {
    key = (await api('GET', '/push/key')).public_key;
    notify.server = true;
  } catch (err) {
    if (err.status === 404) { notify.server = false; throw new Error('Push notifications are switched off on this server.'); }
    throw err;
  }
  if (typeof key !== 'string' || !key) throw new Error('The server sent no push key.');
  const keyBytes = base64UrlBytes(key);
  let reg;
  try {
    await navigator.serviceWorker.register('/sw.js');
    reg = await navigator.serviceWorker.ready;
  } catch (err) {
    throw new Error(`The service worker could not start: ${err.message || err.name}`);
  }
  let sub = await reg.pushManager.getSubscription();
  // Made for another server key (the server's changed): the push service would refuse it.
  if (sub && sub.options && sub.options.applicationServerKey && !sameBytes(sub.options.applicationServerKey, keyBytes)) {
    await sub.unsubscribe().catch(() => {});
    sub = null;
  }
  if (!sub) {
    try {
      sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes });
    } catch (err) {
      throw new Error(`The browser could not subscribe to push: ${err.message || err.name}`);
    }
  }
  await api('POST', '/push/subscriptions', { body: sub.toJSON() });
  if (auth.session) store(PUSH_OWNER_KEY, auth.session.username);
}

// Switched off, or logging out: the browser's subscription goes, and the server forgets it
// (if that call fails, the push service answers the next push with 410 and it is forgotten).
async function disablePush() {
  const reg = await pushRegistration();
  const sub = reg && reg.pushManager ? await reg.pushManager.getSubscription().catch(() => null) : null;
  store(PUSH_OWNER_KEY, null);
  if (!sub) return;
  const { endpoint } = sub;
  await sub.unsubscribe().catch(() => {});
  await api('DELETE', '/push/subscriptions', { body: { endpoint } });
}

// On each start of a chat whose person owns this browser's pushes: the server hears of the
// subscription again (it may have dropped it), or, if the browser lost it, nobody owns it.
async function resyncPush() {
  if (!pushIsMine() || !pushSupported() || permission() !== 'granted') return;
  const myEpoch = auth.epoch;
  const reg = await pushRegistration();
  const sub = reg ? await reg.pushManager.getSubscription().catch(() => null) : null;
  if (myEpoch !== auth.epoch) return;
  if (!sub) { store(PUSH_OWNER_KEY, null); return; }
  await api('POST', '/push/subscriptions', { body: sub.toJSON() }).catch(() => {});
}

function openNotify() {
  setDrawer(null);
  notify.pushError = '';
  renderNotify();
  ui.notifyDialog.showModal();
  ui.notifyClose.focus();
  checkPush();
}

// Whether the server has push at all, and whether this browser's subscription is still there.
async function checkPush() {
  if (!pushSupported()) return;
  const myEpoch = auth.epoch;
  if (notify.server === null) {
    try { await api('GET', '/push/key'); notify.server = true; } catch (err) { if (err.status === 404) notify.server = false; }
  }
  if (pushIsMine()) {
    const reg = await pushRegistration();
    const sub = reg ? await reg.pushManager.getSubscription().catch(() => null) : null;
    if (!sub && !notify.busy) store(PUSH_OWNER_KEY, null);
  }
  if (myEpoch === auth.epoch) renderNotify();
}

function setNote(node, text, tone) {
  node.textContent = text;
  node.dataset.tone = tone;
}

function renderNotify() {
  if (!auth.session) return;
  const p = notifyPrefs();
  const perm = permission();
  const denied = perm === 'denied';
  if (perm === 'unsupported') {
    setNote(ui.notifyStatus, 'This browser does not show notifications; the tab’s title still counts new messages.', 'info');
  } else if (denied) {
    setNote(ui.notifyStatus, 'Notifications are blocked for this site. To get them, allow notifications in the browser’s site settings.', 'error');
  } else if (perm === 'default') {
    setNote(ui.notifyStatus, 'The browser asks for your permission when you switch one of these on.', 'info');
  } else {
    setNote(ui.notifyStatus, '', 'info');
  }
  ui.notifyStatus.classList.toggle('notice-error', denied);
  ui.notifyStatus.classList.toggle('notice-info', !denied);

  const owner = pushOwner();
  ui.notifyPush.checked = notify.busy ? notify.busy === 'on' : pushIsMine() && perm === 'granted';
  ui.notifyPush.disabled = notify.busy || !pushSupported() || notify.server === false || denied;
  if (notify.busy) setNote(ui.notifyPushNote, notify.busy === 'on' ? 'Switching on…' : 'Switching off…', 'info');
  else if (notify.pushError) setNote(ui.notifyPushNote, notify.pushError, 'error');
  else if (!pushSupported()) setNote(ui.notifyPushNote, 'This browser cannot receive push notifications.', 'info');
  else if (notify.server === false) setNote(ui.notifyPushNote, 'Push notifications are switched off on this server.', 'info');
  else if (owner && !isMe(owner)) setNote(ui.notifyPushNote, `This browser’s pushes go to ${owner}; switching them on moves them to you.`, 'info');
  else if (ui.notifyPush.checked) setNote(ui.notifyPushNote, 'On for this browser. Logging out switches it off.', 'info');
  else setNote(ui.notifyPushNote, '', 'info');

  ui.notifyDesktop.checked = p.desktop && perm === 'granted';
  ui.notifyDesktop.disabled = !notificationsSupported() || denied;
  ui.notifySound.checked = p.sound;
}

async function togglePush() {
  const on = ui.notifyPush.checked;
  notify.busy = on ? 'on' : 'off';
  notify.pushError = '';
  renderNotify();
  const myEpoch = auth.epoch;
  try {
    if (on) await enablePush(); else await disablePush();
  } catch (err) {
    if (myEpoch === auth.epoch) notify.pushError = err.message || String(err);
  } finally {
    notify.busy = null;
    if (myEpoch === auth.epoch) renderNotify();
  }
}

async function toggleDesktop() {
  const on = ui.notifyDesktop.checked;
  if (on && permission() === 'default') await Notification.requestPermission();
  if (!auth.session) return;
  const p = notifyPrefs();
  p.desktop = on;
  saveNotifyPrefs(p);
  renderNotify();
}

function toggleSound() {
  const p = notifyPrefs();
  p.sound = ui.notifySound.checked;
  saveNotifyPrefs(p);
  if (p.sound) chime(); // a sample, and the click lets the page play sound later
  renderNotify();
}

// A short two-note chime, made with WebAudio (no sound file).
function chime() {
  try {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    const ctx = notify.audio || (notify.audio = new Ctx());
    if (ctx.state === 'suspended') ctx.resume().catch(() => {});
    const at = ctx.currentTime + 0.01;
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = 'sine';
    osc.frequency.setValueAtTime(880, at);
    osc.frequency.setValueAtTime(1318.5, at + 0.09);
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.12, at + 0.015);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.3);
    osc.connect(gain).connect(ctx.destination);
    osc.start(at);
    osc.stop(at + 0.32);
  } catch { /* no sound here */ }
}

// A message from someone else that came live: counted in the title while the tab is hidden,
// and, a direct message or a mention of me, notified (desktop, sound) as the person chose.
// A muted room counts and notifies only what mentions me.
function noticeMessage(room, msg) {
  if (pageVisible() || !counts(room, msg)) return;
  if (room.muted && !mentionsMe(msg)) return;
  notify.hidden++;
  updateUnreadSummary();
  alertFor(room, msg);
}

function alertFor(room, msg) {
  if (pageVisible() || isMe(msg.author) || notify.alerted.has(msg.id)) return;
  const dm = isDm(room.name);
  if ((room.muted || !dm) && !mentionsMe(msg)) return;
  notify.alerted.add(msg.id);
  const p = notifyPrefs();
  if (p.sound) chime();
  if (!p.desktop || permission() !== 'granted') return;
  const text = msg.body ? msg.body.replace(/\s+/g, ' ').trim() : (msg.attachments && msg.attachments.length ? 'Sent a file' : 'New message');
  const name = room.name;
  try {
    const n = new Notification(dm ? msg.author : `${msg.author} in ${shortLabel(room).replace(/^# /, '#')}`, {
      body: text.length > NOTIFY_BODY_CHARS ? `${text.slice(0, NOTIFY_BODY_CHARS)}…` : text,
      tag: `room:${name}`,
    });
    notify.open.add(n);
    n.addEventListener('close', () => notify.open.delete(n));
    n.addEventListener('click', () => {
      window.focus();
      n.close();
      goToRoom(name);
    });
  } catch { /* only a service worker may show them here (Android): the title still counts */ }
}

// Back in the tab: the count and the notifications of this page are done with.
function noticeVisible() {
  notify.hidden = 0;
  for (const n of notify.open) n.close();
  notify.open.clear();
  if (auth.session) updateUnreadSummary();
}

function resetNotify() {
  notify.hidden = 0;
  notify.alerted.clear();
  for (const n of notify.open) n.close();
  notify.open.clear();
  notify.pushError = '';
  notify.server = null;
}

// A room asked for by a link (`/chat?room=…`, what a push's click opens) or by the service
// worker (`open-room`): opened, joining it if it is public and new to me.
function goToRoom(text) {
  if (!auth.session || typeof text !== 'string') return;
  let name;
  try { name = parseRoomInput(text); } catch { return; } // not a room of mine (another person's DM)
  if (ui.notifyDialog.open) ui.notifyDialog.close();
  const room = addRoom(name);
  openRoom(room);
  loadRoom(room);
  setDrawer(null);
  ui.input.focus();
}

// The room of the page's address, once: the address is then plain /chat, so a reload opens
// the room the person was in last.
function takeLinkedRoom() {
  const params = new URLSearchParams(location.search);
  const name = params.get('room');
  if (name === null) return null;
  params.delete('room');
  const rest = params.toString();
  try { history.replaceState(history.state, '', `${location.pathname}${rest ? `?${rest}` : ''}${location.hash}`); } catch { /* keep it */ }
  try { return parseRoomInput(name); } catch { return null; }
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

// Enter logs in, or on an invite link's page registers (renderRegistration swaps the buttons).
ui.authForm.addEventListener('submit', (e) => {
  e.preventDefault();
  submitAuth(ui.registerBtn.type === 'submit' && !ui.registerBtn.hidden ? 'register' : 'login');
});
ui.registerBtn.addEventListener('click', () => { if (ui.registerBtn.type === 'button') submitAuth('register'); });
ui.loginBtn.addEventListener('click', () => { if (ui.loginBtn.type === 'button') submitAuth('login'); });
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

ui.createOpen.addEventListener('click', openCreate);
ui.createCancel.addEventListener('click', () => ui.createDialog.close());
ui.createForm.addEventListener('submit', (e) => { e.preventDefault(); submitCreate(); });
ui.browseOpen.addEventListener('click', openBrowse);
ui.searchOpen.addEventListener('click', openSearch);
ui.searchClose.append(icon('close'));
ui.searchClose.addEventListener('click', () => ui.searchDialog.close());
ui.searchInput.addEventListener('input', queueSearch);
ui.searchScope.addEventListener('change', () => runSearch());
ui.searchForm.addEventListener('submit', (e) => { e.preventDefault(); runSearch(); });
ui.searchMore.addEventListener('click', () => {
  if (ui.searchMore.getAttribute('aria-disabled') !== 'true') runSearch({ more: true });
});
// Down from the box goes to the results.
ui.searchInput.addEventListener('keydown', (e) => {
  if (e.key === 'ArrowDown') {
    const first = ui.searchResults.querySelector('button');
    if (first) { e.preventDefault(); first.focus(); }
  }
});
ui.searchResults.addEventListener('keydown', (e) => {
  if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
  const all = [...ui.searchResults.querySelectorAll('button')];
  const at = all.indexOf(document.activeElement);
  if (at < 0) return;
  e.preventDefault();
  const next = all[at + (e.key === 'ArrowDown' ? 1 : -1)];
  if (next) next.focus(); else if (e.key === 'ArrowUp') ui.searchInput.focus();
});
ui.browseClose.append(icon('close'));
ui.browseClose.addEventListener('click', () => ui.browseDialog.close());
ui.topicEdit.addEventListener('click', openTopic);
ui.muteToggle.addEventListener('click', toggleMute);
ui.notifyOpen.append(icon('bell'));
ui.notifyClose.append(icon('close'));
ui.notifyOpen.addEventListener('click', openNotify);
ui.notifyClose.addEventListener('click', () => ui.notifyDialog.close());
ui.notifyPush.addEventListener('change', togglePush);
ui.notifyDesktop.addEventListener('change', () => { toggleDesktop().catch(() => renderNotify()); });
ui.notifySound.addEventListener('change', toggleSound);
// A push's notification clicked while a window of the app is open: the service worker asks
// that window to open the room.
if ('serviceWorker' in navigator) {
  navigator.serviceWorker.addEventListener('message', (e) => {
    const d = e.data;
    // The worker asks who is signed in here, to click through to a window of the push's user.
    if (d && d.type === 'who' && e.ports && e.ports[0]) { e.ports[0].postMessage({ user: auth.session ? auth.session.username : null }); return; }
    if (!d || d.type !== 'open-room' || typeof d.room !== 'string') return;
    // Another person's push (their window was not found): not for this tab.
    if (auth.session && typeof d.user === 'string' && d.user && !isMe(d.user)) return;
    if (auth.session) goToRoom(d.room);
    else {
      // Signed out here: the room opens once someone signs in (if it is theirs).
      try { history.replaceState(history.state, '', `/chat?room=${encodeURIComponent(d.room)}`); } catch { /* no link */ }
    }
  });
  navigator.serviceWorker.startMessages();
}
ui.topicCancel.addEventListener('click', () => ui.topicDialog.close());
ui.topicForm.addEventListener('submit', (e) => { e.preventDefault(); submitTopic(); });
ui.inviteForm.addEventListener('submit', (e) => { e.preventDefault(); inviteMember(); });
ui.leaveRoom.addEventListener('click', () => { if (current) leaveRoom(current); });

ui.loadOlder.addEventListener('click', loadOlder);
ui.jump.addEventListener('click', () => { scrollToBottom(); ui.input.focus(); });
ui.messages.addEventListener('scroll', () => {
  const top = ui.messages.scrollTop;
  // Only a scroll upwards near the top fetches more, not our own jumps to the bottom.
  if (top < lastScrollTop && top < 150) loadOlder();
  lastScrollTop = top;
  if (nearBottom()) ui.jump.hidden = true;
}, { passive: true });

// Registered first: an open @-list takes Enter, Tab, the arrows and Escape.
const mentionPickers = [
  mentionPicker(ui.input, $('mention-list')),
  mentionPicker(ui.threadInput, $('thread-mention-list')),
];

ui.attachButton.addEventListener('click', () => ui.attachInput.click());
ui.attachInput.addEventListener('change', () => {
  addFiles([...ui.attachInput.files]);
  ui.attachInput.value = '';
});
// A pasted image (a screenshot) or file joins the tray; pasted text stays text.
ui.input.addEventListener('paste', (e) => {
  const files = [...(e.clipboardData?.files || [])];
  if (files.length) {
    e.preventDefault();
    addFiles(files);
  }
});
// Files dropped anywhere on the conversation.
for (const type of ['dragenter', 'dragover']) {
  ui.messages.parentElement.addEventListener(type, (e) => {
    if ([...(e.dataTransfer?.types || [])].includes('Files')) {
      e.preventDefault();
      ui.messages.parentElement.classList.add('is-dropping');
    }
  });
}
ui.messages.parentElement.addEventListener('dragleave', (e) => {
  if (!e.relatedTarget || !ui.messages.parentElement.contains(e.relatedTarget)) {
    ui.messages.parentElement.classList.remove('is-dropping');
  }
});
ui.messages.parentElement.addEventListener('drop', (e) => {
  ui.messages.parentElement.classList.remove('is-dropping');
  if (e.dataTransfer?.files?.length) {
    e.preventDefault();
    addFiles([...e.dataTransfer.files]);
  }
});
ui.viewerClose.addEventListener('click', () => ui.viewer.close());
ui.viewer.addEventListener('close', () => {
  ui.viewerImage.removeAttribute('src');
  if (viewerUrl) URL.revokeObjectURL(viewerUrl);
  viewerUrl = null;
});
ui.viewer.addEventListener('click', (e) => { if (e.target === ui.viewer) ui.viewer.close(); });

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
ui.membersToggle.prepend(icon('people'));
ui.sidebarToggle.addEventListener('click', () => openDrawer('sidebar'));
ui.membersToggle.addEventListener('click', () => openDrawer('members'));
ui.sidebarClose.addEventListener('click', closeDrawer);
ui.membersClose.addEventListener('click', closeDrawer);
ui.scrim.addEventListener('click', closeDrawer);

const typingInto = (t) => !!t && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName));

document.addEventListener('keydown', (e) => {
  if (ui.chatView.hidden) return;
  // Ctrl+K (⌘K) anywhere, or / when not typing, opens search.
  if (((e.ctrlKey || e.metaKey) && !e.altKey && e.key.toLowerCase() === 'k') ||
      (e.key === '/' && !e.ctrlKey && !e.metaKey && !e.altKey && !typingInto(e.target))) {
    e.preventDefault();
    openSearch();
    return;
  }
  // Escape closes the innermost thing: a drawer, else the thread panel.
  if (e.key === 'Escape' && !e.defaultPrevented && !document.querySelector('dialog[open]')) {
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

// Tabs of one user share its session: auth follows their refreshes and logout (and tells
// sessionOver). Here, the browser's push owner.
window.addEventListener('storage', (e) => {
  if (e.key === PUSH_OWNER_KEY && ui.notifyDialog.open) renderNotify();
});

document.addEventListener('visibilitychange', () => {
  if (pageVisible()) noticeVisible();
  if (!auth.session || !pageVisible()) return;
  auth.ensureFreshToken().catch(() => {});
  if (current) markRead(current);
});
window.addEventListener('focus', () => { if (auth.session && current) markRead(current); });
// The browser knows about the network before the socket does.
window.addEventListener('offline', () => {
  if (!auth.session) return;
  dropSocket();
  setStatus('offline');
});
window.addEventListener('online', () => {
  if (!auth.session || socket.ws) return;
  socket.attempts = 0;
  connect();
});

/* -------------------------------------------------------------------- boot */

(async function boot() {
  await auth.configure();
  migrateLegacySession();
  let user = tabUser();
  // A new window opened by a push's click (/chat?room=…) belongs to nobody yet: it is the
  // person this browser's pushes go to, if they are signed in here.
  if (!user && new URLSearchParams(location.search).has('room') && pushOwner() && readSession(pushOwner())) user = pushOwner();
  const s = user ? readSession(user) : null;
  // An invite link is for making an account: the form, even in a tab that has a session
  // (which it offers with "Continue as").
  if (s && !invite) {
    auth.use(s);
    startChat();
  } else {
    await fetchRegistration();
    showAuth();
  }
}());
