import { FlotillaError } from '@flotilla/protocol';

/**
 * Error codes meaning "no room to write": the file system's (ENOSPC, EDQUOT quota), SQLite's (SQLITE_FULL) and
 * PostgreSQL's (53100 disk_full, 53200 out_of_memory is not one of them).
 */
const NO_SPACE_CODES = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL', '53100']);

/** True when `error` (or an error it wraps as `cause`) is a write refused for lack of space. */
export function isNoSpaceError(error: unknown): boolean {
  for (let e = error, depth = 0; e && depth < 5; depth += 1) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NO_SPACE_CODES.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

export function storageFullError(): FlotillaError {
  return new FlotillaError(
    'STORAGE_FULL',
    'the server has no space left to store this; nothing was half-written; retry once space is freed',
  );
}
