import { USER_ROUTES, osDeviceTypeSchema } from '@flotilla/protocol';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';

/**
 * The OS releases a device or a fleet can be told to run: its organization's, of its device type, newest first
 * (null organization: not known yet, nothing asked). The server refuses any other version (OS_RELEASE_NOT_FOUND).
 * A fleet's or a device's type is free text, an OS release's is not (osDeviceTypeSchema): a type no release can have
 * has none, and is not sent, since the server would refuse the query itself (VALIDATION_FAILED).
 */
export function useOsReleasesFor(organization: string | null, deviceType: string) {
  const api = useApi();
  const possible = osDeviceTypeSchema.safeParse(deviceType).success;
  return useResource(organization === null ? null : `os-releases:${organization}:${deviceType}`, async () =>
    possible
      ? api.call(USER_ROUTES.listOsReleases, { query: { organization: organization ?? '', deviceType } })
      : { items: [] },
  );
}
