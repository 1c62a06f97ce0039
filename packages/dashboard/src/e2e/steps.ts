import { test } from 'node:test';

/**
 * Tests that build on each other (one browser session walking a workflow): once a step fails, the later ones are
 * skipped with the name of the one that failed, instead of failing for its reason.
 */
export function dependentSteps(): (name: string, body: () => Promise<void>) => void {
  let failed: string | undefined;
  return (name, body) => {
    test(name, async (t) => {
      if (failed) {
        t.skip(`the step before failed: ${failed}`);
        return;
      }
      try {
        await body();
      } catch (error) {
        failed = name;
        throw error;
      }
    });
  };
}
