import { HANDOVER_FELL_BACK } from '../reconcile/plan.js';
import type { Action, Executors, Step, StepOf } from '../reconcile/steps.js';

/**
 * The system log lines (balena style) the device shows for what the executor does: one line when a step starts,
 * one when it ended, one when it failed. Steps without a user-visible effect (rename, networks) say nothing.
 */
export function stepMessages(s: Step): { start: string; done: string; failed: string } | undefined {
  switch (s.action) {
    case 'fetch':
      return {
        start: `Downloading image '${s.image}'`,
        done: `Downloaded image '${s.image}'`,
        failed: `Failed to download image '${s.image}'`,
      };
    case 'removeImage':
      return {
        start: `Deleting image '${s.image}'`,
        done: `Deleted image '${s.image}'`,
        failed: `Failed to delete image '${s.image}'`,
      };
    case 'createVolume':
      return {
        start: `Creating volume '${s.volume.name}'`,
        done: `Created volume '${s.volume.name}'`,
        failed: `Failed to create volume '${s.volume.name}'`,
      };
    case 'removeVolume':
      return {
        start: `Removing volume '${s.name}'`,
        done: `Removed volume '${s.name}'`,
        failed: `Failed to remove volume '${s.name}'`,
      };
    case 'createContainer': {
      const what = `'${s.service.serviceName} ${s.service.image}'`;
      return {
        start: `Installing service ${what}`,
        done: `Installed service ${what}`,
        failed: `Failed to install service ${what}`,
      };
    }
    case 'startContainer':
      return {
        start: `Starting service '${s.serviceName}'`,
        done: `Service started '${s.serviceName}'`,
        failed: `Failed to start service '${s.serviceName}'`,
      };
    case 'stopContainer':
      return {
        start: `Stopping service '${s.serviceName}'`,
        done: `Service stopped '${s.serviceName}'`,
        failed: `Failed to stop service '${s.serviceName}'`,
      };
    case 'killContainer':
      if (s.reason.startsWith(HANDOVER_FELL_BACK))
        return {
          start: `Hand-over of service '${s.serviceName}' fell back to stopping the old container first (${s.reason.slice(HANDOVER_FELL_BACK.length + 2)} held exclusively)`,
          done: `Service killed '${s.serviceName}'`,
          failed: `Failed to kill service '${s.serviceName}'`,
        };
      return {
        start: `Killing service '${s.serviceName}'`,
        done: `Service killed '${s.serviceName}'`,
        failed: `Failed to kill service '${s.serviceName}'`,
      };
    default:
      return undefined;
  }
}

/** The same executor table, each entry announcing itself through `system` (errors still propagate unchanged). */
export function withSystemLogs(executors: Executors, system: (message: string) => void): Executors {
  const wrapped: Partial<Record<keyof Executors, unknown>> = {};
  for (const action of Object.keys(executors) as Array<keyof Executors>) {
    const run = executors[action] as (s: StepOf<Exclude<Action, 'wait'>>, signal: AbortSignal) => Promise<void>;
    wrapped[action] = async (s: StepOf<Exclude<Action, 'wait'>>, signal: AbortSignal) => {
      const messages = stepMessages(s);
      if (messages) system(messages.start);
      try {
        await run(s, signal);
      } catch (error) {
        if (messages && !signal.aborted)
          system(`${messages.failed}: ${error instanceof Error ? error.message : String(error)}`);
        throw error;
      }
      if (messages) system(messages.done);
    };
  }
  // Every key of the original table was wrapped with the same signature.
  return wrapped as Executors;
}
