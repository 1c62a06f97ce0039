import type { CurrentContainer, TargetModel } from '../reconcile/state.js';
import type { LogTarget } from './collector.js';

/**
 * Pure: the containers whose output the collector follows, each with its target service id when the target still
 * names its service. INVARIANT: a container that ever ran stays followed while it exists, so a stop and start keeps
 * its log position; only never-started ('created') ones are left out.
 */
export function containersToFollow(target: TargetModel | null, containers: readonly CurrentContainer[]): LogTarget[] {
  const serviceIds = new Map(
    (target?.apps ?? []).flatMap((a) => a.services.map((s) => [`${a.appId}/${s.serviceName}`, s.serviceId] as const)),
  );
  return containers
    .filter((c) => c.state !== 'created')
    .map((c) => {
      const serviceId = serviceIds.get(`${c.appId}/${c.serviceName}`);
      return { containerId: c.id, serviceName: c.serviceName, ...(serviceId !== undefined ? { serviceId } : {}) };
    });
}
