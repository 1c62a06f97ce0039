import { type ChildProcessByStdio, spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { StreamOpenMessage } from '@flotilla/protocol';
import { run, tempDir } from '@flotilla/testkit';
import type { StreamRelay } from './stream-relay.js';

/** A key and self-signed certificate for 127.0.0.1 (openssl), and the certificate's file for NODE_EXTRA_CA_CERTS. */
export async function loopbackCertificate(): Promise<{
  key: string;
  cert: string;
  certFile: string;
  remove(): Promise<void>;
}> {
  const dir = await tempDir('flotilla-tls-');
  const keyFile = join(dir.path, 'key.pem');
  const certFile = join(dir.path, 'cert.pem');
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ]);
  return { key: await readFile(keyFile, 'utf8'), cert: await readFile(certFile, 'utf8'), certFile, remove: dir.remove };
}

/**
 * test-support/remote-device.js in a node process of its own, dialling `relay`: `open()` hands it a stream-open
 * message, `stop()` ends its streams and waits for it to exit. `env` is laid over this process's environment.
 */
export class DeviceProcess {
  private constructor(readonly child: ChildProcessByStdio<Writable, Readable, null>) {}

  static async start(relay: StreamRelay, options: { env?: NodeJS.ProcessEnv; nodeFlags?: string[] } = {}) {
    const script = new URL('./remote-device.js', import.meta.url).pathname;
    const child = spawn(process.execPath, [...(options.nodeFlags ?? []), script], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: {
        ...process.env,
        ...options.env,
        FLOTILLA_RELAY: JSON.stringify({
          apiEndpoint: relay.apiEndpoint,
          uuid: relay.uuid,
          deviceApiKey: relay.deviceApiKey,
        }),
      },
    });
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`the device process exited (${code}) before it was ready`)));
      createInterface({ input: child.stdout }).once('line', () => resolve());
    });
    return new DeviceProcess(child);
  }

  get pid(): number {
    return this.child.pid as number;
  }

  open(message: StreamOpenMessage): void {
    this.child.stdin.write(`${JSON.stringify(message)}\n`);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin.end();
    await exited;
  }
}
