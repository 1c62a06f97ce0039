import { type Fleet, USER_ROUTES } from '@flotilla/protocol';
import { type FormEvent, useState } from 'react';
import { describeError } from '../api/dashboard-api.js';
import { useApi } from '../auth/session.js';
import { type ConfigJsonForm, EMPTY_CONFIG_JSON_FORM, configJsonRequest } from './config-json-request.js';
import { downloadJson } from './download-json.js';

/**
 * Provisioning a new device of the fleet: the config.json `flotilla os config` writes, downloaded by the browser.
 * INVARIANT: the answer (it holds a new provisioning key) lives only in `submit` until it is handed to the download;
 * no state, log or message of the page keeps it. The WiFi passphrase is cleared with it.
 */
export function ConfigJsonPanel({ fleet }: { fleet: Fleet }) {
  const api = useApi();
  const [form, setForm] = useState<ConfigJsonForm>(EMPTY_CONFIG_JSON_FORM);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<{ text: string; ok: boolean } | null>(null);
  const set = <K extends keyof ConfigJsonForm>(key: K, value: ConfigJsonForm[K]) =>
    setForm((f) => ({ ...f, [key]: value }));

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setResult(null);
    const request = configJsonRequest(form);
    if (!request.ok) {
      setResult({ text: request.error, ok: false });
      return;
    }
    setBusy(true);
    try {
      downloadJson(
        'config.json',
        await api.call(USER_ROUTES.fleetConfigJson, { params: { slug: fleet.slug }, body: request.body }),
      );
      setForm((f) => ({ ...f, wifiKey: '' }));
      setResult({
        text: `config.json for fleet ${fleet.name} downloaded. It holds a new provisioning key: keep the file private.`,
        ok: true,
      });
    } catch (e) {
      setResult({ text: describeError(e), ok: false });
    } finally {
      setBusy(false);
    }
  };

  return (
    <details className="card provisioning">
      <summary>Add a device: download a config.json</summary>
      <p className="muted">
        Put it on the device's boot partition (balenaOS) or give it to <code>flotilla-agent</code>: the device registers
        itself into this fleet on its first start. Each download makes a new provisioning key.
      </p>
      <form className="form-grid" onSubmit={submit} aria-label="config.json for a new device">
        <label htmlFor="cj-hostname">Hostname</label>
        <input
          id="cj-hostname"
          autoComplete="off"
          spellCheck={false}
          maxLength={63}
          placeholder="the device's short UUID"
          value={form.hostname}
          onChange={(e) => set('hostname', e.target.value)}
        />
        <label htmlFor="cj-poll">Poll interval (s)</label>
        <input
          id="cj-poll"
          inputMode="numeric"
          placeholder="900"
          value={form.pollIntervalSeconds}
          onChange={(e) => set('pollIntervalSeconds', e.target.value)}
        />
        <label htmlFor="cj-ssh">SSH keys</label>
        <textarea
          id="cj-ssh"
          rows={3}
          spellCheck={false}
          placeholder="one public key per line"
          value={form.sshKeys}
          onChange={(e) => set('sshKeys', e.target.value)}
        />
        <label htmlFor="cj-wifi-ssid">WiFi network</label>
        <input
          id="cj-wifi-ssid"
          autoComplete="off"
          maxLength={32}
          value={form.wifiSsid}
          onChange={(e) => set('wifiSsid', e.target.value)}
        />
        <label htmlFor="cj-wifi-key">WiFi passphrase</label>
        <input
          id="cj-wifi-key"
          type="password"
          autoComplete="new-password"
          maxLength={63}
          value={form.wifiKey}
          onChange={(e) => set('wifiKey', e.target.value)}
        />
        <span className="form-checks form-wide">
          <label>
            <input
              type="checkbox"
              checked={form.persistentLogging}
              onChange={(e) => set('persistentLogging', e.target.checked)}
            />{' '}
            Keep logs across reboots
          </label>
          <label>
            <input
              type="checkbox"
              checked={form.developmentMode}
              onChange={(e) => set('developmentMode', e.target.checked)}
            />{' '}
            Development mode
          </label>
        </span>
        {form.developmentMode && (
          <p className="notice form-wide">
            Development mode opens the device's engine and passwordless SSH on its network: never for production.
          </p>
        )}
        <div className="form-actions">
          <button type="submit" className="primary" disabled={busy}>
            {busy ? 'Making…' : 'Download config.json'}
          </button>
        </div>
        <div aria-live="polite" className="form-result">
          {result && (
            <p className={result.ok ? 'success' : 'error'} role={result.ok ? undefined : 'alert'}>
              {result.text}
            </p>
          )}
        </div>
      </form>
    </details>
  );
}
