import { USER_ROUTES, WRITER_ROLES } from '@flotilla/protocol';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';

/**
 * Whether the signed-in user may change things in the organization (by handle): false for an observer, undefined
 * until known. The forms hide on anything but true; the server refuses an observer's write whatever the page shows.
 */
export function useCanWrite(organization: string | undefined): boolean | undefined {
  const api = useApi();
  const orgs = useResource('organizations', () => api.call(USER_ROUTES.listOrganizations));
  if (organization === undefined || !orgs.data) return undefined;
  const org = orgs.data.items.find((o) => o.handle === organization);
  if (!org) return false;
  return org.role === undefined || WRITER_ROLES.includes(org.role);
}
