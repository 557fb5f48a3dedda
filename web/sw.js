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
    data: { url: roomUrl(data, room), room, id: data.id },
  };
  if (!Number.isNaN(at)) options.timestamp = at;
  event.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const room = event.notification.data?.room;
  const url = new URL(event.notification.data?.url || '/chat', self.location.origin).href;
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
      const ours = windows.filter((c) => new URL(c.url).origin === self.location.origin);
      // The window in front, else the most recently focused (matchAll's order).
      const client = ours.find((c) => c.focused) || ours.find((c) => c.visibilityState === 'visible') || ours[0];
      if (client) {
        client.postMessage({ type: 'open-room', room });
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
