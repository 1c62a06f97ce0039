import type { GuessLimiter } from '../auth/guess-limiter.js';
import type { Db } from '../db/database.js';
import {
  authenticateCredentials,
  deviceMayPull,
  principalFromCredential,
  userMayPull,
  userMayPush,
} from '../auth/registry-access.js';
import type { RegistryPrincipal } from '../auth/registry-access.js';
import type { RegistryAccess } from './access.js';
import { locateFleetRepository } from './fleet-repositories.js';
import { locateOsRepository, osRepositoryAllows } from './os-repositories.js';
import { parseOsRepository } from '@flotilla/protocol';

/**
 * The registry's access rules for the Flotilla server: users pull their fleets' repos and push them unless observers
 * there; devices pull their fleet's.
 */
export function flotillaRegistryAccess(db: Db, limiter: GuessLimiter): RegistryAccess<RegistryPrincipal> {
  return {
    authenticate: (username, password, source) => authenticateCredentials(db, username, password, { limiter, source }),
    authorize: async (principal, repository, action) => {
      // OS release repositories (`os.<org id>/<device type>`) before the fleets' rules: they are no fleet's.
      const os = parseOsRepository(repository);
      if (os) return osRepositoryAllows(principal, os.organizationId, action);
      if (principal.kind === 'device')
        return action === 'pull' && (await deviceMayPull(db, principal.uuid, repository));
      // An observer reads (pulls) and never writes (pushes); roles are read afresh on every request (principalOf).
      return action === 'pull' ? userMayPull(db, principal, repository) : userMayPush(db, principal, repository);
    },
    subjectOf: (principal) => (principal.kind === 'device' ? `device:${principal.uuid}` : `user:${principal.userId}`),
    credentialOf: (principal) => principal.credential,
    principalOf: (credential) => principalFromCredential(db, credential),
    locate: async (repository) => (await locateOsRepository(db, repository)) ?? locateFleetRepository(db, repository),
  };
}
