#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';

/**
 * Entry point of `bin/flotilla-agent`. It tunes the runtime for a small, long-lived device process and then loads
 * the CLI: the flag must be set before the agent's modules load (ESM evaluates static imports first). A 1 MB young
 * generation keeps idle RSS down at a negligible GC cost for a process this quiet.
 */
setFlagsFromString('--max-semi-space-size=1');
await import('./cli.js');
