import { FlotillaError, USER_ROUTES as R } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import type { EventBus } from '../bus/event-bus.js';
import type { AppContext } from '../context.js';
import type { ConnectionHub } from '../device-connection/connection-hub.js';
import { visibleDevice } from '../devices/devices.js';
import { serve } from '../http/serve.js';
import { createAction, getAction, listActions } from './actions.js';

/**
 * Device actions, as users ask for them: `POST /api/v1/devices/:uuid/actions` (waits up to `?wait=` ms for the
 * device's answer), `GET …/actions`, `GET …/actions/:id`. They reach devices over the device connection
 * (device-connection/).
 */
export function registerActionRoutes(app: FastifyInstance, ctx: AppContext, hub: ConnectionHub, bus: EventBus): void {
  const { db } = ctx;

  serve(app, db, R.createDeviceAction, async ({ user, params, query, body }) => {
    const device = await visibleDevice(db, user, params.uuid);
    if (body.action.endsWith('-service') && !body.service)
      throw new FlotillaError('VALIDATION_FAILED', `${body.action} needs a service`);
    return createAction(db, hub, bus, device.id, body, query.wait);
  });

  serve(app, db, R.listDeviceActions, async ({ user, params }) => {
    const device = await visibleDevice(db, user, params.uuid);
    return { items: await listActions(db, device.id) };
  });

  serve(app, db, R.getDeviceAction, async ({ user, params }) => {
    const device = await visibleDevice(db, user, params.uuid);
    const action = await getAction(db, device.id, params.id);
    if (!action) throw new FlotillaError('NOT_FOUND', `no action ${params.id} for this device`);
    return action;
  });
}
