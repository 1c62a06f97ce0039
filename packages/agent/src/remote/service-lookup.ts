import { FlotillaError } from '@flotilla/protocol';
import type { ContainerEngine, ServiceContainer } from '../engine/container-engine.js';

/** Finds the running container of a service of the device's app, as remote requests name it. */
export class ServiceLookup {
  constructor(
    private readonly engine: Pick<ContainerEngine, 'serviceContainer'>,
    private readonly namespace: string,
    /** The app whose services requests name (the fleet's app); undefined: whichever app runs the service. */
    private readonly appId: () => number | undefined,
  ) {}

  async container(service: string): Promise<ServiceContainer> {
    const found = await this.engine.serviceContainer(this.namespace, service, this.appId());
    if (!found)
      throw new FlotillaError('SERVICE_NOT_FOUND', `service ${service} has no running container on the device`);
    return found;
  }

  /** The address the device reaches the service's container at. */
  async address(service: string): Promise<string> {
    const { address } = await this.container(service);
    if (!address) throw new FlotillaError('NETWORK_ERROR', `service ${service} has no network address on the device`);
    return address;
  }
}
