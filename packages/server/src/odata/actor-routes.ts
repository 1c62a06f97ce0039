import { FlotillaError, ODATA_ROUTES, type ODataWhoami } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../context.js';
import { callerOf, whoami } from './who.js';

/** The two non-OData calls balena-sdk makes first: who am I, and the public configuration. */
export function registerActorRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx;
  app.get(ODATA_ROUTES.whoami.path, async (request): Promise<ODataWhoami> => {
    const { caller } = await callerOf(db, request);
    if (!caller) throw new FlotillaError('UNAUTHENTICATED', 'invalid or expired key');
    return whoami(db, caller);
  });
  // balena's answer carries settings of its hosted services (analytics keys, …); Flotilla has none to give.
  app.get(ODATA_ROUTES.config.path, async () => ({}));
}
