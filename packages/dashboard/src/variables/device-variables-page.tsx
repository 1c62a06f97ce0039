import {
  type ConfigSource,
  type EffectiveVariable,
  type EnvSource,
  USER_ROUTES,
  effectiveConfig,
  effectiveEnvironment,
} from '@flotilla/protocol';
import { useMemo, useState } from 'react';
import { Link, useParams } from 'react-router';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';
import { useFleetEvents } from '../devices/use-fleet-events.js';
import { ErrorText } from '../ui/error-text.js';
import { short } from '../ui/format.js';
import { EffectiveTable } from './effective-table.js';
import { OwnedVariables } from './owned-variables.js';
import { useCanWrite } from '../auth/use-can-write.js';
import { variableCalls } from './variable-calls.js';
import { ADD, type EditorTarget } from './variable-editor.js';
import './variables.css';

/**
 * A device's variables: per service, what it gets and from where (release, fleet, device, per service), what each
 * value overrides, and the device's own values to add, edit, delete, or set over an inherited one. The same for
 * its configuration.
 */
export function DeviceVariablesPage() {
  const { uuid: ref = '' } = useParams();
  const api = useApi();
  const device = useResource(`device:${ref}`, () => api.call(USER_ROUTES.getDevice, { params: { uuid: ref } }));
  const d = device.data;
  const uuid = d?.uuid ?? ref;
  const slug = d?.fleet ?? null;
  // A deploy or a pin changes the device's target release, and with it the services and their compose values. The
  // stream says so with one `fleet-changed` for the whole fleet, no `device` event: the device is asked again.
  useFleetEvents(slug, {
    onDevice: (changed) => {
      if (changed.uuid === uuid) device.mutate(() => changed);
    },
    onRemoved: () => undefined,
    onFleetChanged: device.reload,
    onReconnected: device.reload,
  });
  const fleet = useResource(slug && `fleet:${slug}`, () =>
    api.call(USER_ROUTES.getFleet, { params: { slug: slug ?? '' } }),
  );
  const commit = d?.targetRelease ?? null;
  const release = useResource(commit && `release:${commit}`, () =>
    api.call(USER_ROUTES.getRelease, { params: { ref: commit ?? '' } }),
  );
  const calls = useMemo(
    () => ({
      fleetEnv: variableCalls(api, { fleet: slug ?? '' }, 'env'),
      fleetConfig: variableCalls(api, { fleet: slug ?? '' }, 'config'),
      deviceEnv: variableCalls(api, { device: uuid }, 'env'),
      deviceConfig: variableCalls(api, { device: uuid }, 'config'),
    }),
    [api, slug, uuid],
  );
  const fleetEnv = useResource(slug && `env:fleet:${slug}`, calls.fleetEnv.list);
  const fleetConfig = useResource(slug && `config:fleet:${slug}`, calls.fleetConfig.list);
  const deviceEnv = useResource(d ? `env:device:${uuid}` : null, calls.deviceEnv.list);
  const deviceConfig = useResource(d ? `config:device:${uuid}` : null, calls.deviceConfig.list);
  const canWrite = useCanWrite(fleet.data?.organization);
  const [envTarget, setEnvTarget] = useState<EditorTarget>(ADD);
  const [configTarget, setConfigTarget] = useState<EditorTarget>(ADD);

  const services = useMemo(() => (release.data?.services ?? []).map((s) => s.name).sort(), [release.data]);
  const envReady = fleetEnv.data && deviceEnv.data && (commit === null || release.data);
  const env = { fleetEnv: fleetEnv.data ?? [], deviceEnv: deviceEnv.data ?? [] };
  const scopes: (string | null)[] = commit === null ? [null] : services;
  const composition = release.data?.composition.services ?? {};

  const editEnv = (service: string | null) => (item: EffectiveVariable<EnvSource>) =>
    setEnvTarget({
      mode: 'edit',
      draft: { name: item.name, value: item.value, service: item.source === 'device-service' ? (service ?? '') : '' },
    });
  const overrideEnv = (service: string | null) => (item: EffectiveVariable<EnvSource>) =>
    setEnvTarget({ mode: 'override', draft: { name: item.name, value: item.value, service: service ?? '' } });
  const editConfig = (mode: EditorTarget['mode']) => (item: EffectiveVariable<ConfigSource>) =>
    setConfigTarget({ mode, draft: { name: item.name, value: item.value, service: '' } });

  return (
    <section className="variables-page device-variables" aria-labelledby="variables-title">
      <div className="page-head">
        <p className="crumbs">
          <Link to="/fleets">Fleets</Link> /{' '}
          {d && (
            <>
              <Link to={`/fleets/${encodeURIComponent(d.fleet)}`}>{d.fleet}</Link> /{' '}
              <Link to={`/devices/${encodeURIComponent(d.uuid)}`}>{d.name}</Link> /
            </>
          )}
        </p>
        <h1 id="variables-title">Variables</h1>
      </div>
      {/* One failure said once: a device not found fails every load after it for the same reason. */}
      <ErrorText
        error={[device, fleet, release, fleetEnv, fleetConfig, deviceEnv, deviceConfig].find((r) => r.error)?.error}
      />
      {canWrite === false && (
        <p className="notice">
          Your role in this device's organization only reads: you can see these, not change them.
        </p>
      )}

      <section aria-labelledby="device-env-title">
        <h2 id="device-env-title">Environment</h2>
        <p className="var-about">
          {commit === null
            ? 'The device has no release yet: these are what every service will share. '
            : `Per service of release ${release.data ? `${release.data.version} (${short(commit)})` : short(commit)}. `}
          Later wins: the release's compose file &lt; fleet &lt; device &lt; fleet · service &lt; device · service. A
          value the device sets for all services does not beat one the fleet sets for a service.
        </p>
        {!envReady && <p className="page-status">Loading…</p>}
        {envReady &&
          scopes.map((service) => {
            const items = effectiveEnvironment(service, composition[service ?? '']?.environment, env);
            const caption = service === null ? 'All services' : `Service ${service}`;
            return items.length === 0 ? (
              <p key={service ?? ''} className="muted">
                {caption}: no variable.
              </p>
            ) : (
              <EffectiveTable
                key={service ?? ''}
                caption={caption}
                service={service}
                items={items}
                canWrite={canWrite === true}
                onEdit={editEnv(service)}
                onOverride={overrideEnv(service)}
              />
            );
          })}
        <h3>Set on this device</h3>
        <OwnedVariables
          kind="env"
          headingLevel={3}
          calls={calls.deviceEnv}
          rows={deviceEnv.data}
          onChanged={deviceEnv.reload}
          services={services}
          canWrite={canWrite}
          target={envTarget}
          onTarget={setEnvTarget}
          caption="Environment variables set on this device"
          empty="None: the device takes the fleet's."
          addTitle="Add a device variable"
          deleteNote="The device goes back to what it inherits; the services that had it restart."
          note={(row) =>
            row.service !== null && commit !== null && !services.includes(row.service)
              ? 'not in the release: unused'
              : null
          }
        />
      </section>

      <section aria-labelledby="device-config-title">
        <h2 id="device-config-title">Configuration</h2>
        <p className="var-about">The device's own value of a setting beats the fleet's.</p>
        {fleetConfig.data && deviceConfig.data ? (
          (() => {
            const items = effectiveConfig({ fleetConfig: fleetConfig.data, deviceConfig: deviceConfig.data });
            return items.length === 0 ? (
              <p className="muted">No configuration variable: the device uses the defaults.</p>
            ) : (
              <EffectiveTable
                caption="Configuration the device gets"
                service={null}
                items={items}
                canWrite={canWrite === true}
                onEdit={editConfig('edit')}
                onOverride={editConfig('override')}
              />
            );
          })()
        ) : (
          <p className="page-status">Loading…</p>
        )}
        <h3>Set on this device</h3>
        <OwnedVariables
          kind="config"
          headingLevel={3}
          calls={calls.deviceConfig}
          rows={deviceConfig.data}
          onChanged={deviceConfig.reload}
          services={null}
          canWrite={canWrite}
          target={configTarget}
          onTarget={setConfigTarget}
          caption="Configuration variables set on this device"
          empty="None: the device takes the fleet's."
          addTitle="Add a device configuration variable"
          deleteNote="The device goes back to the fleet's value or the default."
        />
      </section>
    </section>
  );
}
