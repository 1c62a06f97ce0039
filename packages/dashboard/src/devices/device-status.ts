import type { Device, DeviceStatusFilter } from '@flotilla/protocol';

/**
 * Which of the dashboard's four states a device is in, for its badge. The agent reports `Idle`, `Updating` or
 * `Update failed` as `status`; a device that is not connected is offline whatever it last reported.
 */
export function deviceState(device: Pick<Device, 'isOnline' | 'status'>): DeviceStatusFilter {
  if (!device.isOnline) return 'offline';
  if (device.status === 'Update failed') return 'failed';
  if (device.status === 'Updating') return 'updating';
  return 'online';
}

/** The words on the badge: the device's own status while online (`Idle`, `Updating` …), else `Offline`. */
export function deviceStateLabel(device: Pick<Device, 'isOnline' | 'status'>): string {
  if (!device.isOnline) return 'Offline';
  return device.status ?? 'Online';
}

export const STATUS_LABELS: Record<DeviceStatusFilter, string> = {
  online: 'Online',
  offline: 'Offline',
  updating: 'Updating',
  failed: 'Failed',
};
