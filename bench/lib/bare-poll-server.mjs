// The limit for bench/target-state.mjs: a bare node:http server doing the least a target-state poll must do — find
// the device by the sha256 of its bearer key in a Map, answer 304 when If-None-Match holds its ETag, else 200 with
// a small body. Devices come over IPC as [uuid, keyHash] pairs; it answers {port} once listening.
import { createHash } from 'node:crypto';
import http from 'node:http';

const body = JSON.stringify({ local: { name: 'bench', config: {}, apps: {} } });
const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
const byKeyHash = new Map();

const server = http.createServer((req, res) => {
  const auth = req.headers.authorization ?? '';
  const hash = createHash('sha256').update(auth.slice(7)).digest('hex');
  const uuid = byKeyHash.get(hash);
  if (!auth.startsWith('Bearer ') || uuid === undefined || !req.url.includes(uuid)) {
    res.writeHead(401).end();
    return;
  }
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, { etag, 'cache-control': 'no-cache' }).end();
    return;
  }
  res
    .writeHead(200, { etag, 'cache-control': 'no-cache', 'content-type': 'application/json; charset=utf-8' })
    .end(body);
});
server.keepAliveTimeout = 120_000;
process.on('message', (m) => {
  for (const [uuid, hash] of m.devices) byKeyHash.set(hash, uuid);
  if (m.last) server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
});
