import { type ConfigJsonRequest, configJsonRequestSchema } from '@flotilla/protocol';

/** The provisioning form's fields, as typed: the same options `flotilla os config` takes as flags. */
export interface ConfigJsonForm {
  hostname: string;
  developmentMode: boolean;
  persistentLogging: boolean;
  /** One authorized public key per line. */
  sshKeys: string;
  wifiSsid: string;
  wifiKey: string;
  /** Seconds between target-state polls; empty: the server's default. */
  pollIntervalSeconds: string;
}

export const EMPTY_CONFIG_JSON_FORM: ConfigJsonForm = {
  hostname: '',
  developmentMode: false,
  persistentLogging: false,
  sshKeys: '',
  wifiSsid: '',
  wifiKey: '',
  pollIntervalSeconds: '',
};

/**
 * The request body for the form, checked with the protocol's schema before it is sent: an empty field is left out
 * (the server's default), and a mistake comes back as words naming the field, not as a refused request.
 */
export function configJsonRequest(
  form: ConfigJsonForm,
): { ok: true; body: ConfigJsonRequest } | { ok: false; error: string } {
  const body: Record<string, unknown> = {};
  const hostname = form.hostname.trim();
  if (hostname !== '') body.hostname = hostname;
  if (form.developmentMode) body.developmentMode = true;
  if (form.persistentLogging) body.persistentLogging = true;
  const keys = form.sshKeys
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  if (keys.length > 0) body.sshKeys = keys;
  if (form.wifiSsid.trim() !== '') body.wifiSsid = form.wifiSsid.trim();
  if (form.wifiKey !== '') {
    if (form.wifiSsid.trim() === '') return { ok: false, error: 'A WiFi passphrase needs the network name (SSID).' };
    body.wifiKey = form.wifiKey;
  }
  const seconds = form.pollIntervalSeconds.trim();
  if (seconds !== '') {
    if (!/^\d+$/.test(seconds)) return { ok: false, error: 'Poll interval: a whole number of seconds.' };
    body.appUpdatePollInterval = Number(seconds) * 1000;
  }
  const parsed = configJsonRequestSchema.safeParse(body);
  if (parsed.success) return { ok: true, body: parsed.data };
  const issue = parsed.error.issues[0];
  const field = FIELD_NAMES[String(issue?.path[0])] ?? String(issue?.path[0] ?? 'form');
  return { ok: false, error: `${field}: ${issue?.message ?? 'invalid'}` };
}

const FIELD_NAMES: Record<string, string> = {
  hostname: 'Hostname',
  sshKeys: 'SSH keys',
  wifiSsid: 'WiFi network',
  wifiKey: 'WiFi passphrase',
  appUpdatePollInterval: 'Poll interval (at least 10 s)',
};
