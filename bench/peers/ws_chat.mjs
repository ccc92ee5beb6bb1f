// A chat room on Node's `ws` package, for bench/chat_compare.sh: the same protocol as
// broadcaster-chat. Each text message a client sends goes to every client of the room,
// sender included, with the broadcast loop of ws's own documentation.
//   node bench/peers/ws_chat.mjs PORT
import { WebSocketServer, WebSocket } from 'ws';

const port = Number(process.argv[2]);
// ws buffers outgoing messages without limit: no client is dropped for being slow,
// like broadcaster-chat's deep queues in the benchmark.
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  path: '/',
  maxPayload: 64 * 1024,
  perMessageDeflate: false,
});
wss.on('error', (error) => {
  console.error(`ws_chat: ${error.message}`);
  process.exit(1);
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) {
        client.send(data, { binary: isBinary });
      }
    }
  });
});
