import type { DeviceAction } from '@flotilla/protocol';

export const ACTION_LABELS: Record<DeviceAction, string> = {
  restart: 'Restart services',
  reboot: 'Reboot',
  shutdown: 'Shut down',
  identify: 'Identify',
  purge: 'Purge data',
  update: 'Update now',
  'restart-service': 'Restart',
  'stop-service': 'Stop',
  'start-service': 'Start',
};

/** Actions that lose work or reach out of remote control: each asks before it is sent. */
export const CONFIRM_ACTIONS: Partial<Record<DeviceAction, string>> = {
  reboot: 'The device restarts; its services stop until it is back.',
  shutdown: 'The device powers off and stays off until someone turns it on where it stands.',
  purge: "Every service's volumes are deleted and the services restart with empty data. This cannot be undone.",
};

/** What an action's outcome means, in words. */
export function outcomeWords(status: 'pending' | 'delivered' | 'done' | 'failed' | 'expired'): string {
  switch (status) {
    case 'pending':
      return 'waiting for the device to connect…';
    case 'delivered':
      return 'delivered, waiting for the device to finish…';
    case 'done':
      return 'done';
    case 'failed':
      return 'failed';
    case 'expired':
      return 'expired before the device connected';
  }
}
