import { USER_ROUTES } from '@flotilla/protocol';
import { useMemo, useState } from 'react';
import { Link, useParams } from 'react-router';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';
import { FleetNav } from '../fleets/fleet-nav.js';
import { ErrorText } from '../ui/error-text.js';
import { OwnedVariables } from './owned-variables.js';
import { useCanWrite } from '../auth/use-can-write.js';
import { variableCalls } from './variable-calls.js';
import { ADD, type EditorTarget } from './variable-editor.js';
import { type VariableKind, servicesOf } from './variable-input.js';
import './variables.css';

const TEXT = {
  env: {
    title: 'Variables',
    about:
      "Environment variables of every device's services, for all services or one. Each service gets, the later " +
      "winning: its release's compose environment, the fleet's for all services, the device's own for all " +
      "services, the fleet's for that service, the device's own for that service. A service restarts when its " +
      'environment changes.',
    caption: 'Environment variables of the fleet',
    empty: 'No environment variable yet.',
    addTitle: 'Add a fleet variable',
    deleteNote: 'Its devices lose it at their next update, and the services that had it restart without it.',
  },
  config: {
    title: 'Configuration',
    about:
      'Settings of the agent and the host of every device. FLOTILLA_, BALENA_ and RESIN_ name the same setting; a ' +
      "device's own value beats the fleet's.",
    caption: 'Configuration variables of the fleet',
    empty: 'No configuration variable yet: every device uses the defaults.',
    addTitle: 'Add a configuration variable',
    deleteNote: 'Its devices go back to the default (or their own value) at their next update.',
  },
} as const;

/** A fleet's environment variables (`kind` env) or configuration variables: list, add, edit, delete. */
export function FleetVariablesPage({ kind }: { kind: VariableKind }) {
  const { slug = '' } = useParams();
  const api = useApi();
  const text = TEXT[kind];
  const fleet = useResource(`fleet:${slug}`, () => api.call(USER_ROUTES.getFleet, { params: { slug } }));
  const releases = useResource(kind === 'env' ? `releases:${slug}` : null, () =>
    api.call(USER_ROUTES.listFleetReleases, { params: { slug } }),
  );
  const calls = useMemo(() => variableCalls(api, { fleet: slug }, kind), [api, slug, kind]);
  const vars = useResource(`${kind}:fleet:${slug}`, calls.list);
  const canWrite = useCanWrite(fleet.data?.organization);
  const [target, setTarget] = useState<EditorTarget>(ADD);
  const services = useMemo(() => servicesOf(releases.data?.items ?? []), [releases.data]);

  return (
    <section className="variables-page" aria-labelledby="variables-title">
      <div className="page-head">
        <p className="crumbs">
          <Link to="/fleets">Fleets</Link> /{' '}
          <Link to={`/fleets/${encodeURIComponent(slug)}`}>{fleet.data?.name ?? slug}</Link> /
        </p>
        <h1 id="variables-title">{text.title}</h1>
      </div>
      <FleetNav slug={slug} />
      <ErrorText error={fleet.error ?? vars.error ?? releases.error} />
      <p className="var-about">{text.about}</p>
      {canWrite === false && (
        <p className="notice">Your role in this fleet's organization only reads: you can see these, not change them.</p>
      )}
      {!vars.data && vars.loading && <p className="page-status">Loading…</p>}
      <OwnedVariables
        kind={kind}
        calls={calls}
        rows={vars.data}
        onChanged={vars.reload}
        services={kind === 'env' ? services : null}
        canWrite={canWrite}
        target={target}
        onTarget={setTarget}
        caption={text.caption}
        empty={text.empty}
        addTitle={text.addTitle}
        deleteNote={text.deleteNote}
        headingLevel={2}
      />
    </section>
  );
}
