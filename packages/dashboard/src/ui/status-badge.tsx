import type { Device } from '@flotilla/protocol';
import { deviceState, deviceStateLabel } from '../devices/device-status.js';

/** The device's state in words and colour; the words alone carry the meaning (colour is not the only cue). */
export function StatusBadge({ device }: { device: Pick<Device, 'isOnline' | 'status' | 'updateFailed'> }) {
  return <span className={`badge badge-${deviceState(device)}`}>{deviceStateLabel(device)}</span>;
}
