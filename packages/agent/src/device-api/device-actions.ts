import type { DeviceLogLine, TargetDevice } from '@flotilla/protocol';

export type ServiceAction = 'restart' | 'stop' | 'start';

export interface ServiceStateInfo {
  serviceName: string;
  serviceId: number;
  appId: number;
  imageId: number;
  releaseId: number | null;
  commit: string | null;
  containerId: string | null;
  status: string;
  createdAt: string | null;
  downloadProgress: number | null;
}

export interface AppStateInfo {
  appId: number;
  appUuid: string;
  name: string;
  commit: string | null;
  services: ServiceStateInfo[];
}

export interface DeviceInfo {
  uuid: string;
  apiPort: number;
  ipAddress: string;
  macAddress: string | null;
  osVersion: string;
  agentVersion: string;
  status: string;
  updatePending: boolean;
  updateDownloaded: boolean;
  updateFailed: boolean;
  downloadProgress: number | null;
  commit: string | null;
}

/**
 * What the device can be asked to do, by the local device API and by actions from the control plane alike.
 * Actions that would kill or restart a service throw FlotillaError('UPDATE_LOCKED') while an update lock is held,
 * unless `force` is set.
 */
export interface DeviceActions {
  readonly version: string;
  developmentMode(): boolean;
  /** False when the agent's loop is stuck (no pass finished for too long) or its store is unusable. */
  healthy(): boolean;
  device(): DeviceInfo;
  apps(): AppStateInfo[];
  /** True while a pass has steps left to run. */
  applying(): boolean;
  triggerUpdate(force: boolean): void;
  restartApp(appId: number, force: boolean): Promise<void>;
  purgeApp(appId: number, force: boolean): Promise<void>;
  serviceAction(action: ServiceAction, appId: number, serviceName: string, force: boolean): Promise<void>;
  reboot(force: boolean): Promise<void>;
  shutdown(force: boolean): Promise<void>;
  identify(): Promise<void>;
  hostname(): string;
  setHostname(hostname: string): Promise<void>;
  localTarget(): TargetDevice | undefined;
  setLocalTarget(device: TargetDevice): void;
  subscribeLogs(listener: (line: DeviceLogLine) => void): () => void;
}
