/*
 * banter — the admin page (/admin).
 *
 * Plain JS, no build step, under the same strict CSP as the chat: everything is wired with
 * addEventListener, all text from the server goes in with textContent, and nothing sets an
 * inline style (state shows through classes and the `hidden` attribute).
 *
 * Outline:
 *   session  — the chat's own stored session, through session.js (the module both pages use):
 *              which user this tab is, its tokens, refreshed under the same Web Lock as the
 *              chat's tabs, so that a rotating refresh token is never used twice. Nothing here
 *              logs in: no session, or not an admin, and the page says so with a link back to
 *              the chat.
 *   http     — session.js's JSON API (a 401 refreshes once, 403 `account_disabled` signs the
 *              session out); 403 `forbidden` on an admin route is the refusal.
 *   gate     — what shows instead of the page: checking, choose an account, the refusals.
 *   sections — tabs (arrow keys, Home/End): live figures (polled every 5 s while the page is
 *              visible), users, rooms, invites, registration, the audit log.
 *   dialogs  — every destructive action asks first in a <dialog> (Escape cancels); purging a
 *              user's messages counts them (a dry run) before it asks.
 */
import { TabSession, readSession, storedSessions, tabUser } from './session.js';

const STATS_EVERY_MS = 5000;
const SEARCH_DEBOUNCE_MS = 250;
const PAGE_SIZE = 50;
const STATUS_MS = 10000;
const DEACTIVATED = 'Your account has been deactivated. Ask an admin to reactivate it.';
const MODES = {
  open: 'open to everyone',
  invite: 'invite-only',
  closed: 'closed',
};

const $ = (id) => document.getElementById(id);
const ui = {
  gate: $('gate'), gateTitle: $('gate-title'), gateText: $('gate-text'), gateAccounts: $('gate-accounts'),
  gateAccountList: $('gate-account-list'), gateLink: $('gate-link'),
  view: $('admin-view'), meName: $('me-name'), tablist: $('tabs'),
  status: $('admin-status'), alert: $('admin-alert'),
  statsAt: $('stats-at'), statConnections: $('stat-connections'), statConnectionsNote: $('stat-connections-note'),
  statRate: $('stat-rate'), statLag: $('stat-lag'), statLagNote: $('stat-lag-note'), statLimited: $('stat-limited'),
  gatewayList: $('gateway-list'), statsNote: $('stats-note'),
  userSearch: $('user-search'), userQ: $('user-q'), usersNote: $('users-note'), userList: $('user-list'), usersMore: $('users-more'),
  roomSearch: $('room-search'), roomQ: $('room-q'), roomsNote: $('rooms-note'), roomList: $('room-list'), roomsMore: $('rooms-more'),
  invitesMode: $('invites-mode'), inviteForm: $('invite-form'), inviteUses: $('invite-uses'), inviteExpiry: $('invite-expiry'),
  inviteCreate: $('invite-create'), inviteNew: $('invite-new'), inviteLink: $('invite-link'), inviteCopy: $('invite-copy'),
  inviteList: $('invite-list'), invitesNote: $('invites-note'),
  registrationForm: $('registration-form'), registrationLocked: $('registration-locked'),
  registrationModes: $('registration-modes'), registrationSave: $('registration-save'),
  auditList: $('audit-list'), auditNote: $('audit-note'), auditMore: $('audit-more'), auditRefresh: $('audit-refresh'),
  confirm: $('confirm'), confirmTitle: $('confirm-title'), confirmText: $('confirm-text'), confirmOk: $('confirm-ok'),
  confirmCancel: $('confirm-cancel'),
  purge: $('purge-dialog'), purgeForm: $('purge-form'), purgeTitle: $('purge-title'), purgeText: $('purge-text'),
  purgeFrom: $('purge-from'), purgeTo: $('purge-to'), purgeResult: $('purge-result'), purgeAlert: $('purge-alert'),
  purgeCancel: $('purge-cancel'), purgeCount: $('purge-count'), purgeOk: $('purge-ok'),
};
const tabs = [...ui.tablist.querySelectorAll('[role="tab"]')];

/* ------------------------------------------------------------------ state */

// The session this page uses (auth.session, as the chat keeps it, or null) and its
// generation (auth.epoch: bumped when the page starts or stops using a session).
const auth = new TabSession({
  onSignedOut: (reason) => sessionOver(reason),
  // No session here yet: the chat's tabs signed in or out, so whom to offer changed.
  onStored: () => { if (!ui.gateAccounts.hidden) offerAccounts(); },
});
let statusTimer = null;
let section = null;               // the tab on screen
const stats = { timer: null, inFlight: 0 };   // inFlight: the epoch whose poll is out
// A searchable list: the query, the request in flight (seq), where the next page starts.
const users = { q: '', seq: 0, after: null, timer: null };
const roomsList = { q: '', seq: 0, after: null, timer: null };
const audit = { seq: 0, before: null };
const invites = { seq: 0 };
let settings = null;              // {registration, registration_locked}
// The purge dialog: whose messages, the range counted and how many (null until counted).
const purge = { user: null, count: null, seq: 0 };

/* ---------------------------------------------------------------- helpers */

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

// The colour follows the name, as in the chat, so a person looks the same in both.
function avatar(name) {
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  const node = el('span', `avatar hue-${hash % 8}`, (name[0] || '?').toUpperCase());
  node.setAttribute('aria-hidden', 'true');
  return node;
}

function badge(text, tone = '') {
  return el('span', `admin-badge${tone ? ` badge-${tone}` : ''}`, text);
}

