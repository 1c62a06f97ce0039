import assert from 'node:assert/strict';
import { test } from 'node:test';
import type {
  KyselyPlugin,
  PluginTransformQueryArgs,
  PluginTransformResultArgs,
  QueryResult,
  RootOperationNode,
  UnknownRow,
} from 'kysely';
import type { WebSocket } from 'ws';
import { testDatabases, waitFor } from '@flotilla/testkit';
import { SingleNodeBus } from '../bus/event-bus.js';
import { bumpDevice, bumpFleet } from '../db/revisions.js';
import { TargetStateCache } from '../device-api/target-state-cache.js';
import { devicePartReader } from '../device-api/device-part.js';
import { createPollLookup } from '../device-api/poll-lookup.js';
import { TargetStates } from '../device-api/target-state.js';
import { fleetWithDevice, harness } from '../testing/harness.js';
import { ConnectionHub } from './connection-hub.js';
import { TargetWatcher } from './target-watcher.js';

/** A connection as the watcher sees it: open, recording what it is sent. */
function openSocket(): WebSocket & { sent: string[] } {
  const sent: string[] = [];
  return { OPEN: 1, readyState: 1, sent, send: (m: string) => sent.push(m) } as unknown as WebSocket & {
    sent: string[];
  };
}

/** A cache that, the first time the greeting looks its target up (its revisions just read), bumps the fleet. */
class BumpingCache extends TargetStateCache {
  bumped: Promise<void> | undefined;
  constructor(private readonly bump: () => Promise<void>) {
    super();
  }
  override get(...args: Parameters<TargetStateCache['get']>) {
    this.bumped ??= this.bump();
    return super.get(...args);
  }
}

/**
 * Holds back the answer of the first select made once armed (the greeting computing the target, right after the
 * bump), so the watcher hears the bump and reads the fleet while the greeting has not seeded its connection yet.
 */
class SlowFirstSelect implements KyselyPlugin {
  armed = false;
  private readonly selects = new WeakSet<object>();
  private held = false;
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    if (this.armed && args.node.kind === 'SelectQueryNode') this.selects.add(args.queryId);
    return args.node;
  }
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    if (!this.held && this.selects.has(args.queryId)) {
      this.held = true;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    return args.result;
  }
}

// The interleaving that loses a change unless the greeting is registered before it reads: the bump commits after the
// greeting read the revisions, and the watcher hears it and reads the fleet before the greeting seeded its
// connection. SQLite orders that deterministically (one connection); the dialect does not matter to the watcher.
const sqlite = testDatabases().find((d) => d.dialect === 'sqlite')!;
test('[sqlite] target watcher: a change committed while a connection is being greeted is announced to it', async () => {
  const h = await harness(sqlite);
  try {
    const { fleetId, uuid, deviceId } = await fleetWithDevice(h, h.adminKey, 'greet-race');
    const db = h.app.flotilla.db;
    const row = await db
      .selectFrom('devices')
      .innerJoin('fleets', 'fleets.id', 'devices.fleet_id')
      .select(['devices.revision as revision', 'devices.fleet_id as fleet_id', 'fleets.revision as fleet_revision'])
      .where('devices.id', '=', deviceId)
      .executeTakeFirstOrThrow();
    // The device holds its current target: the greeting alone has nothing to announce.
    const { entry } = await new TargetStates(db, devicePartReader(h.database)).for(uuid, {
      id: deviceId,
      ...row,
    });
    const slow = new SlowFirstSelect();
    const watched = db.withPlugin(slow);
    const cache = new BumpingCache(async () => {
      slow.armed = true;
      await bumpFleet(db, fleetId);
    });
    const hub = new ConnectionHub();
    const watcher = new TargetWatcher(
      watched,
      hub,
      new TargetStates(watched, devicePartReader(h.database), cache),
      createPollLookup(h.database).lookup,
      new SingleNodeBus(h.database.targetChanges),
      {
        sweepMs: 600_000,
      },
    );
    watcher.start();
    try {
      const socket = openSocket();
      hub.attach(deviceId, socket);
      assert.equal(await watcher.greet({ id: deviceId, uuid, key_hash: null, ...row }, socket, entry.etag), true);
      await cache.bumped;
      await watcher.settled();
      // The bump moved only the revision (the target is the same), so only the watcher can have said so.
      await waitFor('the change announced', () => socket.sent.length > 0, { timeoutMs: 2_000 });
      assert.deepEqual(socket.sent, [JSON.stringify({ type: 'target-changed' })]);
    } finally {
      await watcher.stop();
    }
  } finally {
    await h.close();
  }
});

// A connection's key check reads the device's part with its revisions (routes.ts), and the greeting computes the
// target from that part when no notice came in between. One that did: the part is stale, and must be read again.
for (const testDb of testDatabases())
  test(`[${testDb.label}] target watcher: a greeting uses the part read with the key check only for its revisions`, async () => {
    const h = await harness(testDb);
    try {
      const { uuid, deviceId } = await fleetWithDevice(h, h.adminKey, 'greet-part');
      const ctx = h.app.flotilla;
      const keyCheck = await createPollLookup(h.database).lookup(uuid, true);
      assert.ok(keyCheck?.part, 'the key check read the part');
      // The device holds the target of the key check's revisions; then its name changes (a new target).
      const { entry } = await new TargetStates(ctx.db, devicePartReader(h.database)).for(uuid, keyCheck);
      await ctx.db.updateTable('devices').set({ name: 'renamed-meanwhile' }).where('id', '=', deviceId).execute();
      await bumpDevice(ctx.db, deviceId);
      const hub = new ConnectionHub();
      const watcher = new TargetWatcher(
        ctx.db,
        hub,
        new TargetStates(ctx.db, devicePartReader(h.database)),
        ctx.deviceLookup,
        new SingleNodeBus(h.database.targetChanges),
      );
      const socket = openSocket();
      hub.attach(deviceId, socket);
      assert.equal(await watcher.greet({ ...keyCheck, uuid }, socket, entry.etag), true);
      assert.deepEqual(socket.sent, [JSON.stringify({ type: 'target-changed' })]);
    } finally {
      await h.close();
    }
  });
