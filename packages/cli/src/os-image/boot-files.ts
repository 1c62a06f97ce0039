import { randomUUID } from 'node:crypto';
import { FlotillaError } from '@flotilla/protocol';
import { hasControlCharacter } from './fat-names.js';

/** Where balenaOS looks for NetworkManager connection files in the boot partition. */
export const CONNECTIONS_DIR = 'system-connections';
/** The one connection file `os configure` owns; configuring again replaces it. */
export const WIFI_CONNECTION = `${CONNECTIONS_DIR}/flotilla-wifi`;

const SECRET_KEYS = new Set(['deviceApiKey', 'provisioningApiKey', 'apiKey', 'psk']);
export const REDACTED = '<redacted>';

/** WiFi SSID: 1-32 bytes, no control characters (they would break the keyfile's line format). */
export function checkWifi(
  ssid: string | undefined,
  key: string | undefined,
): { ssid: string; key?: string } | undefined {
  if (ssid === undefined) {
    if (key !== undefined) throw new FlotillaError('VALIDATION_FAILED', '--wifi-key needs --wifi-ssid');
    return undefined;
  }
  if (Buffer.byteLength(ssid) < 1 || Buffer.byteLength(ssid) > 32 || hasControlCharacter(ssid))
    throw new FlotillaError(
      'VALIDATION_FAILED',
      `invalid --wifi-ssid ${JSON.stringify(ssid)}: 1-32 bytes, no control characters`,
    );
  if (key !== undefined && !/^[\u0020-\u007e]{8,63}$/.test(key))
    throw new FlotillaError(
      'VALIDATION_FAILED',
      'invalid --wifi-key: a WPA passphrase is 8-63 printable ASCII characters',
    );
  return key === undefined ? { ssid } : { ssid, key };
}

/** A NetworkManager keyfile for a WPA-PSK (or open) network, DHCP on both IP versions. */
export function wifiKeyfile(wifi: { ssid: string; key?: string }, uuid = randomUUID()): string {
  const lines = [
    '[connection]',
    'id=flotilla-wifi',
    `uuid=${uuid}`,
    'type=wifi',
    '',
    '[wifi]',
    'mode=infrastructure',
    // Keyfile values escape a leading space and backslashes; ';' starts a list in SSID lists only.
    `ssid=${escapeKeyfile(wifi.ssid)}`,
    '',
  ];
  if (wifi.key !== undefined)
    lines.push('[wifi-security]', 'auth-alg=open', 'key-mgmt=wpa-psk', `psk=${escapeKeyfile(wifi.key)}`, '');
  lines.push('[ipv4]', 'method=auto', '', '[ipv6]', 'addr-gen-mode=stable-privacy', 'method=auto', '');
  return lines.join('\n');
}

function escapeKeyfile(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/^ /, '\\s');
}

/** A copy of a config.json with every key replaced by `<redacted>` (at any depth: `os.network.wifi.psk` too). */
export function redactConfig(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactConfig);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    if (SECRET_KEYS.has(key) && typeof inner === 'string') out[key] = REDACTED;
    else if (key === 'deviceApiKeys' && inner !== null && typeof inner === 'object')
      out[key] = Object.fromEntries(Object.keys(inner).map((k) => [k, REDACTED]));
    else out[key] = redactConfig(inner);
  }
  return out;
}

/** A keyfile with its `psk=` (and any other secret) lines redacted. */
export function redactKeyfile(text: string): string {
  return text.replace(/^(\s*(?:psk|password|wep-key\d|private-key-password)\s*=).*$/gm, `$1${REDACTED}`);
}
