// The builder lives in protocol since the CLI's `os preload` builds the same document; the server's callers keep
// importing it from here.
export { buildTargetState } from '@flotilla/protocol';
export type { TargetStateInput } from '@flotilla/protocol';
