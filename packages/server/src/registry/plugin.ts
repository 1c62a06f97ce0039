import { FlotillaError } from '@flotilla/protocol';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { retryAfterOf } from '../auth/guess-limiter.js';
import type { RegistryAccess } from './access.js';
import { requireAccess } from './access.js';
import { RegistryError } from './errors.js';
import { handleBlob, handleUploads } from './blob-routes.js';
import type { RegistryLimits } from './limits.js';
import { DEFAULT_MAX_UPLOAD_BYTES } from './limits.js';
import { handleManifest, handleTags } from './manifest-routes.js';
import { isRepositoryName, parseRegistryPath, redactUploadIds } from './names.js';
import type { HandlerContext } from './handler-context.js';
import { RegistryStorage } from './storage.js';
import { TokenSigner } from './token.js';
import { isNoSpaceError } from '../disk/no-space.js';
import { sendStorageFull, shieldedBody, withUploadSpace, type UploadSpace } from './upload-space.js';
import { registerTokenRoute } from './token-route.js';

export interface RegistryOptions<P> {
  /** Folder holding blobs, uploads, repository metadata and the token secret. */
  storageDir: string;
  access: RegistryAccess<P>;
  /** Public base URL of this server (realm of the token challenge); read per request as it may be fixed late. */
  publicUrl: () => string;
  /** The data folder's disk: uploads are refused and abandoned ones reclaimed when it runs low. */
  space?: UploadSpace | undefined;
  /** Upload size limit (default 10 GiB) and quota per quota group (default none); 0 means no limit. */
  limits?: Partial<RegistryLimits>;
}

export interface RegistryContext {
  storage: RegistryStorage;
}

/**
 * The OCI distribution endpoint under /v2/ plus the Docker token endpoint /auth/v1/token. Register it with
 * `app.register(registryPlugin, options)`: it lives in its own encapsulated scope, so its raw-body handling and
 * OCI-format errors do not leak into the rest of the app.
 */
export async function registryPlugin<P>(app: FastifyInstance, options: RegistryOptions<P>): Promise<void> {
  const storage = new RegistryStorage(options.storageDir);
  await storage.init();
  const signer = await TokenSigner.open(options.storageDir);
  const service = () => new URL(options.publicUrl()).host;
  const challenge = () => ({ realm: `${options.publicUrl().replace(/\/+$/, '')}/auth/v1/token`, service: service() });
  const limits: RegistryLimits = {
    maxUploadBytes: options.limits?.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES,
    quotaBytes: options.limits?.quotaBytes ?? 0,
  };

  // Bodies are streamed to disk by the handlers, never buffered or parsed by Fastify.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  app.setErrorHandler((error: unknown, request, reply) => {
    if (isNoSpaceError(error) || (error instanceof FlotillaError && error.code === 'STORAGE_FULL')) {
      sendStorageFull(reply);
      return;
    }
    if (error instanceof RegistryError) {
      void reply.status(error.status).headers(error.headers).send(error.toBody());
      return;
    }
    // Expected failures raised by the server's shared hooks (e.g. refused input) keep their status, in OCI shape.
    if (error instanceof FlotillaError) {
      const retryAfter = retryAfterOf(error);
      if (retryAfter !== undefined) void reply.header('retry-after', String(retryAfter));
      void reply.status(error.status).send({
        errors: [
          {
            code:
              error.status === 401
                ? 'UNAUTHORIZED'
                : error.status === 403
                  ? 'DENIED'
                  : error.status === 429
                    ? 'TOOMANYREQUESTS'
                    : 'UNSUPPORTED',
            message: error.message,
            detail: { code: error.code },
          },
        ],
      });
      return;
    }
    // WARNING: file system errors name their path, which may hold an upload ID (a capability): never log it raw.
    const err = error instanceof Error ? error : new Error(String(error));
    request.log.error(
      { err: { type: err.name, message: redactUploadIds(err.message), stack: redactUploadIds(err.stack ?? '') } },
      'registry request failed',
    );
    void reply.status(500).send({ errors: [{ code: 'UNKNOWN', message: 'internal error' }] });
  });
  registerTokenRoute(app, options.access, signer, service);

  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const url = new URL(request.url, 'http://registry.invalid');
    const rest = url.pathname.replace(/^\/v2\/?/, '');
    const route = parseRegistryPath(rest);
    if (!route) throw new RegistryError('NAME_INVALID', 'unrecognised registry path');
    const method = request.method;
    const action = method === 'GET' || method === 'HEAD' ? 'pull' : 'push';
    if (route.kind === 'base') {
      await requireAccess(request, options.access, signer, challenge(), undefined, 'pull');
      return reply.header('docker-distribution-api-version', 'registry/2.0').send({});
    }
    if (!isRepositoryName(route.name)) throw new RegistryError('NAME_INVALID', `invalid repository name ${route.name}`);
    const principal = await requireAccess(request, options.access, signer, challenge(), route.name, action);
    const location = await options.access.locate(route.name);
    if (!location)
      throw new RegistryError('NAME_UNKNOWN', 'repository name not known to registry', {
        detail: { name: route.name },
      });
    void reply.header('docker-distribution-api-version', 'registry/2.0');
    const ctx: HandlerContext = {
      storage,
      request,
      reply,
      query: url.searchParams,
      body: shieldedBody(request.raw, reply.raw),
      repository: { name: route.name, key: location.key, quotaGroup: location.quotaGroup },
      subject: options.access.subjectOf(principal),
      signer,
      limits,
    };
    switch (route.kind) {
      case 'uploads': {
        const from = url.searchParams.get('from');
        let mountFrom: string | undefined;
        if (method === 'POST' && from !== null && url.searchParams.has('mount')) {
          // Mounting reads from another repository, so the caller needs pull there too.
          if (!isRepositoryName(from)) throw new RegistryError('NAME_INVALID', `invalid repository name ${from}`);
          try {
            await requireAccess(request, options.access, signer, challenge(), from, 'pull');
            mountFrom = (await options.access.locate(from))?.key;
          } catch {
            mountFrom = undefined;
          }
        }
        return withUploadSpace(options.space, route.uploadId === undefined, () =>
          handleUploads(ctx, route.uploadId, mountFrom),
        );
      }
      case 'blob':
        return handleBlob(ctx, route.digest);
      case 'manifest':
        return handleManifest(ctx, route.reference);
      case 'tags':
        return handleTags(ctx);
    }
  };
  app.route({ method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'], url: '/v2', handler, exposeHeadRoute: false });
  app.route({
    method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    url: '/v2/*',
    handler,
    exposeHeadRoute: false,
  });
}
