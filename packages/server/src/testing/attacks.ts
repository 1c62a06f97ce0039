import assert from 'node:assert/strict';

/**
 * Counts the attempts of an attack test and how many the server refused, and prints the one-line summary the
 * security suite reports (`security: <topic>: N requests, N refused`). Every attempt is recorded with what it was,
 * so a failure names each request that got through instead of a bare count.
 */
export class AttackTally {
  attempts = 0;
  refused = 0;
  private readonly leaks: string[] = [];

  constructor(readonly topic: string) {}

  /** One attempt; `refused` says whether the server refused it as it must. */
  record(refused: boolean, what: string): void {
    this.attempts += 1;
    if (refused) this.refused += 1;
    else this.leaks.push(what);
  }

  /**
   * Prints the summary and fails with the list of attempts that were not refused. `outcome` names what a refusal
   * is where "refused" would mislead (a race's winner is not refused, it is one safe answer among others).
   */
  finish(unit = 'requests', outcome = 'refused'): void {
    console.log(`security: ${this.topic}: ${this.attempts} ${unit}, ${this.refused} ${outcome}`);
    assert.deepEqual(this.leaks, [], `${this.leaks.length} of ${this.attempts} attempts were not refused`);
    assert.ok(this.attempts > 0, 'no attempt was made');
  }
}

/** Runs `tasks` with at most `limit` in flight (the suite runs on 2 CI cores next to other tests). */
export async function bounded<T>(limit: number, tasks: ReadonlyArray<() => Promise<T>>): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < tasks.length; i = next++) results[i] = await (tasks[i] as () => Promise<T>)();
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

export const basicAuth = (username: string, password: string): string =>
  `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
