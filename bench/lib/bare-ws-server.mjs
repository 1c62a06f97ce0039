// The limit for bench/connections.mjs: a bare Node `ws` server holding the same connections, nothing per device
// but the socket in a Map. IPC 'broadcast' sends every socket the same `target-changed` Flotilla sends.
import { WebSocketServer } from 'ws';

const sockets = new Set();
const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
server.on('connection', (socket) => {
  sockets.add(socket);
  socket.on('close', () => sockets.delete(socket));
});
server.on('listening', () => process.send({ port: server.address().port }));
const message = JSON.stringify({ type: 'target-changed' });
process.on('message', (m) => {
  if (m === 'broadcast') for (const s of sockets) s.send(message);
});