// A button in a list row: the visible word, and a name that says which row (screen readers
// hear "Deactivate bob", not five "Deactivate"s). `kind` finds it again after a repaint.
function rowButton(text, label, kind, onClick, className = 'btn-secondary') {
  const b = el('button', `btn btn-small ${className}`, text);
  b.type = 'button';
  b.setAttribute('aria-label', label);
  b.dataset.kind = kind;
  b.addEventListener('click', () => { if (b.getAttribute('aria-disabled') !== 'true') onClick(b); });
  return b;
}

const plural = (n, one, many = `${one}s`) => `${n.toLocaleString()} ${n === 1 ? one : many}`;
const enc = encodeURIComponent;
const isMe = (name) => !!auth.session && String(name).toLowerCase() === auth.session.username.toLowerCase();

function when(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return '—';
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

function day(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return '—';
  return d.toLocaleDateString(undefined, { dateStyle: 'medium' });
}

function timeEl(iso, text = when(iso)) {
  const t = el('time', '', text);
  if (iso) t.dateTime = iso;
  t.title = when(iso);
  return t;
}

// "in 3 days", "2 hours ago": for expiries.
function relative(iso) {
  const ms = new Date(iso).getTime() - Date.now();
  if (Number.isNaN(ms)) return '';
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  const abs = Math.abs(ms);
  for (const [unit, size] of [['day', 86400000], ['hour', 3600000], ['minute', 60000]]) {
    if (abs >= size) return rtf.format(Math.round(ms / size), unit);
  }
  return rtf.format(Math.round(ms / 1000), 'second');
}

function number(n, digits = 0) {
  return Number.isFinite(n) ? n.toLocaleString(undefined, { maximumFractionDigits: digits }) : '—';
}

/* -------------------------------------------------------------------- http */

// session.js's JSON API; a 403 `forbidden` from an admin route is the refusal: not an admin.
async function api(method, path, opts) {
  const myEpoch = auth.epoch;
  try {
    return await auth.api(method, path, opts);
  } catch (err) {
    if (err.status === 403 && err.code === 'forbidden' && path.startsWith('/admin/') && auth.session &&
      myEpoch === auth.epoch) notAdmin();
    throw err;
  }
}

const authApi = (method, path, opts) => auth.authApi(method, path, opts);

/* ---------------------------------------------------------------- session */

// The session is over (see TabSession): the gate says so. Deactivated, its tokens go, as
// in the chat; otherwise the chat's tabs keep them.
function sessionOver(reason) {
  if (reason === 'deactivated') deactivated();
  else if (reason === 'logged-out' || reason === 'deactivated-elsewhere') signedOut('You were logged out in another tab.');
  else signedOut('Your session has ended. Sign in again, then come back to this page.');
}

// Stops using the session here (the chat's tabs keep it unless `drop`): no timers, no data
// left on the page, dialogs closed.
function leave({ drop = false } = {}) {
  auth.end({ keepStored: !drop });
  clearTimeout(stats.timer);
  clearTimeout(users.timer);
  clearTimeout(roomsList.timer);
  settings = null;
  for (const d of [ui.confirm, ui.purge]) if (d.open) d.close();
  for (const list of [ui.gatewayList, ui.userList, ui.roomList, ui.inviteList, ui.auditList]) list.replaceChildren();
  for (const node of [ui.usersNote, ui.roomsNote, ui.statsAt, ui.status, ui.alert]) node.textContent = '';
  ui.inviteLink.value = '';
  ui.inviteNew.hidden = true;
  ui.view.hidden = true;
}

function signedOut(text) {
  leave();
  showGate({ title: 'Signed out', text, link: { text: 'Sign in', href: '/' } });
}

function notAdmin() {
  const user = auth.session ? auth.session.username : '';
  leave();
  showGate({
    title: 'Admins only',
    text: `This page is for banter’s admins${user ? `, and ${user} is not one` : ''}. Ask an admin if you need something changed.`,
    link: { text: 'Back to chat', href: '/' },
  });
}

// As in the chat: the tokens go (like a logout); the sign-in page says why (auth.deactivated()
// has told the other tabs).
function deactivated() {
  leave({ drop: true });
  showGate({ title: 'Account deactivated', text: DEACTIVATED, link: { text: 'Back to banter', href: '/' } });
}

/* -------------------------------------------------------------------- gate */

function showGate({ title, text, link = null, accounts = null }) {
  ui.view.hidden = true;
  ui.gate.hidden = false;
  document.title = `${title} · banter`;
  ui.gateTitle.textContent = title;
  ui.gateText.textContent = text;
  ui.gateAccounts.hidden = !accounts;
  ui.gateAccountList.replaceChildren(...(accounts || []).map((s) => {
    const li = el('li');
    const b = el('button', 'btn btn-secondary account-btn');
    b.type = 'button';
    b.append(avatar(s.username), el('span', 'account-label', `Continue as ${s.username}`));
    b.addEventListener('click', () => {
      const chosen = readSession(s.username);
      if (chosen) begin(chosen); else offerAccounts();
    });
    li.append(b);
    return li;
  }));
  ui.gateLink.hidden = !link;
  if (link) {
    ui.gateLink.textContent = link.text;
    ui.gateLink.href = link.href;
  }
  const first = ui.gateAccountList.querySelector('button') || (link ? ui.gateLink : null);
  if (first) first.focus();
}

// This tab is nobody's yet (opened on its own): the sessions of this browser, as the chat
// offers them, or the way to sign in.
function offerAccounts() {
  const list = storedSessions();
  if (!list.length) {
    showGate({
      title: 'Sign in first',
      text: 'Sign in to banter with an admin account, then open this page again.',
      link: { text: 'Sign in', href: '/' },
    });
    return;
  }
  showGate({
    title: 'Admin',
    text: 'Who are you? Only admins can use this page.',
    accounts: list,
    link: { text: 'Back to banter', href: '/' },
  });
}

async function begin(s) {
  leave();
  auth.use(s);
  const myEpoch = auth.epoch;
  showGate({ title: 'Admin', text: 'Checking your account…' });
  let who;
  try {
    who = await authApi('GET', '/me');
  } catch (err) {
    if (myEpoch !== auth.epoch) return; // a refusal already shows
    leave();
    showGate({
      title: 'Cannot open the admin page',
      text: err.message,
      link: { text: 'Try again', href: location.pathname + location.hash },
    });
    return;
  }
  if (myEpoch !== auth.epoch) return;
  if (!who || who.admin !== true) { notAdmin(); return; }
  showAdmin();
}

function showAdmin() {
  ui.gate.hidden = true;
  ui.view.hidden = false;
  ui.meName.textContent = auth.session.username;
  const wanted = location.hash.slice(1);
  select(tabs.some((t) => t.dataset.section === wanted) ? wanted : 'live');
  pollStats();
}

/* ---------------------------------------------------------------- status */

function say(text) {
  ui.alert.textContent = '';
  ui.status.textContent = text;
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => { ui.status.textContent = ''; }, STATUS_MS);
}

