import { USER_ROUTES, enablePublicUrlRequestSchema } from '@flotilla/protocol';
import { type FormEvent, useId, useState } from 'react';
import { describeError } from '../api/dashboard-api.js';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';
import { ErrorText } from '../ui/error-text.js';

/**
 * The device's public URL: whether it is on, where, and (for those who may change things) turning it on for a port
 * or off. Off closes its open connections at once on the server's side; the page only says what the API answered.
 */
export function DevicePublicUrl({ uuid, canWrite }: { uuid: string; canWrite: boolean }) {
  const api = useApi();
  const state = useResource(`public-url:${uuid}`, () => api.call(USER_ROUTES.getDevicePublicUrl, { params: { uuid } }));
  const [port, setPort] = useState('80');
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ text: string; ok: boolean } | null>(null);
  const portId = useId();
  const current = state.data;

  const change = async (work: () => Promise<void>) => {
    setMessage(null);
    setBusy(true);
    try {
      await work();
    } catch (e) {
      setMessage({ text: describeError(e), ok: false });
    } finally {
      setBusy(false);
    }
  };
  const enable = (event: FormEvent) => {
    event.preventDefault();
    const body = enablePublicUrlRequestSchema.safeParse({ port: Number(port) });
    if (!body.success) {
      setMessage({ text: 'The port is a number from 1 to 65535.', ok: false });
      return;
    }
    void change(async () => {
      const on = await api.call(USER_ROUTES.enableDevicePublicUrl, { params: { uuid }, body: body.data });
      state.mutate(() => on);
      setMessage({ text: `Public URL on, reaching port ${on.port}.`, ok: true });
    });
  };
  const disable = () =>
    change(async () => {
      await api.call(USER_ROUTES.disableDevicePublicUrl, { params: { uuid } });
      state.mutate(() => ({ enabled: false, port: null, url: null }));
      setMessage({ text: 'Public URL off; its open connections were closed.', ok: true });
    });

  return (
    <section aria-labelledby="public-url-title">
      <h2 id="public-url-title">Public URL</h2>
      <ErrorText error={state.error} />
      {current &&
        (current.enabled && current.url ? (
          <p>
            Port {current.port} of the device answers at{' '}
            <a href={current.url} target="_blank" rel="noreferrer noopener" className="public-url">
              {current.url}
            </a>
          </p>
        ) : (
          <p className="muted">Off: the device is reachable only through shells and tunnels.</p>
        ))}
      {canWrite && current && (
        <form className="inline-form" onSubmit={enable} aria-label="Public URL">
          <label htmlFor={portId}>Port</label>
          <input
            id={portId}
            inputMode="numeric"
            size={6}
            value={port}
            onChange={(e) => setPort(e.target.value.trim())}
            aria-invalid={message?.ok === false ? true : undefined}
          />
          <button type="submit" disabled={busy}>
            {current.enabled ? 'Change port' : 'Turn on'}
          </button>
          {current.enabled && (
            <button type="button" disabled={busy} onClick={disable}>
              Turn off
            </button>
          )}
        </form>
      )}
      <p aria-live="polite">{message && <span className={message.ok ? 'success' : 'error'}>{message.text}</span>}</p>
    </section>
  );
}
