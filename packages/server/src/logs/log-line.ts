import type { DeviceLogLine } from '@flotilla/protocol';

const MAX_MESSAGE = 64 * 1024;
const MAX_SERVICE_NAME = 63;

const optionalBoolean = (value: unknown) => value === undefined || typeof value === 'boolean';

/**
 * `deviceLogLineSchema` (protocol) checked by hand: the same rules (a loose object: unknown fields pass through; safe
 * integers as zod's `int()` wants), without building zod's result object for each of 10,000 lines a second.
 * INVARIANT: accepts exactly what the schema accepts; log-line.test.ts compares the two over a table and random lines.
 */
export function asDeviceLogLine(value: unknown): DeviceLogLine | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const line = value as Record<string, unknown>;
  const { message, timestamp, serviceId, serviceName } = line;
  if (typeof message !== 'string' || message.length > MAX_MESSAGE) return undefined;
  if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp) || timestamp < 0) return undefined;
  if (!optionalBoolean(line.isSystem) || !optionalBoolean(line.isStdErr)) return undefined;
  if (serviceId !== undefined && (typeof serviceId !== 'number' || !Number.isSafeInteger(serviceId))) return undefined;
  if (serviceName !== undefined && (typeof serviceName !== 'string' || serviceName.length > MAX_SERVICE_NAME))
    return undefined;
  return line as DeviceLogLine;
}
