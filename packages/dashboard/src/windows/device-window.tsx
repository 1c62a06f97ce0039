import { type Device, USER_ROUTES } from '@flotilla/protocol';
import { useApi } from '../auth/session.js';
import { describeUpdateWindow } from '../ui/format.js';
import { UpdateWindowEditor } from './update-window-editor.js';

/** The window the device applies updates in, its own or its fleet's; its own is set and cleared here. */
export function DeviceWindow({
  device,
  canWrite,
  onChanged,
}: {
  device: Device;
  canWrite: boolean;
  onChanged(device: Device): void;
}) {
  const api = useApi();
  const params = { params: { uuid: device.uuid } };
  const w = device.updateWindow;
  const own =
    w?.source === 'device' ? { cron: w.cron, durationSeconds: w.durationSeconds, timezone: w.timezone } : null;
  const whose =
    w === null
      ? 'Neither the device nor its fleet has a window.'
      : w.source === 'device'
        ? 'This is the device’s own window, in place of its fleet’s.'
        : 'This is the fleet’s window; setting one here gives the device its own.';
  return (
    <UpdateWindowEditor
      key={device.uuid}
      owner="device"
      own={own}
      canWrite={canWrite}
      description={`${describeUpdateWindow(device)}. ${whose}`}
      onSet={async (body) => {
        onChanged(await api.call(USER_ROUTES.setDeviceUpdateWindow, { ...params, body }));
      }}
      onClear={async () => {
        await api.call(USER_ROUTES.clearDeviceUpdateWindow, params);
        onChanged(await api.call(USER_ROUTES.getDevice, params));
      }}
    />
  );
}
