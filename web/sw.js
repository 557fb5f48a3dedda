// banter's service worker: shows a push notification (a direct message or a mention that
// reached this browser while no tab of the app was connected) and opens its room on click.
// It caches nothing: the app is always loaded from the server.

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

// The room's page: the payload's `url` when it is a path of this origin, else built here.
function roomUrl(data, room) {
  if (typeof data.url === 'string' && data.url.startsWith('/') && !data.url.startsWith('//')) return data.url;
  return `/chat?room=${encodeURIComponent(room)}`;
}

self.addEventListener('push', (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = {};
  }
  if (!data || typeof data !== 'object') data = {};
  const room = typeof data.room === 'string' ? data.room : '';
  const author = typeof data.author === 'string' && data.author ? data.author : 'someone';
  const dm = room.startsWith('dm:') || data.reason === 'dm';
  const title = dm ? author : `${author} in #${room}`;
  // Without a preview (the server's BANTER_PUSH_PREVIEW=off) the body says what it is.
  const body = typeof data.body === 'string' && data.body
    ? data.body
    : dm ? 'Sent you a direct message' : data.reason === 'mention' ? 'Mentioned you' : 'New message';
  const at = Date.parse(data.created_at);
  const options = {
    body,
    // One notification per room: a burst replaces rather than piles up.
    tag: `room:${room}`,
    renotify: true,
    data: { url: roomUrl(data, room), room, id: data.id, user: typeof data.user === 'string' ? data.user : '' },
  };
  if (!Number.isNaN(at)) options.timestamp = at;
  event.waitUntil(self.registration.showNotification(title, options));
});

// Who is signed in in a window of the app: its answer to `who` (a name, or null when signed
// out), or undefined when it does not answer soon (an older page, a frozen tab).
function whoIs(client) {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    const timer = setTimeout(() => resolve(undefined), 500);
    channel.port1.onmessage = (e) => {
      clearTimeout(timer);
      resolve(e.data && (typeof e.data.user === 'string' || e.data.user === null) ? e.data.user : undefined);
    };
    try {
      client.postMessage({ type: 'who' }, [channel.port2]);
    } catch {
      clearTimeout(timer);
      resolve(undefined);
    }
  });
}

// The window in front, else a visible one, else the most recently focused (matchAll's order).
const best = (list) => list.find((c) => c.focused) || list.find((c) => c.visibilityState === 'visible') || list[0];

// The window a click goes to. With the push's user known: a window of theirs, else a signed-out
// one (it opens the room once they sign in), else one that did not say (it ignores another
// person's push); windows of other people are not used.
async function windowFor(ours, user) {
  if (!user) return best(ours);
  const names = await Promise.all(ours.map(whoIs));
  const pick = (test) => best(ours.filter((c, i) => test(names[i])));
  return pick((n) => typeof n === 'string' && n.toLowerCase() === user.toLowerCase())
    || pick((n) => n === null)
    || pick((n) => n === undefined);
}

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const room = event.notification.data?.room;
  const user = event.notification.data?.user || '';
  const url = new URL(event.notification.data?.url || '/chat', self.location.origin).href;
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
      const ours = windows.filter((c) => new URL(c.url).origin === self.location.origin);
      const client = await windowFor(ours, user);
      if (client) {
        client.postMessage({ type: 'open-room', room, user });
        try {
          await client.focus();
        } catch {
          // Not allowed to focus (no user gesture): the room is open there anyway.
        }
        return;
      }
      await self.clients.openWindow(url);
    })(),
  );
});
