// One process of simulated devices for bench/connections.mjs: holds a WebSocket per device from its own loopback
// source address (the machine caps open files per process, and a source address has ~28,000 ephemeral ports).
// IPC in: {devices: [{url, key}], localAddress}, then 'arm' and 'report'. IPC out: {opened}, {greeted},
// {lastToldAt, told} (Date.now() of the last `target-changed` since 'arm', and how many devices were told).
import WebSocket from 'ws';

const sockets = [];
let armed = false;
let told = 0;
let lastToldAt = 0;
let greeted = 0;
process.on('message', async (message) => {
  if (message === 'arm') {
    armed = true;
    told = 0;
    lastToldAt = 0;
    return process.send({ armed: true });
  }
  if (message === 'report') return process.send({ told, lastToldAt });
  if (message === 'close') {
    for (const s of sockets) s.terminate();
    return process.exit(0);
  }
  const { devices, localAddress, greet } = message;
  let opened = 0;
  for (let i = 0; i < devices.length; i += 200) {
    await Promise.all(
      devices.slice(i, i + 200).map(
        ({ url, key }) =>
          new Promise((resolve, reject) => {
            const headers = key ? { authorization: `Bearer ${key}` } : {};
            const socket = new WebSocket(url, { headers, localAddress, perMessageDeflate: false });
            let seen = false;
            socket.on('message', () => {
              if (armed) {
                if (!seen) told += 1;
                seen = true;
                lastToldAt = Date.now();
              } else {
                greeted += 1;
                if (greet && greeted === devices.length) process.send({ greeted });
              }
            });
            socket.on('open', () => {
              opened += 1;
              resolve();
            });
            socket.on('error', reject);
            sockets.push(socket);
          }),
      ),
    );
  }
  process.send({ opened });
});
