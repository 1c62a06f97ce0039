import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { composeFileSchema, FlotillaError } from '@flotilla/protocol';
import type { ComposeFile } from '@flotilla/protocol';
import { parse as parseYaml } from 'yaml';

export interface ProjectService {
  name: string;
  /** Absolute build context, when the service is built here. */
  context?: string;
  /** Dockerfile path relative to the context. */
  dockerfile: string;
  buildArgs: Record<string, string>;
  target?: string;
  /** A prebuilt image the service uses instead of a build. */
  image?: string;
}

export interface Project {
  dir: string;
  /** The compose file as validated, sent to the server as the release's composition. */
  composition: ComposeFile;
  services: ProjectService[];
}

const COMPOSE_NAMES = ['docker-compose.yml', 'docker-compose.yaml', 'compose.yml', 'compose.yaml'];

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** `services.web.ports.0` style path of a zod issue, so the user sees which key is wrong. */
function keyPath(path: readonly PropertyKey[]): string {
  return path.length === 0 ? '(top level)' : path.map(String).join('.');
}

export function validateComposition(document: unknown, fileName: string): ComposeFile {
  const result = composeFileSchema.safeParse(document);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue ? keyPath(issue.path) : '(top level)';
  const keys =
    issue && issue.code === 'unrecognized_keys'
      ? ` (unsupported key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')})`
      : '';
  const message = issue?.message ?? 'invalid';
  throw new FlotillaError('INVALID_COMPOSE', `${fileName}: ${where}: ${message}${keys}`, {
    details: result.error.issues,
  });
}

function envMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(value)) {
    for (const entry of value as string[]) {
      const eq = entry.indexOf('=');
      if (eq > 0) out[entry.slice(0, eq)] = entry.slice(eq + 1);
      else if (process.env[entry] !== undefined) out[entry] = process.env[entry] ?? '';
    }
  } else if (value && typeof value === 'object') {
    for (const [key, v] of Object.entries(value as Record<string, unknown>))
      if (v !== null && v !== undefined) out[key] = String(v);
  }
  return out;
}

/**
 * Reads a project folder: a compose file (the first of docker-compose.yml/.yaml, compose.yml/.yaml) or a lone
 * Dockerfile, which becomes one service named `main`. Build contexts must stay inside the project folder.
 */
export async function loadProject(dirArg: string): Promise<Project> {
  const dir = resolve(dirArg);
  let composeFile: string | undefined;
  for (const name of COMPOSE_NAMES) {
    if (await isFile(join(dir, name))) {
      composeFile = name;
      break;
    }
  }
  if (!composeFile) {
    if (await isFile(join(dir, 'Dockerfile'))) {
      return {
        dir,
        composition: { services: { main: { build: '.' } } },
        services: [{ name: 'main', context: dir, dockerfile: 'Dockerfile', buildArgs: {} }],
      };
    }
    throw new FlotillaError('INVALID_COMPOSE', `no docker-compose.yml or Dockerfile in ${dir}`);
  }
  let document: unknown;
  try {
    document = parseYaml(await readFile(join(dir, composeFile), 'utf8'));
  } catch (error) {
    throw new FlotillaError(
      'INVALID_COMPOSE',
      `${composeFile}: not valid YAML: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`,
    );
  }
  const composition = validateComposition(document, composeFile);
  const services: ProjectService[] = [];
  for (const [name, service] of Object.entries(composition.services)) {
    if (service.build === undefined) {
      if (!service.image)
        throw new FlotillaError('INVALID_COMPOSE', `${composeFile}: services.${name}: needs build or image`);
      services.push({ name, dockerfile: 'Dockerfile', buildArgs: {}, image: service.image });
      continue;
    }
    const build = typeof service.build === 'string' ? { context: service.build } : service.build;
    const context = resolve(dir, build.context ?? '.');
    const rel = relative(dir, context);
    if (rel.startsWith('..') || isAbsolute(rel))
      throw new FlotillaError(
        'INVALID_COMPOSE',
        `${composeFile}: services.${name}.build.context: must stay inside the project folder`,
      );
    const dockerfile = build.dockerfile ?? 'Dockerfile';
    if (!(await isFile(join(context, dockerfile))))
      throw new FlotillaError(
        'INVALID_COMPOSE',
        `${composeFile}: services.${name}.build: no ${dockerfile} in ${rel || '.'}`,
      );
    const entry: ProjectService = { name, context, dockerfile, buildArgs: envMap(build.args) };
    if (build.target !== undefined) entry.target = build.target;
    services.push(entry);
  }
  return { dir, composition, services };
}
