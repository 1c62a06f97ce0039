import { USER_ROUTES, WRITER_ROLES } from '@flotilla/protocol';
import { useResource } from '../api/use-resource.js';
import { useApi } from './session.js';

/**
 * The handles of the organizations where the signed-in user may change things (every one but those they only
 * observe); undefined until known. Pages hide their forms and buttons elsewhere; the server refuses an observer's
 * write whatever a page shows, so this only spares them buttons that cannot work.
 */
export function useWritableOrganizations(): ReadonlySet<string> | undefined {
  const api = useApi();
  const orgs = useResource('organizations', () => api.call(USER_ROUTES.listOrganizations));
  if (!orgs.data) return undefined;
  return new Set(
    orgs.data.items.filter((o) => o.role === undefined || WRITER_ROLES.includes(o.role)).map((o) => o.handle),
  );
}

/** Whether the signed-in user may change things in the organization (by handle); undefined until known. */
export function useCanWrite(organization: string | undefined): boolean | undefined {
  const writable = useWritableOrganizations();
  if (organization === undefined || writable === undefined) return undefined;
  return writable.has(organization);
}
