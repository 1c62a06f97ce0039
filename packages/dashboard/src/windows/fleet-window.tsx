import { type Fleet, USER_ROUTES, formatDurationSeconds } from '@flotilla/protocol';
import { useApi } from '../auth/session.js';
import { UpdateWindowEditor } from './update-window-editor.js';

/** The fleet's maintenance window: its devices' default (a device's own window replaces it). */
export function FleetWindow({ fleet, canWrite, onChanged }: { fleet: Fleet; canWrite: boolean; onChanged(): void }) {
  const api = useApi();
  const params = { params: { slug: fleet.slug } };
  const w = fleet.updateWindow;
  return (
    <UpdateWindowEditor
      key={fleet.slug}
      owner="fleet"
      own={w}
      canWrite={canWrite}
      description={
        w
          ? `Devices apply updates from ${w.cron} (${w.timezone}), for ${formatDurationSeconds(w.durationSeconds)}, unless they have their own window; they download them at any time.`
          : 'None: devices apply updates as soon as they have them (unless they have their own window).'
      }
      onSet={async (body) => {
        await api.call(USER_ROUTES.setFleetUpdateWindow, { ...params, body });
        onChanged();
      }}
      onClear={async () => {
        await api.call(USER_ROUTES.clearFleetUpdateWindow, params);
        onChanged();
      }}
    />
  );
}
