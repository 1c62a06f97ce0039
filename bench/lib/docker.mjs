// The few Docker CLI calls a bench needs: count what an agent runs, and remove what a bench made.
import { execFileSync } from 'node:child_process';

const NAMESPACE_LABEL = 'io.flotilla.namespace';

export function docker(args, input) {
  return execFileSync('docker', args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

const lines = (text) => text.split('\n').filter(Boolean);
const byNamespace = (namespace) => ['--filter', `label=${NAMESPACE_LABEL}=${namespace}`];

/** Running containers an agent started under `namespace`. */
export function runningContainers(namespace) {
  return lines(docker(['ps', '-q', ...byNamespace(namespace), '--filter', 'status=running'])).length;
}

/** Builds an image from a Dockerfile given as text, with no context. */
export function buildImage(tag, dockerfile) {
  docker(['build', '-q', '-t', tag, '-'], dockerfile);
}

/**
 * Removes the containers, networks and volumes labelled with `namespace`. Best effort: every kind is tried even
 * if one fails, and the failures are returned so the bench can report what it left behind.
 */
export function removeNamespace(namespace) {
  const failures = [];
  const attempt = (what, fn) => {
    try {
      fn();
    } catch (error) {
      failures.push(`${what}: ${error.message.split('\n')[0]}`);
    }
  };
  attempt('containers', () => {
    const ids = lines(docker(['ps', '-aq', ...byNamespace(namespace)]));
    if (ids.length) docker(['rm', '-f', ...ids]);
  });
  attempt('networks', () => {
    const ids = lines(docker(['network', 'ls', '-q', ...byNamespace(namespace)]));
    if (ids.length) docker(['network', 'rm', ...ids]);
  });
  attempt('volumes', () => {
    const ids = lines(docker(['volume', 'ls', '-q', ...byNamespace(namespace)]));
    if (ids.length) docker(['volume', 'rm', '-f', ...ids]);
  });
  return failures;
}

/** Removes every image with a repository:tag that `match` accepts (all tags of it, digest-pulled copies too). */
export function removeImages(match) {
  const ids = new Set();
  for (const line of lines(docker(['images', '--no-trunc', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']))) {
    const [ref, id] = line.split(' ');
    if (match(ref)) ids.add(id);
  }
  if (ids.size === 0) return [];
  try {
    docker(['rmi', '-f', ...ids]);
    return [];
  } catch (error) {
    return [`images: ${error.message.split('\n')[0]}`];
  }
}
