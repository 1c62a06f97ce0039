import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeStep, step, type Action, type Executors, type StepArgs } from './steps.js';

const noop = async (): Promise<void> => undefined;

describe('steps', () => {
  it('the executor table must name every action but wait (checked by the compiler)', () => {
    const complete: Executors = {
      fetch: noop,
      removeImage: noop,
      createNetwork: noop,
      removeNetwork: noop,
      createVolume: noop,
      removeVolume: noop,
      createContainer: noop,
      startContainer: noop,
      stopContainer: noop,
      killContainer: noop,
      updateMetadata: noop,
      takeLock: noop,
      releaseLock: noop,
    };
    // @ts-expect-error: a table without `updateMetadata` must not compile; if it ever does, tsc -b fails here.
    const incomplete: Executors = { ...complete, updateMetadata: undefined };
    const actions: Array<Exclude<Action, 'wait'>> = Object.keys(complete) as Array<Exclude<Action, 'wait'>>;
    assert.equal(actions.length, 13);
    assert.ok(incomplete);
  });

  it('step() builds the discriminated union from the action→args map', () => {
    const args: StepArgs['removeVolume'] = { name: '7_data' };
    const s = step('removeVolume', args);
    assert.deepEqual(s, { action: 'removeVolume', name: '7_data' });
    assert.equal(describeStep(s), 'removeVolume 7_data');
  });
});
