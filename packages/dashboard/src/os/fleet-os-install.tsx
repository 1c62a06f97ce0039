import {
  type CreateOsRolloutRequest,
  type Fleet,
  type OsRelease,
  type OsRollout,
  USER_ROUTES,
} from '@flotilla/protocol';
import { type FormEvent, type ReactNode, useId, useState } from 'react';
import { describeError } from '../api/dashboard-api.js';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';
import { isActive } from '../rollouts/rollout-words.js';
import { ConfirmDialog } from '../ui/confirm-dialog.js';
import {
  batchesInWords,
  type InstallMode,
  STAGED_DEFAULTS,
  type StagedFields,
  stagedInstall,
} from './staged-os-install.js';

const MODES: [InstallMode, string][] = [
  ['all', 'All at once'],
  ['batches', 'Staged, in batches'],
  ['policy', 'Staged, with a rollout policy'],
];

/**
 * Installs an OS release of the fleet's device type on every device of that type, after a confirmation: all at once
 * (`PUT /fleets/:slug/os`, saying how many devices were told) or staged (`POST /fleets/:slug/os-rollouts`, as
 * `flotilla fleet os-update --rollout | --rollout-policy`: batches typed here, or one of the fleet's stored plans).
 * The staged fields are checked with the route's schema before anything is sent, each fault next to its field.
 */
