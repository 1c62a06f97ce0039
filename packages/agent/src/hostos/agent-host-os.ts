import type { DeviceOsUpdate, TargetOs } from '@flotilla/protocol';
import type { Logger } from 'pino';
import { controlPlaneConnected, engineAnswers } from './health.js';
import { startHostOs } from './host-os.js';
import { controlPlaneImage } from './image-download.js';
import { OsDelta } from './os-delta.js';
import { OsFollower } from './os-follower.js';

export interface AgentHostOsStart {
  /** config.json's raw `hostOS`: absent on a host without A/B updates, and then this does nothing. */
  hostOS: unknown;
  dataDir: string;
  /** The file the booted slot is read from (default /proc/cmdline). */
  cmdlineFile?: string | undefined;
  /** Managed devices: the image comes from the control plane with the device key, resumed after a cut link. */
  controlPlane?: { apiEndpoint: string; uuid: string; deviceApiKey: string; ca?: string[] | undefined } | undefined;
  /** The engine, asked for its platform by the trial boot's health check. */
  engine: { platform(): Promise<unknown> };
  /** Managed devices: whether the control plane connection is up (the trial boot's other check). */
  connected?: (() => boolean) | undefined;
  /** The booted OS's version (os-release VERSION_ID): a target naming it is not written again. */
  runningVersion: string | undefined;
  /** Whether deltas are on (config var SUPERVISOR_DELTA): OS images by delta too. Default: on. */
  deltas?: (() => boolean) | undefined;
  /** The target's `os` as the agent holds it now. */
  target: () => TargetOs | undefined;
  reboot: () => Promise<void>;
  log: Logger;
  /** A line for the device's log, which the user sees. */
  system: (message: string) => void;
}

/**
 * The host OS part of the agent, for its composition root: made before the control-plane session (whose report
 * shows `update` and whose new targets go to `follow`), started once the session is (its connection is a health
 * check of the trial boot). On a host without A/B updates `update` stays null and `follow` does nothing.
 */
export class AgentHostOs {
  /** Where the host OS update stands, for the device report. */
  update: DeviceOsUpdate | null = null;
  private follower: OsFollower | undefined;

  /** `changed`: the report should be sent again. */
  constructor(private readonly changed: () => void) {}

  /**
   * Carries the persisted update on across this boot (a trial boot commits once the engine answers and the control
   * plane is connected, else goes back), then follows the target's `os` (managed devices).
   */
  async start(o: AgentHostOsStart): Promise<void> {
    const updater = await startHostOs({
      hostOS: o.hostOS,
      dataDir: o.dataDir,
      ...(o.cmdlineFile !== undefined ? { cmdlineFile: o.cmdlineFile } : {}),
      ...(o.controlPlane
        ? {
            openImage: controlPlaneImage(o.controlPlane),
            osDelta: new OsDelta({
              endpoint: o.controlPlane,
              dataDir: o.dataDir,
              log: o.log,
              ...(o.deltas ? { enabled: o.deltas } : {}),
            }),
          }
        : {}),
      runningVersion: o.runningVersion,
      reboot: o.reboot,
      healthChecks: [
        engineAnswers(() => o.engine.platform()),
        ...(o.connected ? [controlPlaneConnected(o.connected)] : []),
      ],
      log: o.log,
      system: o.system,
      report: (update) => {
        this.update = update;
        this.changed();
      },
    });
    if (!updater || !o.controlPlane) return;
    this.follower = new OsFollower(updater, o.controlPlane.apiEndpoint, o.log, o.runningVersion);
    this.follower.follow(o.target());
  }

  /** A new target may name another host OS; the follower decides, and starts the update in the background. */
  follow(target: TargetOs | undefined): void {
    this.follower?.follow(target);
  }
}
