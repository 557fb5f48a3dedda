/*
 * banter's sessions in this browser, shared by the chat (app.js) and the admin page
 * (admin.js). Every tab of a user, whichever page it shows, uses one stored session, and
 * refresh tokens rotate: a reused one revokes the whole login. So the tabs must agree on
 * where the session is kept, refresh it one at a time and take up what another tab stored,
 * and hear when another tab logs out or finds the account deactivated. That agreement is
 * written once, here; what a page shows when its session changes or ends stays in the page.
 *
 *   storage    — the stored sessions and which user a tab is; `store`/`load` for the pages'
 *                own per-user state beside them.
 *   http       — ApiError and banter's JSON envelope.
 *   TabSession — the session this tab uses: refreshed before expiry under a Web Lock, a 401
 *                refreshed once, a deactivated account signed out, other tabs followed.
 *
 * client.js, the reliable client, touches no storage and no network by its own rule; this
 * module is the part of a page that does, for its session.
 */

// Sessions are per user, not per browser, so that two people can use two
// tabs of one browser: each tab remembers (per tab) whose it is.
const SESSION_PREFIX = 'banter.session.';      // + lowercased username, in localStorage
const LEGACY_SESSION_KEY = 'banter.session';   // the one session of older versions
const TAB_USER_KEY = 'banter.tab.user';        // in sessionStorage
// + lowercased username: when that account was found deactivated, so that its other tabs,
// which see only the session go, say why too.
const DEACTIVATED_PREFIX = 'banter.deactivated.';
const DEACTIVATED_NOTE_MS = 2 * 60 * 1000;

/* ---------------------------------------------------------------- storage */

export function store(key, value) {
  try {
    if (value == null) localStorage.removeItem(key);
    else localStorage.setItem(key, JSON.stringify(value));
  } catch { /* storage full or disabled: this page keeps working, a reload forgets */ }
}

export function load(key) {
  try { return JSON.parse(localStorage.getItem(key)); } catch { return null; }
}

const sessionKey = (user) => SESSION_PREFIX + user.toLowerCase();
const deactivatedKey = (user) => DEACTIVATED_PREFIX + user.toLowerCase();
const isSession = (s) => !!s && typeof s.token === 'string' && typeof s.refresh_token === 'string' &&
  typeof s.username === 'string';

/** The session `user` stored in this browser ({token, refresh_token, username, expires_at}), or null. */
export function readSession(user) {
  const s = load(sessionKey(user));
  return isSession(s) && s.username.toLowerCase() === user.toLowerCase() ? s : null;
}

