import {
  DEVICE_ROUTES,
  FlotillaError,
  findSelfResponseSchema,
  isErrorBody,
  path,
  registerResponseSchema,
  targetStateSchema,
  type RegisterRequest,
  type RegisterResponse,
  type StateReport,
  type TargetDevice,
} from '@flotilla/protocol';

export type FetchTargetResult = { kind: 'unchanged' } | { kind: 'changed'; etag: string | null; device: TargetDevice };

/** The device-facing calls the agent makes; implemented over HTTP below, faked nowhere (tests use a real server). */
export interface ControlPlane {
  register(body: RegisterRequest, provisioningKey: string): Promise<{ kind: 'created'; response: RegisterResponse } | { kind: 'conflict' }>;
  findSelf(uuid: string, key: string): Promise<number | undefined>;
  keyExchange(deviceId: number, deviceApiKey: string, provisioningKey: string): Promise<void>;
  fetchTarget(uuid: string, deviceApiKey: string, etag: string | null, signal: AbortSignal): Promise<FetchTargetResult>;
  report(body: StateReport, deviceApiKey: string, signal: AbortSignal): Promise<void>;
}

/** An HTTP answer that says the request itself is wrong (4xx other than 408/429): retrying the same will not help. */
export class HttpError extends FlotillaError {
  constructor(
    readonly httpStatus: number,
    message: string,
  ) {
    super(httpStatus === 401 || httpStatus === 403 ? 'UNAUTHENTICATED' : 'NETWORK_ERROR', message);
  }

  get transient(): boolean {
    return this.httpStatus >= 500 || this.httpStatus === 408 || this.httpStatus === 429;
  }
}

const TIMEOUT_MS = 30_000;

export class HttpControlPlane implements ControlPlane {
  constructor(private readonly endpoint: string) {}

  private async call(method: string, route: string, key: string, options: { body?: unknown; headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<Response> {
    const signals = [AbortSignal.timeout(TIMEOUT_MS), ...(options.signal ? [options.signal] : [])];
    let response: Response;
    try {
      response = await fetch(new URL(route, this.endpoint), {
        method,
        headers: {
          authorization: `Bearer ${key}`,
          ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...options.headers,
        },
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
        signal: AbortSignal.any(signals),
      });
    } catch (error) {
      if (options.signal?.aborted) throw error;
      throw new FlotillaError('NETWORK_ERROR', `${method} ${route}: ${(error as Error).message}`, { cause: error });
    }
    return response;
  }

  private async fail(response: Response, what: string): Promise<never> {
    let detail = '';
    try {
      const body: unknown = await response.json();
      if (isErrorBody(body)) detail = `: ${body.error.message} (${body.error.code})`;
    } catch {
      // not JSON; the status says enough
    }
    throw new HttpError(response.status, `${what} failed with HTTP ${response.status}${detail}`);
  }

  async register(body: RegisterRequest, provisioningKey: string): Promise<{ kind: 'created'; response: RegisterResponse } | { kind: 'conflict' }> {
    const response = await this.call(DEVICE_ROUTES.register.method, DEVICE_ROUTES.register.path, provisioningKey, { body });
    if (response.status === 409) {
      await response.body?.cancel();
      return { kind: 'conflict' };
    }
    if (!response.ok) return this.fail(response, 'register');
    return { kind: 'created', response: registerResponseSchema.parse(await response.json()) };
  }

  async findSelf(uuid: string, key: string): Promise<number | undefined> {
    const query = new URLSearchParams({ $select: 'id', $filter: `uuid eq '${uuid}'` });
    const response = await this.call('GET', `${DEVICE_ROUTES.findSelf.path}?${query.toString()}`, key);
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel();
      return undefined;
    }
    if (!response.ok) return this.fail(response, 'find device');
    return findSelfResponseSchema.parse(await response.json()).d[0]?.id;
  }

  async keyExchange(deviceId: number, deviceApiKey: string, provisioningKey: string): Promise<void> {
    const route = path(DEVICE_ROUTES.keyExchange.path, { id: deviceId });
    const response = await this.call(DEVICE_ROUTES.keyExchange.method, route, provisioningKey, { body: { apiKey: deviceApiKey } });
    if (!response.ok) return this.fail(response, 'key exchange');
    await response.body?.cancel();
  }

  async fetchTarget(uuid: string, deviceApiKey: string, etag: string | null, signal: AbortSignal): Promise<FetchTargetResult> {
    const route = path(DEVICE_ROUTES.targetState.path, { uuid });
    const response = await this.call('GET', route, deviceApiKey, { signal, headers: etag ? { 'if-none-match': etag } : {} });
    if (response.status === 304) return { kind: 'unchanged' };
    if (!response.ok) return this.fail(response, 'fetch target state');
    const raw: unknown = await response.json();
    const parsed = targetStateSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new FlotillaError('VALIDATION_FAILED', `target state rejected: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}`, { details: { rejected: releasesIn(raw, uuid) } });
    }
    const device = parsed.data[uuid];
    if (!device) throw new FlotillaError('VALIDATION_FAILED', `target state has no entry for device ${uuid}`);
    return { kind: 'changed', etag: response.headers.get('etag'), device };
  }

  async report(body: StateReport, deviceApiKey: string, signal: AbortSignal): Promise<void> {
    const response = await this.call(DEVICE_ROUTES.reportState.method, DEVICE_ROUTES.reportState.path, deviceApiKey, { body, signal });
    if (!response.ok) return this.fail(response, 'report state');
    await response.body?.cancel();
  }
}

/** App uuid → release commits named by a target state that failed validation, so the report can say 'rejected'. */
export function releasesIn(raw: unknown, uuid: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const apps = (raw as { [k: string]: { apps?: Record<string, { releases?: Record<string, unknown> }> } } | null)?.[uuid]?.apps;
  if (typeof apps !== 'object' || apps === null) return out;
  for (const [appUuid, app] of Object.entries(apps)) {
    if (typeof app?.releases === 'object' && app.releases !== null) out[appUuid] = Object.keys(app.releases);
  }
  return out;
}
