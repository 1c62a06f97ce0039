import { connect, type Socket } from 'node:net';
import { FlotillaError, type StreamRequest } from '@flotilla/protocol';
import type { ServiceLookup } from './service-lookup.js';
import type { StreamSocket } from './stream-socket.js';

type TcpRequest = Extract<StreamRequest, { kind: 'tcp' }>;

/** An unreachable address (a container's network gone) fails in this time instead of the kernel's ~2 minutes. */
const CONNECT_TIMEOUT_MS = 10_000;
/** After the user's side closed, what it sent last still gets this long to reach the TCP peer. */
const FLUSH_GRACE_MS = 2_000;

/**
 * One tunnelled TCP connection: to 127.0.0.1:<port> on the device, or to a service container's address. Bytes go
 * both ways unchanged; a half-close travels as `eof` each way; the stream and the connection end together.
 */
export async function serveTcp(stream: StreamSocket, request: TcpRequest, services: ServiceLookup): Promise<void> {
  const host = request.service ? await services.address(request.service) : '127.0.0.1';
  const tcp = connect({ host, port: request.port, allowHalfOpen: true, noDelay: true });
  stream.onEnd((how) => {
    if (how === 'stopped' || tcp.connecting) {
      tcp.destroy();
      return;
    }
    tcp.end();
    setTimeout(() => tcp.destroy(), FLUSH_GRACE_MS).unref();
  });
  await connected(tcp, `${request.service ? `service ${request.service}` : 'the device'} port ${request.port}`);

  tcp.on('data', (chunk: Buffer) => stream.flow.send(chunk));
  stream.flow.source(tcp);
  tcp.on('end', () => stream.control({ type: 'eof' }));
  tcp.on('error', (error) => stream.fail(error));
  tcp.on('close', () => stream.close());
  stream.listen({
    data: (frame) => stream.flow.deliver(tcp, frame),
    control: (message) => {
      if (message.type === 'eof') tcp.end();
    },
  });
  stream.control({ type: 'ready' });
}

function connected(tcp: Socket, target: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (reason: string): void => {
      clearTimeout(timer);
      tcp.off('connect', done);
      tcp.destroy();
      reject(new FlotillaError('NETWORK_ERROR', `cannot connect to ${target}: ${reason}`));
    };
    const done = (): void => {
      clearTimeout(timer);
      tcp.off('error', failed).off('close', closed);
      resolve();
    };
    const failed = (error: NodeJS.ErrnoException): void =>
      fail(error.code === 'ECONNREFUSED' ? 'connection refused' : error.message);
    const closed = (): void => fail('the stream ended');
    const timer = setTimeout(() => fail('timed out'), CONNECT_TIMEOUT_MS);
    tcp.once('connect', done).once('error', failed).once('close', closed);
  });
}
