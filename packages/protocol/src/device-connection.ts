import { z } from 'zod';
import { streamOpenMessageSchema } from './remote-access.js';

/**
 * Messages on the one WebSocket a Flotilla agent keeps open to the control plane (`GET /device/v1/:uuid/connect`,
 * Bearer device key). It is outbound from the device, so it works behind NAT. Every message is a JSON object with
 * a `type`; new kinds (tunnels) add types on the same connection, and a peer ignores types it does not know.
 */
/**
 * The connect request's query parameter naming the target state the device holds: the `ETag` of its last fetch of
 * `GET /device/v3/:uuid/state`, e.g. `?etag=%22Xy…%22`. As it attaches the connection, the server compares it with
 * the device's current target and sends `target-changed` at once when they differ, or when the parameter is absent
 * (agents from before it, and devices that hold no fetched target): a device never stays on a target that changed
 * while it was away or connecting. From then on the server announces every change itself.
 */
export const DEVICE_CONNECT_ETAG_PARAM = 'etag';
export const deviceConnectQuerySchema = z.object({
  [DEVICE_CONNECT_ETAG_PARAM]: z.string().min(1).max(256).optional(),
});
export type DeviceConnectQuery = z.infer<typeof deviceConnectQuerySchema>;

/** What a user can ask of a device (`POST /api/v1/devices/:uuid/actions`), delivered over this connection. */
export const deviceActionSchema = z.enum([
  'restart',
  'reboot',
  'shutdown',
  'identify',
  'purge',
  'update',
  'restart-service',
  'stop-service',
  'start-service',
]);
export type DeviceAction = z.infer<typeof deviceActionSchema>;

export const actionMessageSchema = z.object({
  type: z.literal('action'),
  id: z.number().int(),
  action: deviceActionSchema,
  appId: z.number().int().optional(),
  service: z.string().optional(),
  force: z.boolean().optional(),
});
export type ActionMessage = z.infer<typeof actionMessageSchema>;

export const actionResultMessageSchema = z.object({
  type: z.literal('action-result'),
  id: z.number().int(),
  ok: z.boolean(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
});
export type ActionResultMessage = z.infer<typeof actionResultMessageSchema>;

/** The device's target state changed: fetch it now instead of at the next poll (instant update trigger). */
export const targetChangedMessageSchema = z.object({ type: z.literal('target-changed') });
export type TargetChangedMessage = z.infer<typeof targetChangedMessageSchema>;

export const serverMessageSchema = z.discriminatedUnion('type', [
  actionMessageSchema,
  targetChangedMessageSchema,
  streamOpenMessageSchema,
  z.object({ type: z.literal('ping') }),
]);
export type ServerMessage = z.infer<typeof serverMessageSchema>;

export const deviceMessageSchema = z.discriminatedUnion('type', [
  actionResultMessageSchema,
  z.object({ type: z.literal('pong') }),
]);
export type DeviceMessage = z.infer<typeof deviceMessageSchema>;
