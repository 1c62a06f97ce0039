import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startServer, type RunningServer } from '@flotilla/server';
import { apiCall, type ApiAnswer } from '@flotilla/server/testing';
import type { Device } from '@flotilla/protocol';
import { run, tempDir } from '@flotilla/testkit';
import { Tap } from './tap.js';

export interface ServiceSpec {
  image: string;
  environment?: Record<string, string>;
  labels?: Record<string, string>;
  /** Further compose keys of the service (ports, volumes, depends_on, networks, healthcheck…). */
  compose?: Record<string, unknown>;
}

/** One release of the test fleet's app: its services, and the named volumes and extra networks they use. */
export interface ReleaseSpec {
  services: Record<string, ServiceSpec>;
  volumes?: string[];
  networks?: string[];
}

/**
 * The real control plane for agent tests: `startServer` from @flotilla/server (SQLite in a temporary folder), one
 * fleet made through its user API, and a Tap in front (see tap.ts) through which the device talks to it. The
 * server's public URL is the tap's, so registry token realms and pushed image references also go through the tap.
 */
export class ControlPlane {
  private constructor(
    readonly tap: Tap,
    /** The server now running (another one after `restart()`). */
    public server: RunningServer,
    readonly adminKey: string,
    readonly fleet: { id: number; uuid: string; slug: string },
    /** The server's data folder (its registry is `registry/` in it). */
    readonly dataDir: string,
    private readonly removeDir: () => Promise<void>,
  ) {}

  static async start(): Promise<ControlPlane> {
    const dir = await tempDir('flotilla-agent-cp-');
    const tap = new Tap();
    await tap.up();
    try {
      const server = await ControlPlane.serve(tap, join(dir.path, 'server'));
      tap.upstream = new URL(server.url);
      const adminKey = server.admin?.apiKey;
      if (!adminKey) throw new Error('a fresh server bootstraps an admin with an API key');
      const slug = `fleet-${randomBytes(4).toString('hex')}`;
      const answer = await apiCall(server.url, 'POST', '/api/v1/fleets', adminKey, { name: slug, slug });
      if (answer.status !== 201) throw new Error(`create fleet: ${answer.status} ${JSON.stringify(answer.data)}`);
      const fleet = { id: answer.data.id as number, uuid: answer.data.uuid as string, slug };
      const cp: ControlPlane = new ControlPlane(tap, server, adminKey, fleet, join(dir.path, 'server'), async () => {
        await tap.down();
        await cp.server.close();
        await dir.remove();
      });
      return cp;
    } catch (error) {
      await tap.down();
      await dir.remove();
      throw error;
    }
  }

  private static serve(tap: Tap, dataDir: string): Promise<RunningServer> {
    return startServer({ host: '127.0.0.1', port: 0, publicUrl: tap.url, dataDir, logLevel: false });
  }

  /**
   * Stops the server and starts another on the same data folder, as a restart does; the tap stays, so devices keep
   * their address (their requests meanwhile fail as against a server that is down).
   */
  async restart(): Promise<void> {
    this.tap.upstream = undefined;
    await this.server.close();
    this.server = await ControlPlane.serve(this.tap, this.dataDir);
    this.tap.upstream = new URL(this.server.url);
  }

  /** The address devices use (the tap's). */
  get url(): string {
    return this.tap.url;
  }

  /** One user-API request with the admin key, whatever its status. */
  answer(method: string, path: string, body?: unknown): Promise<ApiAnswer> {
    return apiCall(this.server.url, method, path, this.adminKey, body);
  }

  /** One user-API request with the admin key; fails the test on an error status. */
  // biome-ignore lint/suspicious/noExplicitAny: JSON answers of the server's API, checked by each test's assertions
  async api(method: string, path: string, body?: unknown): Promise<any> {
    const answer = await this.answer(method, path, body);
    if (answer.status >= 300) throw new Error(`${method} ${path} → ${answer.status} ${JSON.stringify(answer.data)}`);
    return answer.data;
  }

  /** The fleet's config.json as the server generates it, plus `extra`, written to `path`. */
  async writeConfig(path: string, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const config = { ...(await this.api('POST', `/api/v1/fleets/${this.fleet.slug}/config-json`, {})), ...extra };
    await writeFile(path, JSON.stringify(config));
    return config;
  }

  /** A successful release of the fleet, which every unpinned device of the fleet then targets; its commit. */
  async release(spec: ReleaseSpec): Promise<string> {
    const services = Object.fromEntries(
      Object.entries(spec.services).map(([name, s]) => [
        name,
        { image: s.image, environment: s.environment ?? {}, labels: s.labels ?? {}, ...(s.compose ?? {}) },
      ]),
    );
    const composition = {
      services,
      volumes: Object.fromEntries((spec.volumes ?? []).map((v) => [v, {}])),
      networks: Object.fromEntries((spec.networks ?? []).map((n) => [n, {}])),
    };
    const images = Object.fromEntries(Object.entries(spec.services).map(([name, s]) => [name, s.image]));
    const created = await this.api('POST', `/api/v1/fleets/${this.fleet.slug}/releases`, {
      composition,
      images,
      status: 'success',
    });
    return created.commit as string;
  }

  /** Pins the device to the release with `commit` (null: follow the fleet again). */
  async pin(uuid: string, commit: string | null): Promise<void> {
    await this.api('PATCH', `/api/v1/devices/${uuid}`, { pinnedRelease: commit });
  }

  device(uuid: string): Promise<Device> {
    return this.api('GET', `/api/v1/devices/${uuid}`);
  }

  /** Whether the server knows the device (it registered). */
  async registered(uuid: string): Promise<boolean> {
    return (await this.answer('GET', `/api/v1/devices/${uuid}`)).status === 200;
  }

  /** Sends a device action through the user API and waits for the device's answer. */
  async sendAction(
    uuid: string,
    action: { action: string; service?: string; force?: boolean },
  ): Promise<{ status: string; error: { code: string; message: string } | null }> {
    const created = await this.api('POST', `/api/v1/devices/${uuid}/actions?wait=30000`, action);
    return this.api('GET', `/api/v1/devices/${uuid}/actions/${created.id}`);
  }

  /**
   * Pushes a local image to the server's registry (as `<fleet slug>/<name>`, with the admin's credentials, in a
   * private docker config) and removes the pushed tag from the engine; the reference by digest devices pull.
   */
  async push(localRef: string, name: string): Promise<string> {
    const repo = `${this.tap.host}/${this.fleet.slug}/${name}`;
    const dockerConfig = await tempDir('flotilla-agent-docker-');
    const env = { ...process.env, DOCKER_CONFIG: dockerConfig.path };
    try {
      await run('docker', ['login', this.tap.host, '-u', 'admin', '--password-stdin'], {
        input: this.adminKey,
        env,
      });
      await run('docker', ['tag', localRef, `${repo}:pushed`], { env });
      const { stdout } = await run('docker', ['push', `${repo}:pushed`], { env });
      const digest = /digest: (sha256:[0-9a-f]{64})/.exec(stdout)?.[1];
      if (!digest) throw new Error(`docker push printed no digest: ${stdout}`);
      await run('docker', ['rmi', `${repo}:pushed`], { env });
      return `${repo}@${digest}`;
    } finally {
      await dockerConfig.remove();
    }
  }

  async close(): Promise<void> {
    await this.removeDir();
  }
}