function complain(err) {
  if (!auth.session) return; // the page is gone: the gate says why
  ui.status.textContent = '';
  ui.alert.textContent = err instanceof Error ? err.message : String(err);
}

// Runs `call` for a row's button, once at a time: the button stays focusable (aria-disabled,
// not disabled, which would drop the focus to the page) while it runs.
async function act(button, call, done) {
  if (button) button.setAttribute('aria-disabled', 'true');
  const myEpoch = auth.epoch;
  try {
    const data = await call();
    if (myEpoch === auth.epoch) done(data);
  } catch (err) {
    if (myEpoch === auth.epoch) complain(err);
  } finally {
    if (button) button.removeAttribute('aria-disabled');
  }
}

// Puts `next` where `row` is; the focus, if it was on one of row's buttons, goes to the same
// kind of button in the new row (or its first one).
function replaceRow(row, next) {
  const focused = row.contains(document.activeElement) ? document.activeElement.dataset.kind : null;
  row.replaceWith(next);
  if (focused) (next.querySelector(`[data-kind="${focused}"]`) || next.querySelector('button') || next).focus();
}

/* ---------------------------------------------------------------- sections */

const LOADERS = {
  live: () => pollStats(),
  users: () => loadUsers(),
  rooms: () => loadRooms(),
  invites: () => loadInvites(),
  registration: () => loadSettings(),
  audit: () => loadAudit(),
};

function select(name, { focus = false } = {}) {
  const tab = tabs.find((t) => t.dataset.section === name) || tabs[0];
  section = tab.dataset.section;
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute('aria-controls')).hidden = !on;
  }
  if (focus) tab.focus();
  // What the last action said belongs to its section.
  clearTimeout(statusTimer);
  ui.status.textContent = '';
  ui.alert.textContent = '';
  document.title = `${tab.textContent.trim()} · Admin · banter`;
  try { history.replaceState(history.state, '', `#${section}`); } catch { /* no history */ }
  LOADERS[section]();
}

ui.tablist.addEventListener('click', (e) => {
  const tab = e.target.closest('[role="tab"]');
  if (tab) select(tab.dataset.section);
});

// The tabs pattern: the arrows move between the sections (and show them), Home and End go
// to the ends; Tab leaves the list for the panel.
ui.tablist.addEventListener('keydown', (e) => {
  const at = tabs.indexOf(document.activeElement);
  if (at < 0) return;
  let next = null;
  if (e.key === 'ArrowDown' || e.key === 'ArrowRight') next = tabs[(at + 1) % tabs.length];
  else if (e.key === 'ArrowUp' || e.key === 'ArrowLeft') next = tabs[(at - 1 + tabs.length) % tabs.length];
  else if (e.key === 'Home') next = tabs[0];
  else if (e.key === 'End') next = tabs[tabs.length - 1];
  if (!next) return;
  e.preventDefault();
  select(next.dataset.section, { focus: true });
});

/* ------------------------------------------------------------ live figures */

function pollStats() {
  clearTimeout(stats.timer);
  stats.timer = null;
  if (!auth.session || ui.view.hidden || document.visibilityState !== 'visible' || stats.inFlight === auth.epoch) return;
  const myEpoch = auth.epoch;
  stats.inFlight = myEpoch;
  api('GET', '/admin/stats').then((d) => {
    if (myEpoch === auth.epoch) renderStats(d);
  }, (err) => {
    if (myEpoch !== auth.epoch) return;
    ui.statsNote.textContent = `The figures could not be read: ${err.message} Trying again shortly.`;
    ui.statsNote.hidden = false;
  }).finally(() => {
    if (stats.inFlight === myEpoch) stats.inFlight = 0;
    if (myEpoch === auth.epoch && document.visibilityState === 'visible') stats.timer = setTimeout(pollStats, STATS_EVERY_MS);
  });
}

