import { STREAM_CHANNEL, channelFrame, readChannelFrame, type StreamRequest } from '@flotilla/protocol';
import type { ContainerEngine } from '../engine/container-engine.js';
import { EngineFrames } from '../engine/engine-frames.js';
import type { ServiceLookup } from './service-lookup.js';
import type { StreamSocket } from './stream-socket.js';

export type ShellRequest = Extract<StreamRequest, { kind: 'shell' }>;

/** ^D: end of input on a terminal. */
export const EOT = Buffer.from([4]);

/** bash when the image has it, else sh (busybox and alpine images have only sh). */
const INTERACTIVE = 'if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi';

/**
 * A shell (or one command) in a service's container, through the engine's exec API: the process's stdin and output
 * travel on the engine connection the exec was started on, so nothing is installed in the container and nothing
 * listens on it. With a TTY the output is the terminal's (stdout channel); without, stdout and stderr stay apart.
 */
export async function serveServiceShell(
  stream: StreamSocket,
  request: ShellRequest & { service: string },
  services: ServiceLookup,
  engine: Pick<ContainerEngine, 'exec'>,
): Promise<void> {
  const { id } = await services.container(request.service);
  const exec = await engine.exec(id, {
    cmd: ['sh', '-c', request.command ?? INTERACTIVE],
    tty: request.tty,
    env: request.tty ? ['TERM=xterm-256color'] : [],
  });
  const output = exec.stream;
  // WARNING: the engine has no way to kill an exec. Closing its connection hangs up a TTY session; without a TTY
  // the process reads EOF on stdin and is left to end by itself.
  stream.onEnd(() => output.destroy());
  if (stream.open && request.tty && request.cols && request.rows)
    await exec.resize(request.cols, request.rows).catch(() => undefined); // a process already gone has no size

  const frames = new EngineFrames((name, data) => stream.flow.send(channelFrame(STREAM_CHANNEL[name], data)));
  output.on('data', (chunk: Buffer) =>
    request.tty ? stream.flow.send(channelFrame(STREAM_CHANNEL.stdout, chunk)) : frames.write(chunk),
  );
  stream.flow.source(output);
  output.on('error', () => undefined); // 'close' follows
  output.once('close', () => {
    if (!stream.open) return;
    exec.exitCode().then(
      (code) => {
        stream.control({ type: 'exit', code });
        stream.close();
      },
      (error: unknown) => stream.fail(error),
    );
  });
  stream.listen({
    data: (frame) => {
      const input = readChannelFrame(frame);
      if (input?.channel === STREAM_CHANNEL.stdin) stream.flow.deliver(output, input.data);
    },
    control: (message) => {
      // A terminal has no half-close: its end-of-input is ^D (what a terminal's line discipline turns into EOF).
      if (message.type === 'eof') request.tty ? output.write(EOT) : output.end();
      else if (message.type === 'resize' && request.tty) exec.resize(message.cols, message.rows).catch(() => undefined);
    },
  });
  stream.control({ type: 'ready' });
}
