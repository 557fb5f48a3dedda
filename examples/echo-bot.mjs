// A bot that answers `!echo <text>` with <text>, as a reply, in every room it is told to
// follow. It reconnects by itself (to the next server of BANTER_URL when one is down) and
// never misses a message while away: the client resumes each room from its cursor.
//
//   BANTER_URL=http://localhost:8080 BANTER_TOKEN=bnt_… BANTER_ROOMS=general \
//     node examples/echo-bot.mjs        (Node 20: node --experimental-websocket …)
import { BanterClient } from '../web/client.js';

const client = new BanterClient({
  servers: (process.env.BANTER_URL || 'http://localhost:8080').split(','),
  token: process.env.BANTER_TOKEN,
});
for (const room of (process.env.BANTER_ROOMS || 'general').split(',')) client.join(room);

client.on('message', (m) => {
  if (m.author === client.username || !m.body.startsWith('!echo ')) return;
  client.send(m.room, m.body.slice('!echo '.length), { replyTo: m.id })
    .catch((e) => console.error(`could not answer in ${m.room}: ${e.message}`));
});
client.on('failed', (e) => {
  console.error(`echo bot stopped: ${e.error.message}`);
  process.exit(1);
});

await client.connect();
console.log(`echo bot is listening as ${client.username}`);