function renderStats(d) {
  const gateways = Array.isArray(d.gateways) ? d.gateways : [];
  const total = gateways.reduce((n, g) => n + (Number(g.connections) || 0), 0);
  ui.statConnections.textContent = number(total);
  ui.statConnectionsNote.textContent = `open WebSockets on ${plural(gateways.length, 'gateway')}`;
  const rate = Number(d.messages_per_second);
  ui.statRate.textContent = number(rate, rate < 10 ? 1 : 0);
  if (d.persist_lag == null) {
    ui.statLag.textContent = '—';
    ui.statLagNote.textContent = 'not measured on this server';
  } else {
    ui.statLag.textContent = number(Number(d.persist_lag));
    ui.statLagNote.textContent = 'not yet written to the database';
  }
  ui.statLimited.textContent = number(Number(d.rate_limited_per_minute));
  ui.gatewayList.replaceChildren(...gateways.map((g) => {
    const li = el('li', 'admin-item gateway-item');
    const main = el('div', 'item-main');
    const title = el('p', 'item-title');
    title.append(el('span', 'item-name item-code', String(g.node)));
    if (g.here) title.append(badge('this gateway', 'accent'));
    main.append(title);
    const count = el('p', 'gateway-count');
    count.append(el('strong', '', number(Number(g.connections))), ` ${Number(g.connections) === 1 ? 'connection' : 'connections'}`);
    li.append(main, count);
    return li;
  }));
  ui.statsNote.hidden = gateways.length > 0;
  ui.statsNote.textContent = gateways.length ? '' : 'No gateway reported in.';
  ui.statsAt.textContent = `Updated ${new Date(d.at || Date.now()).toLocaleTimeString()}`;
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') {
    if (auth.session) auth.ensureFreshToken().catch(() => {});
    pollStats();
  } else {
    clearTimeout(stats.timer);
    stats.timer = null;
  }
});

/* ------------------------------------------------------------------ users */

async function loadUsers({ more = false } = {}) {
  const seq = ++users.seq;
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (users.q) params.set('q', users.q);
  if (more && users.after) params.set('after', users.after);
  if (!more && !ui.userList.children.length) ui.usersNote.textContent = 'Loading…';
  ui.usersMore.setAttribute('aria-disabled', 'true');
  try {
    const d = await api('GET', `/admin/users?${params}`);
    if (seq !== users.seq) return;
    const list = Array.isArray(d.users) ? d.users : [];
    if (!more) ui.userList.replaceChildren();
    ui.userList.append(...list.map(userRow));
    if (list.length) users.after = list[list.length - 1].username;
    else if (!more) users.after = null;
    ui.usersMore.hidden = !d.has_more;
    const n = ui.userList.children.length;
    ui.usersNote.textContent = n
      ? `${plural(n, 'user')}${users.q ? ` matching “${users.q}”` : ''}${d.has_more ? ', more below' : ''}`
      : (users.q ? `Nobody’s name contains “${users.q}”.` : 'No users yet.');
  } catch (err) {
    if (seq === users.seq) ui.usersNote.textContent = `The users could not be read: ${err.message}`;
  } finally {
    if (seq === users.seq) ui.usersMore.removeAttribute('aria-disabled');
  }
}

function userRow(u) {
  const li = el('li', 'admin-item');
  li.dataset.user = u.username;
  li.dataset.state = u.deactivated_at ? 'deactivated' : 'active';
  li.dataset.admin = String(!!u.admin);
  if (u.deactivated_at) li.classList.add('is-off');
  const main = el('div', 'item-main');
  const title = el('p', 'item-title');
  title.append(el('span', 'item-name', u.username));
  if (isMe(u.username)) title.append(badge('you'));
  if (u.admin) title.append(badge('admin', 'accent'));
  if (u.deactivated_at) title.append(badge('deactivated', 'danger'));
  const meta = el('p', 'item-meta');
  meta.append(`Joined ${day(u.created_at)}`);
  if (u.deactivated_at) meta.append(` · deactivated ${when(u.deactivated_at)}`);
  main.append(title, meta);
  const actions = el('div', 'item-actions');
  const me = isMe(u.username);
  // Not oneself: the server refuses it (409), so the page does not offer it.
  if (!me) {
    actions.append(u.deactivated_at
      ? rowButton('Reactivate', `Reactivate ${u.username}`, 'state', (b) => reactivate(u, li, b))
      : rowButton('Deactivate', `Deactivate ${u.username}`, 'state', (b) => deactivate(u, li, b), 'btn-secondary btn-warn'));
    actions.append(u.admin
      ? rowButton('Remove admin', `Remove admin rights of ${u.username}`, 'admin', (b) => setAdmin(u, li, b, false))
      : rowButton('Make admin', `Make ${u.username} an admin`, 'admin', (b) => setAdmin(u, li, b, true)));
  }
  actions.append(rowButton('Purge messages…', `Purge messages of ${u.username}`, 'purge', (b) => openPurge(u, b), 'btn-quiet btn-warn'));
  li.append(avatar(u.username), main, actions);
  return li;
}

async function deactivate(u, li, button) {
  const ok = await ask({
    title: `Deactivate ${u.username}?`,
    text: `${u.username} is signed out everywhere at once and cannot sign in until an admin reactivates the account. Their messages stay.`,
    ok: 'Deactivate',
  });
  if (!ok) return;
  await act(button, () => api('POST', `/admin/users/${enc(u.username)}/deactivate`), (nu) => {
    replaceRow(li, userRow(nu));
    say(`${nu.username} is deactivated and signed out everywhere.`);
  });
}

async function reactivate(u, li, button) {
  await act(button, () => api('POST', `/admin/users/${enc(u.username)}/reactivate`), (nu) => {
    replaceRow(li, userRow(nu));
    say(`${nu.username} is reactivated and can sign in again.`);
  });
}

async function setAdmin(u, li, button, admin) {
  const ok = await ask(admin ? {
    title: `Make ${u.username} an admin?`,
    text: `${u.username} will be able to deactivate people, delete rooms and messages, and change who may register.`,
    ok: 'Make admin',
    danger: false,
  } : {
    title: `Remove ${u.username}’s admin rights?`,
    text: `${u.username} can no longer open this page or delete other people’s messages.`,
    ok: 'Remove admin',
  });
  if (!ok) return;
  await act(button, () => api('PUT', `/admin/users/${enc(u.username)}/admin`, { body: { admin } }), (nu) => {
    replaceRow(li, userRow(nu));
    say(admin ? `${nu.username} is now an admin.` : `${nu.username} is no longer an admin.`);
  });
}

/* ------------------------------------------------------------------ purge */

