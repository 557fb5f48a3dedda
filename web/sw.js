// banter's service worker: shows a push notification (a direct message or a mention that
// reached this browser while no tab of the app was connected) and opens its room on click.
// It caches nothing: the app is always loaded from the server.

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('push', (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = {};
  }
  const room = typeof data.room === 'string' ? data.room : '';
  const author = typeof data.author === 'string' ? data.author : 'someone';
  const dm = room.startsWith('dm:');
  const title = dm ? author : `${author} in #${room}`;
  const body = typeof data.body === 'string' && data.body ? data.body : 'New message';
  const url = `/chat?room=${encodeURIComponent(room)}`;
  event.waitUntil(
    self.registration.showNotification(title, {
      body,
      // One notification per room: a burst replaces rather than piles up.
      tag: `room:${room}`,
      renotify: true,
      data: { url, room, id: data.id },
    }),
  );
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = new URL(event.notification.data?.url || '/chat', self.location.origin).href;
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
      for (const client of windows) {
        if (new URL(client.url).origin === self.location.origin) {
          client.postMessage({ type: 'open-room', room: event.notification.data?.room });
          return client.focus();
        }
      }
      return self.clients.openWindow(url);
    })(),
  );
});
