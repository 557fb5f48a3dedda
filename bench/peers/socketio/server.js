// A Socket.IO chat of rooms, the few lines a developer writes before anything else: `join` a
// room, `send` to one, everyone in it (the sender too) gets `message`. No accounts, nothing
// kept, no acks. It is one of the peers banter-bench drives side by side with banter
// (scripts/compare, docs/benchmarks/compare.md).
//
//   node server.js [port]     listens on 127.0.0.1 (port 0: any free one) and prints
//                             "listening on <port>" once it does.

const http = require('node:http');
const { Server } = require('socket.io');

const server = http.createServer();
const io = new Server(server, {
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
});

io.on('connection', (socket) => {
  socket.on('join', (room, ack) => {
    if (typeof room === 'string') socket.join(room);
    if (typeof ack === 'function') ack();
  });
  socket.on('send', (msg) => {
    if (msg && typeof msg.room === 'string' && typeof msg.body === 'string') {
      io.to(msg.room).emit('message', { room: msg.room, body: msg.body });
    }
  });
});

server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`);
});
process.on('SIGTERM', () => io.close(() => process.exit(0)));