function openPurge(u, button) {
  purge.user = u.username;
  purge.opener = button;
  ui.purgeTitle.textContent = `Purge messages of ${u.username}`;
  ui.purgeText.textContent = `Deletes ${u.username}’s messages in every room, for everyone. First count them; then confirm.`;
  ui.purgeFrom.value = '';
  ui.purgeTo.value = '';
  resetPurgeCount();
  ui.purgeAlert.textContent = '';
  ui.purge.showModal();
  ui.purgeFrom.focus();
}

function resetPurgeCount() {
  purge.count = null;
  purge.seq++;
  ui.purgeResult.textContent = '';
  ui.purgeOk.hidden = true;
  ui.purgeCount.hidden = false;
}

// The range as the API wants it, or throws a message for the person.
function purgeRange() {
  const range = {};
  const from = ui.purgeFrom.value ? new Date(ui.purgeFrom.value) : null;
  const to = ui.purgeTo.value ? new Date(ui.purgeTo.value) : null;
  if ((from && Number.isNaN(from.getTime())) || (to && Number.isNaN(to.getTime()))) throw new Error('Enter a full date and time.');
  if (from && to && from >= to) throw new Error('“From” must be before “To”.');
  if (from) range.from = from.toISOString();
  if (to) range.to = to.toISOString();
  return range;
}

function rangeText() {
  const f = ui.purgeFrom.value && when(new Date(ui.purgeFrom.value).toISOString());
  const t = ui.purgeTo.value && when(new Date(ui.purgeTo.value).toISOString());
  if (f && t) return ` between ${f} and ${t}`;
  if (f) return ` since ${f}`;
  if (t) return ` before ${t}`;
  return ' in all';
}

async function countPurge() {
  ui.purgeAlert.textContent = '';
  let range;
  try { range = purgeRange(); } catch (err) { ui.purgeAlert.textContent = err.message; return; }
  const seq = ++purge.seq;
  const user = purge.user;
  ui.purgeCount.setAttribute('aria-disabled', 'true');
  ui.purgeResult.textContent = 'Counting…';
  try {
    const d = await api('POST', `/admin/users/${enc(user)}/purge`, { body: { ...range, dry_run: true } });
    if (seq !== purge.seq || !ui.purge.open) return;
    const n = Number(d.messages) || 0;
    purge.count = n;
    if (n === 0) {
      ui.purgeResult.textContent = `${user} has no messages${rangeText() === ' in all' ? '' : rangeText()}. Nothing to delete.`;
      return;
    }
    ui.purgeResult.textContent = `${user} has ${plural(n, 'message')}${rangeText()}. Deleting them cannot be undone.`;
    ui.purgeOk.textContent = `Delete ${plural(n, 'message')}`;
    ui.purgeOk.hidden = false;
    ui.purgeCount.hidden = true;
    ui.purgeOk.focus();
  } catch (err) {
    if (seq === purge.seq && ui.purge.open) { ui.purgeResult.textContent = ''; ui.purgeAlert.textContent = err.message; }
  } finally {
    ui.purgeCount.removeAttribute('aria-disabled');
  }
}

async function runPurge() {
  if (purge.count == null || ui.purgeOk.getAttribute('aria-disabled') === 'true') return;
  let range;
  try { range = purgeRange(); } catch (err) { ui.purgeAlert.textContent = err.message; return; }
  const user = purge.user;
  ui.purgeOk.setAttribute('aria-disabled', 'true');
  const myEpoch = auth.epoch;
  try {
    const d = await api('POST', `/admin/users/${enc(user)}/purge`, { body: { ...range, dry_run: false } });
    if (myEpoch !== auth.epoch) return;
    ui.purge.close();
    const n = Number(d.messages) || 0;
    say(`Deleting ${plural(n, 'message')} of ${user}; they disappear from open chats in a moment.`);
  } catch (err) {
    if (myEpoch === auth.epoch && ui.purge.open) ui.purgeAlert.textContent = err.message;
  } finally {
    ui.purgeOk.removeAttribute('aria-disabled');
  }
}

// Enter in the form counts; deleting takes the Delete button itself.
ui.purgeForm.addEventListener('submit', (e) => {
  e.preventDefault();
  if (ui.purgeCount.hidden || ui.purgeCount.getAttribute('aria-disabled') === 'true') return;
  countPurge();
});
ui.purgeOk.addEventListener('click', runPurge);
ui.purgeCancel.addEventListener('click', () => ui.purge.close());
for (const input of [ui.purgeFrom, ui.purgeTo]) input.addEventListener('input', resetPurgeCount);
ui.purge.addEventListener('close', () => {
  purge.seq++;
  const opener = purge.opener;
  purge.opener = null;
  if (opener && opener.isConnected) opener.focus();
});

/* ------------------------------------------------------------------ rooms */

async function loadRooms({ more = false } = {}) {
  const seq = ++roomsList.seq;
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (roomsList.q) params.set('q', roomsList.q);
  if (more && roomsList.after) params.set('after', roomsList.after);
  if (!more && !ui.roomList.children.length) ui.roomsNote.textContent = 'Loading…';
  ui.roomsMore.setAttribute('aria-disabled', 'true');
  try {
    const d = await api('GET', `/admin/rooms?${params}`);
    if (seq !== roomsList.seq) return;
    const list = Array.isArray(d.rooms) ? d.rooms : [];
    if (!more) ui.roomList.replaceChildren();
    ui.roomList.append(...list.map(roomRow));
    if (list.length) roomsList.after = list[list.length - 1].name;
    else if (!more) roomsList.after = null;
    ui.roomsMore.hidden = !d.has_more;
    const n = ui.roomList.children.length;
    ui.roomsNote.textContent = n
      ? `${plural(n, 'room')}${roomsList.q ? ` matching “${roomsList.q}”` : ''}${d.has_more ? ', more below' : ''}`
      : (roomsList.q ? `No room’s name contains “${roomsList.q}”.` : 'No rooms yet.');
  } catch (err) {
    if (seq === roomsList.seq) ui.roomsNote.textContent = `The rooms could not be read: ${err.message}`;
  } finally {
    if (seq === roomsList.seq) ui.roomsMore.removeAttribute('aria-disabled');
  }
}

