import assert from 'node:assert/strict';
import { test } from 'node:test';
import { healthOf } from './docker-engine.js';

test("a container's healthcheck verdict is read from the engine's list status, and absent without one", () => {
  assert.deepEqual(healthOf('Up 2 minutes (healthy)'), { health: 'healthy' });
  assert.deepEqual(healthOf('Up 3 seconds (health: starting)'), { health: 'starting' });
  assert.deepEqual(healthOf('Up About a minute (unhealthy)'), { health: 'unhealthy' });
  assert.deepEqual(healthOf('Up 5 seconds'), {});
  assert.deepEqual(healthOf('Exited (1) 4 seconds ago'), {});
  assert.deepEqual(healthOf('Restarting (1) 2 seconds ago'), {});
  assert.deepEqual(healthOf(undefined), {});
});
