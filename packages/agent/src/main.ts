#!/usr/bin/env node
/**
 * Entry point of the agent process. `npm run build` bundles it into dist/bundle/main.mjs, which bin/flotilla-agent
 * runs with the node flags tuned for a device (see that script).
 */
import './cli.js';