const roomLabel = (r) => (r.kind === 'private' ? r.name : `# ${r.name}`);

function roomRow(r) {
  const li = el('li', 'admin-item room-row');
  li.dataset.room = r.name;
  li.dataset.archived = String(!!r.archived);
  li.dataset.deleting = String(!!r.deleting);
  if (r.archived || r.deleting) li.classList.add('is-off');
  const mark = el('span', `room-mark${r.kind === 'private' ? ' is-private' : ''}`);
  mark.setAttribute('aria-hidden', 'true');
  mark.append(r.kind === 'private' ? el('span', 'icon icon-lock') : '#');
  const main = el('div', 'item-main');
  const title = el('p', 'item-title');
  title.append(el('span', 'item-name', r.name));
  if (r.kind === 'private') title.append(badge('private'));
  if (r.archived) title.append(badge('archived', 'warn'));
  if (r.deleting) title.append(badge('being deleted', 'danger'));
  main.append(title);
  if (r.topic) main.append(el('p', 'item-topic', r.topic));
  const meta = el('p', 'item-meta');
  const members = Number(r.members) || 0;
  const messages = Number(r.messages) || 0;
  meta.textContent = [
    r.owner ? `owner ${r.owner}` : 'no owner',
    plural(members, 'member'),
    plural(messages, 'message'),
    `created ${day(r.created_at)}`,
  ].join(' · ');
  main.append(meta);
  const actions = el('div', 'item-actions');
  if (!r.deleting) {
    actions.append(r.archived
      ? rowButton('Unarchive', `Unarchive ${roomLabel(r)}`, 'archive', (b) => setArchived(r, li, b, false))
      : rowButton('Archive', `Archive ${roomLabel(r)}`, 'archive', (b) => setArchived(r, li, b, true)));
    actions.append(rowButton('Delete…', `Delete ${roomLabel(r)}`, 'delete', (b) => deleteRoom(r, li, b), 'btn-secondary btn-warn'));
  }
  li.append(mark, main, actions);
  return li;
}

async function setArchived(r, li, button, archived) {
  if (archived) {
    const ok = await ask({
      title: `Archive ${roomLabel(r)}?`,
      text: `Its messages stay readable, but nobody can send in ${roomLabel(r)} until an admin unarchives it.`,
      ok: 'Archive',
    });
    if (!ok) return;
  }
  await act(button, () => api('PUT', `/admin/rooms/${enc(r.name)}/archived`, { body: { archived } }), (nr) => {
    replaceRow(li, roomRow({ ...r, ...nr }));
    say(archived ? `${roomLabel(r)} is archived: it is read-only now.` : `${roomLabel(r)} is unarchived.`);
  });
}

async function deleteRoom(r, li, button) {
  const messages = Number(r.messages) || 0;
  const ok = await ask({
    title: `Delete ${roomLabel(r)}?`,
    text: `${roomLabel(r)} is deleted for everyone, with its ${plural(messages, 'message')} and its files. This cannot be undone.`,
    ok: 'Delete room',
  });
  if (!ok) return;
  await act(button, () => api('DELETE', `/admin/rooms/${enc(r.name)}`), (nr) => {
    // Gone for its members at once; here it shows "being deleted" (no buttons) while its
    // messages and files go. The focus goes to the next row's first button, or the search box.
    const focused = li.contains(document.activeElement);
    const row = roomRow({ ...r, ...nr, deleting: true });
    li.replaceWith(row);
    if (focused) {
      const rows = [...ui.roomList.children];
      const after = rows.slice(rows.indexOf(row) + 1).concat(rows.slice(0, rows.indexOf(row)).reverse());
      const next = after.map((x) => x.querySelector('button')).find(Boolean);
      (next || ui.roomQ).focus();
    }
    say(`${roomLabel(r)} is deleted; its messages and files go in the background.`);
  });
}

/* ---------------------------------------------------------------- invites */

async function loadInvites() {
  const seq = ++invites.seq;
  if (!ui.inviteList.children.length) { ui.invitesNote.textContent = 'Loading…'; ui.invitesNote.hidden = false; }
  // The registration mode decides whether invites do anything: said above the form.
  loadSettings({ form: false }).catch(() => {});
  try {
    const d = await api('GET', '/admin/invites');
    if (seq !== invites.seq) return;
    const list = Array.isArray(d.invites) ? d.invites : [];
    ui.inviteList.replaceChildren(...list.map(inviteRow));
    ui.invitesNote.hidden = list.length > 0;
    ui.invitesNote.textContent = list.length ? '' : 'No invites yet.';
  } catch (err) {
    if (seq !== invites.seq) return;
    ui.invitesNote.hidden = false;
    ui.invitesNote.textContent = `The invites could not be read: ${err.message}`;
  }
}

function inviteState(i) {
  if (i.revoked) return ['revoked', 'danger'];
  if (Number(i.used) >= Number(i.uses)) return ['used up', ''];
  if (new Date(i.expires_at).getTime() <= Date.now()) return ['expired', ''];
  return ['active', 'ok'];
}

