import { type Device, type DeviceStatusFilter, FAILED_STATUSES, UPDATING_STATUSES } from '@flotilla/protocol';

/**
 * Which of the dashboard's four states a device is in, for its badge, as the server's status filter decides it
 * (protocol `deviceStatusFilterSchema`): offline when not connected, whatever it last reported; failed when its
 * status says so or its last report said `update_failed` (the balena Supervisor's way), before updating.
 */
export function deviceState(device: Pick<Device, 'isOnline' | 'status' | 'updateFailed'>): DeviceStatusFilter {
  if (!device.isOnline) return 'offline';
  const status = device.status?.toLowerCase() ?? '';
  if (device.updateFailed || FAILED_STATUSES.includes(status)) return 'failed';
  if (UPDATING_STATUSES.includes(status)) return 'updating';
  return 'online';
}

/**
 * The words on the badge: the device's own status while online (`Idle`, `Updating` …), `Update failed` when only
 * the flag says so, else `Offline`.
 */
export function deviceStateLabel(device: Pick<Device, 'isOnline' | 'status' | 'updateFailed'>): string {
  if (!device.isOnline) return 'Offline';
  if (deviceState(device) === 'failed' && !FAILED_STATUSES.includes(device.status?.toLowerCase() ?? ''))
    return 'Update failed';
  return device.status ?? 'Online';
}

export const STATUS_LABELS: Record<DeviceStatusFilter, string> = {
  online: 'Online',
  offline: 'Offline',
  updating: 'Updating',
  failed: 'Failed',
};
