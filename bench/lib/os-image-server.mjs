// The OS image server for bench/os-update.mjs, in a process of its own so serving does not take the updater's CPU:
// serves the file argv[2] on loopback, tells its port over IPC, then the body bytes of each answer once it ends.
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';

const file = process.argv[2];
const size = statSync(file).size;
const server = createServer((_req, res) => {
  let sent = 0;
  res.writeHead(200, { 'content-length': String(size) });
  const stream = createReadStream(file, { highWaterMark: 1 << 20 });
  stream.on('data', (chunk) => (sent += chunk.length));
  stream.pipe(res);
  res.on('close', () => process.send({ sent }));
});
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
process.on('disconnect', () => process.exit(0));
