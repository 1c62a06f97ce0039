import {
  DEVICE_ROUTES,
  ERROR_CODE_HEADER,
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
import { httpExchange, type HttpAnswer } from '../util/http.js';

export type FetchTargetResult = { kind: 'unchanged' } | { kind: 'changed'; etag: string | null; device: TargetDevice };

/** The device-facing calls the agent makes; implemented over HTTP below, faked nowhere (tests use a real server). */
export interface ControlPlane {
  register(
    body: RegisterRequest,
    provisioningKey: string,
  ): Promise<{ kind: 'created'; response: RegisterResponse } | { kind: 'conflict' }>;
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
/** Target states of big fleets are a few hundred kB; far above that is a broken or hostile endpoint. */
const MAX_ANSWER_BYTES = 32 * 1024 * 1024;

const ok = (answer: HttpAnswer): boolean => answer.status >= 200 && answer.status < 300;
const json = (answer: HttpAnswer): unknown => JSON.parse(answer.body.toString('utf8'));

export class HttpControlPlane implements ControlPlane {
  /** `ca`: the CAs the endpoint's certificate is verified with (util/trust.ts); absent: Node's roots. */
  constructor(
    private readonly endpoint: string,
    private readonly ca?: string[],
  ) {}

  private async call(
    method: string,
    route: string,
    key: string,
    options: { body?: unknown; headers?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<HttpAnswer> {
    try {
      return await httpExchange(new URL(route, this.endpoint), {
        method,
        headers: {
          authorization: `Bearer ${key}`,
          ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...options.headers,
        },
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
        ...(options.signal ? { signal: options.signal } : {}),
        idleTimeoutMs: TIMEOUT_MS,
        maxBodyBytes: MAX_ANSWER_BYTES,
        ca: this.ca,
      });
    } catch (error) {
      if (options.signal?.aborted) throw error;
      throw new FlotillaError('NETWORK_ERROR', `${method} ${route}: ${(error as Error).message}`, { cause: error });
    }
  }

  private fail(answer: HttpAnswer, what: string): never {
    let detail = '';
    try {
      const body = json(answer);
      if (isErrorBody(body)) detail = `: ${body.error.message} (${body.error.code})`;
    } catch {
      // The balena-compatible paths (/v7/ …) answer errors as `<message> (<CODE>)` text, the code in a header.
      const code = answer.headers[ERROR_CODE_HEADER];
      if (typeof code === 'string') detail = `: ${answer.body.toString('utf8').slice(0, 500)}`;
    }
    throw new HttpError(answer.status, `${what} failed with HTTP ${answer.status}${detail}`);
  }

  /** The answer's JSON body; a 2xx answer that is not JSON is the endpoint's fault, reported like any bad answer. */
  private body(answer: HttpAnswer, what: string): unknown {
    try {
      return json(answer);
    } catch {
      throw new FlotillaError('VALIDATION_FAILED', `${what}: the answer is not JSON`);
    }
  }

  async register(
    body: RegisterRequest,
    provisioningKey: string,
  ): Promise<{ kind: 'created'; response: RegisterResponse } | { kind: 'conflict' }> {
    const response = await this.call(DEVICE_ROUTES.register.method, DEVICE_ROUTES.register.path, provisioningKey, {
      body,
    });
    if (response.status === 409) return { kind: 'conflict' };
    if (!ok(response)) return this.fail(response, 'register');
    return { kind: 'created', response: registerResponseSchema.parse(this.body(response, 'register')) };
  }

  async findSelf(uuid: string, key: string): Promise<number | undefined> {
    const query = new URLSearchParams({ $select: 'id', $filter: `uuid eq '${uuid}'` });
    const response = await this.call('GET', `${DEVICE_ROUTES.findSelf.path}?${query.toString()}`, key);
    if (response.status === 401 || response.status === 403) return undefined;
    if (!ok(response)) return this.fail(response, 'find device');
    return findSelfResponseSchema.parse(this.body(response, 'find device')).d[0]?.id;
  }

  async keyExchange(deviceId: number, deviceApiKey: string, provisioningKey: string): Promise<void> {
    const route = path(DEVICE_ROUTES.keyExchange.path, { id: deviceId });
    const response = await this.call(DEVICE_ROUTES.keyExchange.method, route, provisioningKey, {
      body: { apiKey: deviceApiKey },
    });
    if (!ok(response)) this.fail(response, 'key exchange');
  }

  async fetchTarget(
    uuid: string,
    deviceApiKey: string,
    etag: string | null,
    signal: AbortSignal,
  ): Promise<FetchTargetResult> {
    const route = path(DEVICE_ROUTES.targetState.path, { uuid });
    const response = await this.call('GET', route, deviceApiKey, {
      signal,
      headers: etag ? { 'if-none-match': etag } : {},
    });
    if (response.status === 304) return { kind: 'unchanged' };
    if (!ok(response)) return this.fail(response, 'fetch target state');
    const raw = this.body(response, 'fetch target state');
    const parsed = targetStateSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new FlotillaError(
        'VALIDATION_FAILED',
        `target state rejected: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}`,
        { details: { rejected: releasesIn(raw, uuid) } },
      );
    }
    const device = parsed.data[uuid];
    if (!device) throw new FlotillaError('VALIDATION_FAILED', `target state has no entry for device ${uuid}`);
    return { kind: 'changed', etag: typeof response.headers.etag === 'string' ? response.headers.etag : null, device };
  }

  async report(body: StateReport, deviceApiKey: string, signal: AbortSignal): Promise<void> {
    const response = await this.call(DEVICE_ROUTES.reportState.method, DEVICE_ROUTES.reportState.path, deviceApiKey, {
      body,
      signal,
    });
    if (!ok(response)) this.fail(response, 'report state');
  }
}

/** App uuid → release commits named by a target state that failed validation, so the report can say 'rejected'. */
export function releasesIn(raw: unknown, uuid: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const apps = (raw as { [k: string]: { apps?: Record<string, { releases?: Record<string, unknown> }> } } | null)?.[
    uuid
  ]?.apps;
  if (typeof apps !== 'object' || apps === null) return out;
  for (const [appUuid, app] of Object.entries(apps)) {
    if (typeof app?.releases === 'object' && app.releases !== null) out[appUuid] = Object.keys(app.releases);
  }
  return out;
}
