import type { DeviceAction } from '@flotilla/protocol';
import { useState } from 'react';
import { ConfirmDialog } from '../ui/confirm-dialog.js';
import { ACTION_LABELS, CONFIRM_ACTIONS } from './action-labels.js';
import type { ActionResult } from './use-device-actions.js';

const DEVICE_ACTIONS: DeviceAction[] = ['identify', 'update', 'restart', 'reboot', 'shutdown', 'purge'];

export interface DeviceActionsProps {
  deviceName: string;
  results: readonly ActionResult[];
  onAction(action: DeviceAction, service?: string): void;
}

/** The device-wide actions; the ones that lose work or control ask first. Results are announced as they change. */
export function DeviceActions({ deviceName, results, onAction }: DeviceActionsProps) {
  const [confirming, setConfirming] = useState<DeviceAction | null>(null);
  return (
    <section className="area-actions" aria-labelledby="actions-title">
      <h2 id="actions-title">Actions</h2>
      <div className="button-row">
        {DEVICE_ACTIONS.map((action) => (
          <button
            key={action}
            type="button"
            className={CONFIRM_ACTIONS[action] ? 'danger subtle' : undefined}
            onClick={() => (CONFIRM_ACTIONS[action] ? setConfirming(action) : onAction(action))}
          >
            {ACTION_LABELS[action]}
          </button>
        ))}
      </div>
      <ul className="action-results" aria-live="polite" aria-label="Action results">
        {results.map((result) => (
          <li key={result.key} className={`result-${result.tone}`}>
            {result.text}
          </li>
        ))}
      </ul>
      {confirming && (
        <ConfirmDialog
          title={`${ACTION_LABELS[confirming]} ${deviceName}?`}
          confirmLabel={ACTION_LABELS[confirming]}
          onConfirm={async () => {
            // Not awaited: the action's progress (up to a minute while the device is away) is its line in the
            // results, announced there; the dialog closes once it is sent, and focus goes back to its button.
            onAction(confirming);
          }}
          onClose={() => setConfirming(null)}
        >
          <p>{CONFIRM_ACTIONS[confirming]}</p>
        </ConfirmDialog>
      )}
    </section>
  );
}
