// The revision a bench ran on, for its report.
import { execFileSync } from 'node:child_process';

const root = new URL('../..', import.meta.url).pathname;

/** Short HEAD commit, with `+changes` if tracked files differ from it; 'unknown' outside a git checkout. */
export function revision() {
  try {
    const head = execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty =
      execFileSync('git', ['-C', root, 'status', '--porcelain', '--untracked-files=no'], {
        encoding: 'utf8',
      }).trim() !== '';
    return `${head}${dirty ? '+changes' : ''}`;
  } catch {
    return 'unknown';
  }
}
