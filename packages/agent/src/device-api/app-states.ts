import { findImage } from '../reconcile/plan.js';
import type { DeviceView } from '../reconcile/observed.js';
import type { CurrentContainer, CurrentState, TargetService } from '../reconcile/state.js';
import { buildAppsReport } from '../report/build-report.js';
import type { AppStateInfo } from './device-actions.js';

const isUp = (c: CurrentContainer): boolean => c.state === 'running' || c.state === 'restarting';

/**
 * Pure: the apps of the target as the local device API shows them (`GET /v2/applications/state`,
 * `/v2/state/status`): per service the status the state report gives it, its container and download progress. A
 * service stopped on request (`held`) whose container is down says 'Stopped'.
 */
export function appStates(view: DeviceView, held: (key: string) => boolean): AppStateInfo[] {
  const { current, target, progress } = view;
  if (!target) return [];
  const containers = current?.containers ?? [];
  const report = current ? buildAppsReport({ ...view, current, target }) : {};
  return target.apps.map((app) => {
    const reported = report[app.appUuid];
    const services = app.services.map((svc) => {
      const c = containerOf(containers, svc, current);
      const status =
        (app.commit && reported?.releases[app.commit]?.services[svc.serviceName]?.status) ??
        (c ? c.state : 'Awaiting download');
      return {
        serviceName: svc.serviceName,
        serviceId: svc.serviceId,
        appId: app.appId,
        imageId: svc.imageId,
        releaseId: svc.releaseId,
        commit: svc.commit,
        containerId: c?.id ?? null,
        status: held(`${app.appId}/${svc.serviceName}`) && c && !isUp(c) ? 'Stopped' : status,
        createdAt: c ? new Date(c.createdAt).toISOString() : null,
        downloadProgress: progress.get(svc.image) ?? null,
      };
    });
    return { appId: app.appId, appUuid: app.appUuid, name: app.name, commit: reported?.release_uuid ?? null, services };
  });
}

/** The container that stands for a service: a running one first, then the newest. */
export function pickContainer(
  containers: readonly CurrentContainer[],
  serviceName: string,
): CurrentContainer | undefined {
  return containers
    .filter((c) => c.serviceName === serviceName)
    .sort((a, b) => Number(isUp(b)) - Number(isUp(a)) || b.createdAt - a.createdAt)[0];
}

/** The service's container: one running its target config and image first, else any of its containers. */
function containerOf(
  containers: readonly CurrentContainer[],
  svc: TargetService,
  current: CurrentState | undefined,
): CurrentContainer | undefined {
  const image = current && findImage(current.images, svc.image);
  const mine = containers.filter((c) => c.appId === svc.appId && c.serviceName === svc.serviceName);
  return (
    pickContainer(
      image ? mine.filter((c) => c.imageId === image.id && c.configHash === svc.configHash) : [],
      svc.serviceName,
    ) ?? pickContainer(mine, svc.serviceName)
  );
}