function inviteRow(i) {
  const li = el('li', 'admin-item');
  li.dataset.invite = String(i.id);
  const [state, tone] = inviteState(i);
  li.dataset.state = state;
  if (state !== 'active') li.classList.add('is-off');
  const mark = el('span', 'room-mark');
  mark.setAttribute('aria-hidden', 'true');
  mark.append(el('span', 'icon icon-link'));
  const main = el('div', 'item-main');
  const title = el('p', 'item-title');
  title.append(el('span', 'item-name', `${Number(i.used) || 0} of ${Number(i.uses) || 0} used`), badge(state, tone));
  const meta = el('p', 'item-meta');
  const expired = new Date(i.expires_at).getTime() <= Date.now();
  meta.append(
    `Created by ${i.created_by || 'an admin'} ${when(i.created_at)} · ${expired ? 'expired' : 'expires'} `,
    timeEl(i.expires_at, `${relative(i.expires_at)}`),
  );
  main.append(title, meta);
  const actions = el('div', 'item-actions');
  if (state === 'active') {
    actions.append(rowButton('Revoke', `Revoke the invite created ${when(i.created_at)}`, 'revoke', (b) => revokeInvite(i, li, b), 'btn-secondary btn-warn'));
  }
  li.append(mark, main, actions);
  return li;
}

async function createInvite() {
  const uses = Number(ui.inviteUses.value);
  if (!Number.isInteger(uses) || uses < 1 || uses > 1000) {
    complain('Uses must be a whole number from 1 to 1000.');
    ui.inviteUses.focus();
    return;
  }
  const expires = Number(ui.inviteExpiry.value);
  await act(ui.inviteCreate, () => api('POST', '/admin/invites', { body: { uses, expires_in: expires } }), (d) => {
    ui.inviteLink.value = new URL(d.url, location.origin).href;
    ui.inviteNew.hidden = false;
    ui.inviteCopy.textContent = 'Copy';
    ui.inviteLink.focus();
    ui.inviteLink.select();
    say(`Invite created for ${plural(uses, 'account')}. Copy the link now: it is shown only this once.`);
    loadInvites();
  });
}

async function copyInvite() {
  const link = ui.inviteLink.value;
  if (!link) return;
  let copied = false;
  try {
    await navigator.clipboard.writeText(link);
    copied = true;
  } catch {
    // No clipboard API (plain http on a LAN address is not a secure context): the old way.
    ui.inviteLink.select();
    try { copied = document.execCommand('copy'); } catch { copied = false; }
  }
  if (copied) {
    ui.inviteCopy.textContent = 'Copied';
    say('The invite link is copied.');
  } else {
    ui.inviteLink.select();
    complain('The link could not be copied here: it is selected, copy it with Ctrl+C.');
  }
}

async function revokeInvite(i, li, button) {
  const ok = await ask({
    title: 'Revoke this invite?',
    text: `Its link stops working at once${Number(i.used) ? '; the accounts it made stay' : ''}.`,
    ok: 'Revoke',
  });
  if (!ok) return;
  await act(button, () => api('DELETE', `/admin/invites/${enc(i.id)}`), (ni) => {
    replaceRow(li, inviteRow({ ...i, ...ni, revoked: true }));
    say('The invite is revoked.');
  });
}

/* ----------------------------------------------------------- registration */

// Reads the settings; with `form`, shows them in the Registration section.
async function loadSettings({ form = true } = {}) {
  const myEpoch = auth.epoch;
  try {
    const d = await api('GET', '/admin/settings');
    if (myEpoch !== auth.epoch) return;
    settings = d;
    renderInvitesMode();
    if (form) renderSettings();
  } catch (err) {
    if (myEpoch === auth.epoch && form) complain(err);
    throw err;
  }
}

function renderSettings() {
  const locked = !!settings.registration_locked;
  for (const radio of ui.registrationForm.elements.registration) {
    radio.checked = radio.value === settings.registration;
    radio.disabled = locked;
  }
  ui.registrationSave.hidden = locked;
  ui.registrationLocked.hidden = !locked;
  ui.registrationLocked.textContent = locked
    ? `Registration is ${MODES[settings.registration] || settings.registration}, set by the server’s operator (BANTER_REGISTRATION); it can only be changed there.`
    : '';
  if (locked) ui.registrationModes.setAttribute('aria-describedby', 'registration-locked');
  else ui.registrationModes.removeAttribute('aria-describedby');
}

function renderInvitesMode() {
  const mode = settings && settings.registration;
  ui.invitesMode.hidden = !mode || mode === 'invite';
  ui.invitesMode.textContent = mode === 'open'
    ? 'Registration is open: anyone can create an account, with or without an invite.'
    : mode === 'closed'
      ? 'Registration is closed: invite links do not work until registration is invite-only or open.'
      : '';
}

async function saveSettings() {
  const chosen = ui.registrationForm.elements.registration.value;
  if (!chosen || (settings && settings.registration_locked)) return;
  await act(ui.registrationSave, () => api('PUT', '/admin/settings', { body: { registration: chosen } }), (d) => {
    settings = d;
    renderSettings();
    renderInvitesMode();
    say(`Registration is now ${MODES[d.registration] || d.registration}.`);
  });
}

/* ------------------------------------------------------------------ audit */

const ACTIONS = {
  'user.deactivate': (e) => `deactivated ${e.target}`,
  'user.reactivate': (e) => `reactivated ${e.target}`,
  'user.admin': (e) => (detailOf(e).admin === false ? `removed the admin rights of ${e.target}` : `made ${e.target} an admin`),
  'user.purge': (e) => `purged the messages of ${e.target}`,
  'room.archive': (e) => `archived # ${e.target}`,
  'room.unarchive': (e) => `unarchived # ${e.target}`,
  'room.delete': (e) => `deleted # ${e.target}`,
  'invite.create': () => 'created an invite',
  'invite.revoke': () => 'revoked an invite',
  'settings.registration': (e) => {
    const d = detailOf(e);
    const mode = d.registration || d.to || d.mode;
    return mode ? `set registration to ${MODES[mode] || mode}` : 'changed registration';
  },
};

