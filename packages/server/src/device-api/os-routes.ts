import { DEVICE_ROUTES, type OsConfig } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';

/**
 * What balenaOS's os-config gets at boot. Flotilla runs no OpenVPN server (remote access goes through the agent's
 * WebSocket) and puts SSH keys in config.json (`os.sshKeys`), so both services get empty files: os-config then
 * leaves no stale VPN configuration pointing elsewhere, and its run succeeds. No config.json key is overridden.
 */
const OS_CONFIG: OsConfig = {
  services: { openvpn: { config: '', ca: '' }, ssh: { authorized_keys: '' } },
  config: { overrides: {} },
  schema_version: '1.0.0',
};

/** The routes balenaOS's host tools call, which need no device key. */
export function registerOsRoutes(app: FastifyInstance): void {
  app.get(DEVICE_ROUTES.osConfig.path, async () => OS_CONFIG);
  app.get(DEVICE_ROUTES.ping.path, async (_request, reply) => reply.type('text/plain; charset=utf-8').send('OK'));
}