/** Everyone signed in on this browser, by name. */
export function storedSessions() {
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

/** Whose this tab is (a username), or null. */
export function tabUser() {
  try { return sessionStorage.getItem(TAB_USER_KEY); } catch { return null; }
}

/** Makes this tab `user`'s, or nobody's (null). */
export function setTabUser(user) {
  try {
    if (user) sessionStorage.setItem(TAB_USER_KEY, user);
    else sessionStorage.removeItem(TAB_USER_KEY);
  } catch { /* storage disabled: a reload of this tab shows the login form */ }
}

// Older versions kept one session for the whole browser. Its owner stays
// signed in: the session moves to their key, and the tab that finds it is theirs.
export function migrateLegacySession() {
  const s = load(LEGACY_SESSION_KEY);
  if (s === null) return;
  if (isSession(s) && !readSession(s.username)) {
    store(sessionKey(s.username), s);
    if (!tabUser()) setTabUser(s.username);
  }
  store(LEGACY_SESSION_KEY, null);
}

/* -------------------------------------------------------------------- http */

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

const signedOutError = () => new ApiError(401, 'unauthorized', 'You are signed out.');

// banter's envelope says `error: "code"` beside `message`; an `error: {code, message}`
// object is read too.
function failureOf(res, env) {
  const e = env && env.error;
  const nested = !!e && typeof e === 'object';
  return new ApiError(
    res.status,
    (nested ? e.code : e) || `http_${res.status}`,
    (nested && e.message) || (env && env.message) || `The server answered ${res.status}.`,
    (nested && e.field) || (env && env.data && env.data.field),
  );
}

/* ------------------------------------------------------------- TabSession */

/**
 * The session this tab uses, kept fresh, and the JSON API called with it.
 *
 * The page is told through three callbacks, and decides what shows:
 *   onToken(session)    — a new access token is in use (signed in, refreshed here or by
 *                         another tab of the user).
 *   onSignedOut(reason) — the session is over. It is still `session` during the call, and
 *                         the page ends it with end(), keeping the stored tokens or not:
 *                           'refused'      a call was answered 401 again after a refresh;
 *                           'expired'      the refresh itself was refused;
 *                           'deactivated'  the account is deactivated (found here: the
 *                                          other tabs are told, see DEACTIVATED_PREFIX);
 *                           'logged-out'   another tab logged out (the stored session went);
 *                           'deactivated-elsewhere'  another tab found it deactivated.
 *   onStored()          — this tab uses no session, and the sessions stored in the browser
 *                         changed, so whom the page offers may have too.
 */
export class TabSession {
  session = null;     // {token, refresh_token, username, expires_at}, as stored
  // Bumped when a session starts or ends; late results of an old one are dropped
  // (`const myEpoch = auth.epoch; … if (myEpoch !== auth.epoch) return;`).
  epoch = 0;
  authBase = '';      // '' = the auth API is on this origin (else /config.json says)
  #refreshing = null; // the refresh in flight (one per tab and session)
  #refreshTimer = null;
  #on;

  constructor({ onToken = () => {}, onSignedOut = () => {}, onStored = () => {} } = {}) {
    this.#on = { onToken, onSignedOut, onStored };
    window.addEventListener('storage', (e) => this.#follow(e));
  }

  /** Reads where the auth API is (/config.json's `auth_url`). */
  async configure() {
    try {
      const res = await fetch('/config.json', { cache: 'no-store' });
      const cfg = await res.json();
      if (cfg && typeof cfg.auth_url === 'string') this.authBase = cfg.auth_url.replace(/\/+$/, '');
    } catch { /* no config: the auth API is on this origin */ }
  }

  /** Starts using `stored` (from readSession) in this tab, which becomes its user's. */
  use(stored) {
    this.#restart();
    this.session = stored;
    setTabUser(stored.username);
    this.#scheduleRefresh();
  }

  /** Starts using the tokens a login answered (`data`) for `username`, stored for its other tabs. */
  useLogin(data, username) {
    this.#restart();
    this.#save(data, username);
    store(deactivatedKey(this.session.username), null);
    setTabUser(this.session.username);
  }

  /** Stops using the session here; its stored tokens go too, unless `keepStored`. */
  end({ keepStored = false } = {}) {
    if (this.session && !keepStored) store(sessionKey(this.session.username), null);
    this.session = null;
    this.#restart();
  }

  /**
   * The account is deactivated (a call answered 403 `account_disabled`, or the page heard it
   * otherwise, e.g. from its socket): its other tabs will say why, and this page is told.
   */
  deactivated() {
    if (!this.session) return;
    store(deactivatedKey(this.session.username), Date.now());
    this.#on.onSignedOut('deactivated');
  }

  /** Calls the JSON API of this origin: see #request. */
  api(method, path, opts) {
    return this.#request('', method, path, opts);
  }

  /** Calls the auth API (at `authBase`): see #request. */
  authApi(method, path, opts) {
    return this.#request(this.authBase, method, path, opts);
  }

  /** Refreshes first if the access token is about to expire. */
  async ensureFreshToken() {
    if (this.session && this.session.expires_at - Date.now() < 20000) await this.refresh();
  }

  /** Refreshes the tokens, once at a time in this tab; rejects when signed out. */
  refresh() {
    if (!this.session) return Promise.reject(signedOutError());
    if (!this.#refreshing) {
      // Refresh tokens rotate and a reused one revokes the whole login, so only
      // one tab of a user may refresh at a time (Web Locks, where available).
      const myEpoch = this.epoch;
      const lock = `banter-refresh-${this.session.username.toLowerCase()}`;
      const run = navigator.locks
        ? navigator.locks.request(lock, () => this.#doRefresh(myEpoch))
        : this.#doRefresh(myEpoch);
      const done = run.finally(() => { if (this.#refreshing === done) this.#refreshing = null; });
      this.#refreshing = done;
    }
    return this.#refreshing;
  }

  // A new session's generation: no refresh of the old one planned or awaited.
  #restart() {
    this.epoch++;
    clearTimeout(this.#refreshTimer);
    this.#refreshing = null;
  }

  #save(data, username) {
    this.session = {
      token: data.token,
      refresh_token: data.refresh_token,
      username: (data.user && data.user.username) || username || this.session.username,
      expires_at: Date.now() + (Number(data.expires_in) || 900) * 1000,
    };
    store(sessionKey(this.session.username), this.session);
    this.#useToken();
  }

  // A new access token: plan the next refresh, and tell the page.
  #useToken() {
    this.#scheduleRefresh();
    this.#on.onToken(this.session);
  }

  #scheduleRefresh(delay) {
    clearTimeout(this.#refreshTimer);
    if (!this.session) return;
    if (delay === undefined) {
      const left = this.session.expires_at - Date.now();
      // A fifth of the lifetime early (at most a minute), jittered so tabs do not collide.
      delay = Math.max(1000, left - Math.min(60000, left / 5) - Math.random() * 5000);
    }
    this.#refreshTimer = setTimeout(() => {
      this.refresh().catch(() => { if (this.session) this.#scheduleRefresh(10000); });
    }, delay);
  }

  async #doRefresh(myEpoch) {
    // Signed out (maybe in as someone else) while waiting for the lock.
    if (myEpoch !== this.epoch || !this.session) throw signedOutError();
    const stored = readSession(this.session.username);
    if (stored && stored.refresh_token !== this.session.refresh_token) {
      // Another tab of this user refreshed while we waited for the lock.
      this.session = stored;
      this.#useToken();
      if (stored.expires_at - Date.now() > 30000) return;
    }
    try {
      const data = await this.authApi('POST', '/refresh', { body: { refresh_token: this.session.refresh_token }, auth: false });
      if (myEpoch === this.epoch) this.#save(data);
    } catch (err) {
      if (err.status === 401 && myEpoch === this.epoch) this.#on.onSignedOut('expired');
      throw err;
    }
  }

  // Calls the JSON API and returns the envelope's `data`, or throws ApiError
  // with the server's human-readable message. An authenticated call that gets
  // a 401 refreshes the token and tries once more; a second 401 ends the session.
  async #request(base, method, path, { body, auth = true } = {}, retried = false) {
    const myEpoch = this.epoch;
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (auth) {
      await this.ensureFreshToken();
      if (!this.session) throw signedOutError();
      headers.Authorization = `Bearer ${this.session.token}`;
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

    if (auth && res.status === 401 && this.session && myEpoch === this.epoch) {
      if (!retried) {
        await this.refresh();
        return this.#request(base, method, path, { body, auth }, true);
      }
      this.#on.onSignedOut('refused');
    }
    const err = failureOf(res, env);
    // Deactivated meanwhile (any call of the session, a refresh too): signed out, and told why.
    if (res.status === 403 && err.code === 'account_disabled' && this.session && myEpoch === this.epoch) this.deactivated();
    throw err;
  }

  // Tabs of one user share its session: follow their refreshes and logout.
  // Other users' sessions only change whom the page offers.
  #follow(e) {
    if (e.key !== null && !e.key.startsWith(SESSION_PREFIX)) return; // null: storage cleared
    if (!this.session) { this.#on.onStored(); return; }
    if (e.key !== null && e.key !== sessionKey(this.session.username)) return;
    const s = readSession(this.session.username);
    if (!s) {
      const off = load(deactivatedKey(this.session.username));
      const recent = Number.isFinite(off) && Date.now() - off < DEACTIVATED_NOTE_MS;
      this.#on.onSignedOut(recent ? 'deactivated-elsewhere' : 'logged-out');
    } else if (s.refresh_token !== this.session.refresh_token) {
      this.session = s;
      this.#useToken();
    }
  }
}