// A detail's value for people: seconds as a duration, times as dates, the rest as it is.
function detailText(key, v) {
  if (typeof v === 'number' && /(^|_)(in|seconds|secs)$/.test(key)) {
    for (const [unit, size] of [['day', 86400], ['hour', 3600], ['minute', 60]]) {
      if (v >= size && v % size === 0) return plural(v / size, unit);
    }
    return plural(v, 'second');
  }
  if (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(v)) return when(v);
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

const detailOf = (e) => (e.detail && typeof e.detail === 'object' ? e.detail : {});

async function loadAudit({ more = false } = {}) {
  const seq = ++audit.seq;
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (more && audit.before != null) params.set('before', String(audit.before));
  if (!more && !ui.auditList.children.length) { ui.auditNote.textContent = 'Loading…'; ui.auditNote.hidden = false; }
  ui.auditMore.setAttribute('aria-disabled', 'true');
  try {
    const d = await api('GET', `/admin/audit?${params}`);
    if (seq !== audit.seq) return;
    const list = Array.isArray(d.entries) ? d.entries : [];
    if (!more) ui.auditList.replaceChildren();
    ui.auditList.append(...list.map(auditRow));
    if (list.length) audit.before = list[list.length - 1].id;
    ui.auditMore.hidden = !d.has_more;
    const n = ui.auditList.children.length;
    ui.auditNote.hidden = n > 0;
    ui.auditNote.textContent = n ? '' : 'Nothing yet: what admins do shows here.';
  } catch (err) {
    if (seq !== audit.seq) return;
    ui.auditNote.hidden = false;
    ui.auditNote.textContent = `The audit log could not be read: ${err.message}`;
  } finally {
    if (seq === audit.seq) ui.auditMore.removeAttribute('aria-disabled');
  }
}

function auditRow(e) {
  const li = el('li', 'admin-item audit-item');
  li.dataset.action = e.action;
  const main = el('div', 'item-main');
  const title = el('p', 'item-title audit-text');
  const verb = ACTIONS[e.action];
  title.append(el('strong', '', e.actor || 'someone'), ` ${verb ? verb(e) : `${e.action} ${e.target || ''}`.trim()}`);
  const meta = el('p', 'item-meta');
  meta.append(timeEl(e.at), ' · ', el('code', 'audit-action', e.action));
  if (e.address) meta.append(` · from ${e.address}`);
  main.append(title, meta);
  const detail = Object.entries(detailOf(e)).filter(([, v]) => v !== null && v !== undefined && v !== '');
  if (detail.length) {
    const dl = el('dl', 'audit-detail');
    for (const [k, v] of detail) {
      const row = el('div');
      row.append(el('dt', '', k.replace(/_/g, ' ')), el('dd', '', detailText(k, v)));
      dl.append(row);
    }
    main.append(dl);
  }
  li.append(main);
  return li;
}

/* ---------------------------------------------------------------- dialogs */

// Asks in the confirm dialog; resolves true for OK. Cancel has the focus first (the choice
// that loses nothing); Escape cancels; the focus goes back where it was.
function ask({ title, text, ok, danger = true }) {
  const opener = document.activeElement;
  ui.confirmTitle.textContent = title;
  ui.confirmText.textContent = text;
  ui.confirmOk.textContent = ok;
  ui.confirmOk.className = `btn ${danger ? 'btn-danger' : 'btn-primary'}`;
  ui.confirm.returnValue = '';
  ui.confirm.showModal();
  ui.confirmCancel.focus();
  return new Promise((resolve) => {
    ui.confirm.addEventListener('close', () => {
      if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
      resolve(ui.confirm.returnValue === 'ok');
    }, { once: true });
  });
}

/* ------------------------------------------------------------------ wiring */

function searchAs(state, input, loadFn) {
  input.addEventListener('input', () => {
    clearTimeout(state.timer);
    state.timer = setTimeout(() => {
      state.q = input.value.trim();
      state.after = null;
      loadFn();
    }, SEARCH_DEBOUNCE_MS);
  });
}

searchAs(users, ui.userQ, () => loadUsers());
searchAs(roomsList, ui.roomQ, () => loadRooms());
ui.userSearch.addEventListener('submit', (e) => {
  e.preventDefault();
  clearTimeout(users.timer);
  users.q = ui.userQ.value.trim();
  loadUsers();
});
ui.roomSearch.addEventListener('submit', (e) => {
  e.preventDefault();
  clearTimeout(roomsList.timer);
  roomsList.q = ui.roomQ.value.trim();
  loadRooms();
});
ui.usersMore.addEventListener('click', () => { if (ui.usersMore.getAttribute('aria-disabled') !== 'true') loadUsers({ more: true }); });
ui.roomsMore.addEventListener('click', () => { if (ui.roomsMore.getAttribute('aria-disabled') !== 'true') loadRooms({ more: true }); });
ui.auditMore.addEventListener('click', () => { if (ui.auditMore.getAttribute('aria-disabled') !== 'true') loadAudit({ more: true }); });
ui.auditRefresh.addEventListener('click', () => loadAudit());
ui.inviteForm.addEventListener('submit', (e) => {
  e.preventDefault();
  if (ui.inviteCreate.getAttribute('aria-disabled') !== 'true') createInvite();
});
ui.inviteCopy.addEventListener('click', copyInvite);
ui.registrationForm.addEventListener('submit', (e) => {
  e.preventDefault();
  if (ui.registrationSave.getAttribute('aria-disabled') !== 'true') saveSettings();
});

/* -------------------------------------------------------------------- boot */

(async function boot() {
  await auth.configure();
  const user = tabUser();
  const s = user ? readSession(user) : null;
  if (s) begin(s);
  else offerAccounts();
}());
