import {
  DEVICE_ROUTES,
  generateDeviceUuid,
  generateKey,
  path,
  type DeviceReport,
  type TargetState,
} from '@flotilla/protocol';

/** A request the server leaves unanswered fails after this, so `stop` never waits forever. */
const REQUEST_TIMEOUT_MS = 30_000;

/** What a simulated device does with a release it is given: run it healthy, or fail and stay on what it ran. */
export type ReleaseOutcome = 'healthy' | 'fail';
/** What it does with a host OS version it is told (target `os`): commit it after its trial, or roll back. */
export type OsOutcome = 'commit' | 'roll-back';

/**
 * A device without an engine, honest to the device API over HTTP: it fetches its target state (with its ETag, as
 * the agent does), "applies" it at once, and reports what it runs as the agent does (status, `update_failed`, the
 * release's services `Running`). A release `decide` says to fail is reported as a failed update while the device
 * stays on the release it ran before, as a device that rolled back does. Used by the rollout tests and bench.
 */
export class SimulatedDevice {
  /** The release commit it runs, null before it ran any. */
  running: string | null = null;
  /** Commits it was given, in order. */
  readonly given: string[] = [];
  /** The host OS version it runs (its os-release VERSION_ID); it reports `Flotilla OS <version>`. */
  osVersion = '1.0.0';
  /** OS versions it was told to install, in order (each tried once, as the agent does for an image). */
  readonly osGiven: string[] = [];
  /** What it does with each OS version it is told. */
  decideOs: (version: string) => OsOutcome = () => 'commit';
  private etag: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private busy: Promise<void> | undefined;

  constructor(
    public baseUrl: string,
    readonly uuid: string,
    readonly key: string,
    public decide: (commit: string) => ReleaseOutcome = () => 'healthy',
  ) {}

  /** Registers a new device in the fleet with the provisioning key, as `POST /device/register` does. */
  static async register(
    baseUrl: string,
    fleetId: number,
    provisioningKey: string,
    decide?: (commit: string) => ReleaseOutcome,
  ): Promise<SimulatedDevice> {
    const uuid = generateDeviceUuid();
    const key = generateKey();
    const response = await fetch(`${baseUrl}${DEVICE_ROUTES.register.path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${provisioningKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ application: fleetId, uuid, device_type: 'generic-amd64', api_key: key }),
    });
    if (response.status !== 201) throw new Error(`register: HTTP ${response.status} ${await response.text()}`);
    return new SimulatedDevice(baseUrl, uuid, key, decide);
  }

  /** One fetch of the target state and, when it changed, one report of the outcome. */
  step(): Promise<void> {
    this.busy ??= this.fetchAndApply().finally(() => {
      this.busy = undefined;
    });
    return this.busy;
  }

  /** Steps every `intervalMs` until `stop`. */
  start(intervalMs = 100): void {
    // Unref'd: a test that fails before stopping its devices must not keep its process alive.
    this.timer ??= setInterval(() => void this.step().catch(() => undefined), intervalMs).unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.busy?.catch(() => undefined);
  }

  private async fetchAndApply(): Promise<void> {
    const response = await fetch(`${this.baseUrl}${path(DEVICE_ROUTES.targetState.path, { uuid: this.uuid })}`, {
      headers: { authorization: `Bearer ${this.key}`, ...(this.etag ? { 'if-none-match': this.etag } : {}) },
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    if (response.status === 304) return;
    if (response.status !== 200) throw new Error(`target state: HTTP ${response.status}`);
    const target = (await response.json()) as TargetState;
    this.etag = response.headers.get('etag') ?? undefined;
    await this.followOs(target[this.uuid]?.os);
    const apps = target[this.uuid]?.apps ?? {};
    const [appUuid, app] = Object.entries(apps)[0] ?? [];
    if (!appUuid || !app) return;
    const [commit, release] = Object.entries(app.releases)[0] ?? [];
    if (commit === undefined || !release || commit === this.running) return;
    this.given.push(commit);
    const failed = this.decide(commit) === 'fail';
    if (!failed) this.running = commit;
    await this.report({
      status: failed ? 'Update failed' : 'Idle',
      update_failed: failed,
      is_on__commit: this.running,
      apps: {
        [appUuid]: {
          release_uuid: this.running,
          releases:
            this.running === null
              ? {}
              : {
                  [this.running]: {
                    update_status: 'done',
                    services: Object.fromEntries(
                      Object.entries(release.services).map(([name, s]) => [
                        name,
                        { image: s.image, status: 'Running' },
                      ]),
                    ),
                  },
                },
        },
      },
    });
  }

  /**
   * An A/B host told an OS version it does not run and was not told before: it reports the update written, then
   * committed in its new OS (or rolled back from its trial), as the agent's update machine does, at once.
   */
  private async followOs(os: { version: string } | undefined): Promise<void> {
    if (!os || os.version === this.osVersion || this.osGiven.includes(os.version)) return;
    this.osGiven.push(os.version);
    const update = (phase: 'armed' | 'committed' | 'rolled-back') => ({
      phase,
      version: os.version,
      progress: null,
      error_code: phase === 'rolled-back' ? 'TRIAL_UNHEALTHY' : null,
      error: phase === 'rolled-back' ? 'the engine did not answer in the trial boot' : null,
    });
    await this.report({ os_update: update('armed') });
    if (this.decideOs(os.version) === 'roll-back') {
      await this.report({ os_update: update('rolled-back') });
      return;
    }
    this.osVersion = os.version;
    await this.report({ os_version: `Flotilla OS ${os.version}`, os_update: update('committed') });
  }

  async report(body: DeviceReport): Promise<void> {
    const response = await fetch(`${this.baseUrl}${DEVICE_ROUTES.reportState.path}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${this.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ [this.uuid]: body }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`report: HTTP ${response.status}`);
  }
}
