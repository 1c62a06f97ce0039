import { type Device, USER_ROUTES } from '@flotilla/protocol';
import type { DashboardApi } from '../api/dashboard-api.js';

/**
 * Pins a device to a release of its fleet (a commit), or with null lets it follow the fleet's release again; the
 * answer is the device as it is now. The device page (choosing a release) and the release page (choosing a device)
 * both pin through this.
 */
export function pinDevice(api: DashboardApi, uuid: string, release: string | null): Promise<Device> {
  return api.call(USER_ROUTES.updateDevice, { params: { uuid }, body: { pinnedRelease: release } });
}

/** What a pin did, in words. */
export function pinnedWords(release: string | null): string {
  return release === null ? 'Follows the fleet.' : 'Pinned.';
}
