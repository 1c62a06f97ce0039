import type { ContainerRun } from '../engine/container-engine.js';

/** Restarts by the engine's restart policy that make a service count as crash-looping during the soak. */
export const CRASH_LOOP_RESTARTS = 3;

/** One service of the release under watch, with how its container has fared (undefined: none, or gone). */
export interface ServiceRun {
  service: string;
  containerId: string;
  /** The service's restart policy: only with `no` is an exit final (the engine restarts the others). */
  restart: 'no' | 'always' | 'on-failure' | 'unless-stopped';
  run: ContainerRun | undefined;
}

export interface Failure {
  service: string;
  containerId: string;
  reason: string;
}

/**
 * Pure: whether a release under watch has failed, judged by its services' containers. Failed: a service restarted
 * by its restart policy CRASH_LOOP_RESTARTS times (crash loop; with a non-zero exit code, repeated non-zero exits),
 * exited non-zero for good (no restart policy brings it back), is unhealthy by its compose healthcheck (the
 * healthcheck's own `retries` are the grace), or, once the soak has ended, is still not healthy or is restarting.
 */
export function verdict(runs: readonly ServiceRun[], soakEnded: boolean): Failure | undefined {
  for (const { service, containerId, restart, run } of runs) {
    if (!run) continue;
    const fail = (reason: string): Failure => ({ service, containerId, reason });
    if (run.restartCount >= CRASH_LOOP_RESTARTS)
      return fail(
        run.exitCode !== 0
          ? `service ${service} exited non-zero (last exit code ${run.exitCode}) and was restarted ${run.restartCount} times`
          : `service ${service} is crash-looping: restarted ${run.restartCount} times`,
      );
    // WARNING: with any other policy the engine shows a container that is about to be restarted as exited for a
    // moment; judged then, a service with restarts left would count as gone for good.
    if ((run.state === 'exited' || run.state === 'dead') && run.exitCode !== 0 && restart === 'no')
      return fail(`service ${service} exited with code ${run.exitCode}`);
    if (run.health === 'unhealthy') return fail(`service ${service} is unhealthy by its healthcheck`);
    // A release is kept only with its services running when the soak ends: one the engine is still bringing back
    // crashed during the soak, whether or not it reached the crash-loop count.
    if (soakEnded && run.state === 'restarting')
      return fail(`service ${service} was still restarting when the soak ended (restarted ${run.restartCount} times)`);
    if (soakEnded && run.health === 'starting')
      return fail(`service ${service} did not become healthy by the end of the soak`);
  }
  return undefined;
}
