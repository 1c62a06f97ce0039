// The tag is protocol's (deltas.ts): the CLI's `os preload` saves images under it, so the device loads them as the
// planner finds them. Re-exported so the agent's modules keep importing it from here.
export { DELTA_TAG_PREFIX, deltaTag } from '@flotilla/protocol';