export function FleetOsInstall({
  fleet,
  releases,
  onInstalled,
  onStaged,
  current,
}: {
  fleet: Fleet;
  releases: OsRelease[] | undefined;
  onInstalled: () => void;
  onStaged: (rollout: OsRollout) => void;
  /** The fleet's latest OS rollout: one still running or paused is superseded by a new one. */
  current: OsRollout | null | undefined;
}) {
  const api = useApi();
  const id = useId();
  const [chosen, setChosen] = useState('');
  const [mode, setMode] = useState<InstallMode>('all');
  const [fields, setFields] = useState<StagedFields>(STAGED_DEFAULTS);
  const [fault, setFault] = useState<{ field: keyof StagedFields; message: string } | null>(null);
  const [asking, setAsking] = useState<{ staged: CreateOsRolloutRequest | null } | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const policies = useResource(mode === 'policy' ? `rollout-policies:${fleet.slug}` : null, () =>
    api.call(USER_ROUTES.listRolloutPolicies, { params: { slug: fleet.slug } }),
  );
  const params = { params: { slug: fleet.slug } };

  const ask = (event: FormEvent) => {
    event.preventDefault();
    if (chosen === '') return;
    setDone(null);
    if (mode === 'all') {
      setFault(null);
      setAsking({ staged: null });
      return;
    }
    const input = stagedInstall(chosen, mode, fields, policies.data?.items ?? []);
    if (!input.ok) {
      setFault({ field: input.field, message: input.message });
      return;
    }
    setFault(null);
    setAsking({ staged: input.body });
  };
  const install = async () => {
    const answer = await api.call(USER_ROUTES.setFleetOs, { ...params, body: { version: chosen } });
    const n = answer.devices.length;
    setDone(`${n} ${n === 1 ? 'device' : 'devices'} of type ${answer.deviceType} told to run OS ${answer.version}.`);
    onInstalled();
  };
  const stage = async (body: CreateOsRolloutRequest) => {
    const r = await api.call(USER_ROUTES.createOsRollout, { ...params, body });
    setDone(
      `OS ${r.os.version} staged: ${r.batches.map((b) => `${b.label} (${b.devices})`).join(', ')}; batch 1 told.`,
    );
    onStaged(r);
  };

  const field = (name: keyof StagedFields, label: string, hint: string, control?: ReactNode) => {
    const inputId = `${id}-${name}`;
    const wrong = fault?.field === name;
    const describedBy = wrong ? `${inputId}-error ${inputId}-hint` : `${inputId}-hint`;
    return (
      <>
        <label htmlFor={inputId}>{label}</label>
        <div>
          {control ?? (
            <input
              id={inputId}
              value={fields[name]}
              spellCheck={false}
              autoComplete="off"
              aria-invalid={wrong || undefined}
              aria-describedby={describedBy}
              onChange={(e) => setFields({ ...fields, [name]: e.target.value })}
            />
          )}
          {wrong && (
            <p id={`${inputId}-error`} className="error window-field-note" role="alert">
              {fault.message}
            </p>
          )}
          <p id={`${inputId}-hint`} className="muted window-field-note">
            {hint}
          </p>
        </div>
      </>
    );
  };
  const policyItems = policies.data?.items;
  const policyWrong = fault?.field === 'policy';

  return (
    <>
      <h3>Install an OS</h3>
      <p>
        Install an OS release of the fleet's device type ({fleet.deviceType}) on every device of that type in the fleet,
        all at once or in batches.
      </p>
      <form className="os-install" aria-label="Install a host OS on the fleet" onSubmit={ask} noValidate>
        <div className="inline-form">
          <label htmlFor={`${id}-version`}>OS release</label>
          <select id={`${id}-version`} value={chosen} onChange={(e) => setChosen(e.target.value)} disabled={!releases}>
            <option value="">{releases?.length === 0 ? `none for ${fleet.deviceType}` : 'Choose a version'}</option>
            {releases?.map((release) => (
              <option key={release.id} value={release.version}>
                {release.version}
              </option>
            ))}
          </select>
        </div>
        <fieldset className="install-mode">
          <legend>How</legend>
          {MODES.map(([value, label]) => (
            <label key={value} className="install-choice">
              <input
                type="radio"
                name={`${id}-mode`}
                value={value}
                checked={mode === value}
                onChange={() => {
                  setMode(value);
                  setFault(null);
                }}
              />{' '}
              {label}
            </label>
          ))}
        </fieldset>
        {mode === 'batches' && (
          <div className="form-grid">
            {field('batches', 'Batches', 'cumulative percentages of the devices, the last 100%, e.g. 10%,50%,100%')}
            {field(
              'tag',
              'First batch tag',
              'optional key=value: the devices with this tag go first, e.g. canary=true',
            )}
            {field('soak', 'Soak (seconds)', 'how long a device runs the OS committed before it counts as succeeded')}
          </div>
        )}
        {mode === 'policy' && (
          <div className="form-grid">
            {field(
              'policy',
              'Rollout policy',
              policyItems?.length === 0
                ? 'the fleet has no stored plan: `flotilla rollout policy set` stores one'
                : 'a plan stored on the fleet, taken whole',
              <select
                id={`${id}-policy`}
                value={fields.policy}
                aria-invalid={policyWrong || undefined}
                aria-describedby={policyWrong ? `${id}-policy-error ${id}-policy-hint` : `${id}-policy-hint`}
                onChange={(e) => setFields({ ...fields, policy: e.target.value })}
                disabled={!policyItems}
              >
                <option value="">Choose a policy</option>
                {policyItems?.map((p) => (
                  <option key={p.name} value={p.name}>
                    {p.name} ({batchesInWords({ version: chosen, ...p.plan })})
                  </option>
                ))}
              </select>,
            )}
          </div>
        )}
        {policies.error !== undefined && (
          <p className="error" role="alert">
            {describeError(policies.error)}
          </p>
        )}
        <div className="button-row">
          <button type="submit" disabled={chosen === ''}>
            {mode === 'all' ? 'Install on the fleet…' : 'Stage on the fleet…'}
          </button>
        </div>
      </form>
      <div aria-live="polite">{done && <p className="success">{done}</p>}</div>
      {asking?.staged === null && (
        <ConfirmDialog
          title={`Install OS ${chosen} on fleet ${fleet.name}?`}
          confirmLabel="Install OS"
          onConfirm={install}
          onClose={() => setAsking(null)}
        >
          <p>
            Every {fleet.deviceType} device of the fleet writes it to its inactive slot and reboots into it; one that
            does not come up healthy goes back to the OS it runs now.
          </p>
        </ConfirmDialog>
      )}
      {asking?.staged && (
        <ConfirmDialog
          title={`Stage OS ${chosen} on fleet ${fleet.name}?`}
          confirmLabel="Start the rollout"
          onConfirm={() => stage(asking.staged as CreateOsRolloutRequest)}
          onClose={() => setAsking(null)}
        >
          <p>
            Batches {batchesInWords(asking.staged)} of the fleet's {fleet.deviceType} devices. The first batch is told
            at once; each next one once the devices before it committed the OS and ran it for the soak time. Failures
            past the threshold pause the rollout; a device that does not come up healthy goes back to its OS.
          </p>
          {current && isActive(current.status) && (
            <p>
              It supersedes the fleet's {current.status} rollout of OS {current.os.version}.
            </p>
          )}
        </ConfirmDialog>
      )}
    </>
  );
}
