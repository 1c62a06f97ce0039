import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ERROR_CODE_HEADER, FlotillaError } from '@flotilla/protocol';
import type { ErrorBody } from '@flotilla/protocol';
import { ZodError } from 'zod';
import { retryAfterOf } from '../auth/guess-limiter.js';
import { isNoSpaceError, storageFullError } from '../disk/no-space.js';

function mapped(code: ConstructorParameters<typeof FlotillaError>[0], message: string) {
  const e = new FlotillaError(code, message);
  return { status: e.status, body: e.toBody(), internal: false };
}

/** A unique or foreign-key constraint hit by a concurrent writer (SQLite or PostgreSQL). */
export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return (
    code === '23505' ||
    code === '23503' ||
    code === 'SQLITE_CONSTRAINT_UNIQUE' ||
    code === 'SQLITE_CONSTRAINT_PRIMARYKEY' ||
    code === 'SQLITE_CONSTRAINT_FOREIGNKEY'
  );
}

/** Maps any thrown value to the one wire error shape. Unknown errors become INTERNAL without a stack. */
export function toErrorBody(error: unknown): { status: number; body: ErrorBody; internal: boolean } {
  if (error instanceof FlotillaError) return { status: error.status, body: error.toBody(), internal: false };
  if (error instanceof ZodError) {
    const issues = error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message, code: i.code }));
    const e = new FlotillaError(
      'VALIDATION_FAILED',
      `invalid input: ${issues
        .slice(0, 3)
        .map((i) => `${i.path || '(root)'}: ${i.message}`)
        .join('; ')}`,
      { details: { issues } },
    );
    return { status: e.status, body: e.toBody(), internal: false };
  }
  if (isNoSpaceError(error)) {
    const e = storageFullError();
    return { status: e.status, body: e.toBody(), internal: false };
  }
  if (isUniqueViolation(error)) return mapped('CONFLICT', 'the resource already exists or changed concurrently; retry');
  // PostgreSQL refuses NUL and unencodable characters in text (SQLite stores them): input the request hooks missed.
  const dbCode = (error as { code?: unknown } | null)?.code;
  if (dbCode === '22021' || dbCode === '22P05')
    return mapped('VALIDATION_FAILED', 'the request contains characters that cannot be stored (NUL)');
  const fe = error as Partial<FastifyError> | undefined;
  const code = typeof fe?.code === 'string' ? fe.code : '';
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return mapped('PAYLOAD_TOO_LARGE', 'the request body is too large');
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return mapped('UNSUPPORTED_MEDIA_TYPE', 'unsupported content type');
  if (
    code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ||
    code === 'FST_ERR_CTP_INVALID_JSON_BODY' ||
    error instanceof SyntaxError
  ) {
    return mapped('INVALID_JSON', 'the request body is not valid JSON');
  }
  if (typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    if (fe.statusCode === 413) return mapped('PAYLOAD_TOO_LARGE', 'the request body is too large');
    if (fe.statusCode === 415) return mapped('UNSUPPORTED_MEDIA_TYPE', 'unsupported content type');
    return mapped('VALIDATION_FAILED', 'the request is malformed');
  }
  return { ...mapped('INTERNAL', 'internal error; see the server log'), internal: true };
}

/**
 * The paths balena's clients call (the OData layer, `/actor/`, `/config`, balenaOS's `/os/`, and `/device/register`,
 * which balena-register-device reports with the body as its message). Their errors are
 * answered in plain text, `<message> (<CODE>)`, with the code also in ERROR_CODE_HEADER: pinejs-client-fetch (the
 * Supervisor's client) prints `Request error: ${body}` of the parsed body, so a JSON object prints as
 * `[object Object]`; balena-request (balena-sdk, balena CLI) prints a text body as it is.
 */
const BALENA_CLIENT_PATH = /^\/(v6|v7|actor|config|os|device\/register)(\/|\?|$)/;

/** Whether errors on this request URL (path and query) are answered in plain text for balena's clients. */
export function isBalenaClientPath(url: string): boolean {
  return BALENA_CLIENT_PATH.test(url);
}

function sendError(request: FastifyRequest, reply: FastifyReply, status: number, body: ErrorBody): void {
  if (!isBalenaClientPath(request.url)) {
    void reply.status(status).send(body);
    return;
  }
  void reply
    .status(status)
    .header(ERROR_CODE_HEADER, body.error.code)
    .type('text/plain; charset=utf-8')
    .send(`${body.error.message} (${body.error.code})`);
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => {
    const { status, body, internal } = toErrorBody(error);
    if (internal) request.log.error({ err: error }, 'unhandled error');
    const retryAfter = error instanceof FlotillaError ? retryAfterOf(error) : undefined;
    if (retryAfter !== undefined) void reply.header('retry-after', String(retryAfter));
    sendError(request, reply, status, body);
  });
}

/** The answer to a path nothing serves; the dashboard's registration installs it (dashboard/). */
export function apiNotFound(request: FastifyRequest, reply: FastifyReply): void {
  const error = new FlotillaError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`);
  sendError(request, reply, 404, error.toBody());
}
