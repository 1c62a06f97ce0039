import { FlotillaError } from '@flotilla/protocol';
import type { Logger } from 'pino';
import { loadPreload, type PreloadDeps } from './preload.js';

/**
 * The agent's start (agent.ts calls it before the first pass, so a device flashed with a preloaded release runs it
 * with no network at all): loads a preload (preload.ts). A bad one is logged and left: the device still provisions
 * and pulls its release from the control plane once online; the next start tries the preload again.
 */
export async function preloadAtStart(deps: Omit<PreloadDeps, 'signal'> & { log: Logger }): Promise<void> {
  try {
    const outcome = await loadPreload({ ...deps, signal: new AbortController().signal });
    if (outcome.status === 'loaded') deps.log.info(outcome, 'preloaded release loaded');
  } catch (error) {
    const code = error instanceof FlotillaError ? error.code : undefined;
    deps.log.error(
      { err: (error as Error).message, code, dir: deps.dir },
      'preloaded release could not be loaded; left as it is',
    );
  }
}
