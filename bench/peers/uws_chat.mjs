// A chat room on uWebSockets.js (the C++ uWebSockets server, loaded in Node), for
// bench/chat_compare.sh: the same protocol as broadcaster-chat, with uWebSockets' own
// pub/sub doing the fan-out. Each text message a client sends goes to every client of
// the room, sender included (app.publish, unlike ws.publish, includes the sender).
//   node bench/peers/uws_chat.mjs PORT
import { App } from 'uws-pack';

const port = Number(process.argv[2]);
const app = App().ws('/', {
  maxPayloadLength: 64 * 1024,
  // Generous, like broadcaster-chat's deep queues in the benchmark: a burst must not
  // make uWebSockets drop messages for the load generator's clients.
  maxBackpressure: 1024 * 1024 * 1024,
  idleTimeout: 120,
  open: (ws) => ws.subscribe('chatroom'),
  message: (ws, message, isBinary) => app.publish('chatroom', message, isBinary),
}).listen('127.0.0.1', port, (socket) => {
  if (!socket) {
    console.error(`uws_chat: cannot listen on port ${port}`);
    process.exit(1);
  }
});
