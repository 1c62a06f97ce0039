import type { Command } from 'commander';
import { type Release, USER_ROUTES, slugSchema, formatBytes } from '@flotilla/protocol';
import { emit, formatDetails, formatTable } from '../output/output.js';
import { checkArg, leaf, releaseRef, runCommand } from './context.js';

/** The images' bytes together; unknown (null) when the registry holds none of them, `≥` when only some. */
function totalSize(release: Release): string | null {
  const known = release.services.flatMap((s) => (s.imageSize === null ? [] : [s.imageSize]));
  if (known.length === 0) return null;
  const total = formatBytes(known.reduce((a, b) => a + b, 0));
  return known.length < release.services.length ? `≥ ${total}` : total;
}

export function registerReleaseCommands(program: Command): void {
  const release = program.command('release').description('inspect releases');

  leaf(release, 'list <fleet>', "list a fleet's releases").action(async (slug: string, opts: { json?: boolean }) =>
    runCommand(opts, async (ctx) => {
      const { items } = await (await ctx.client()).call(USER_ROUTES.listFleetReleases, {
        params: { slug: checkArg(slugSchema, slug, 'fleet') },
      });
      emit(ctx.output, items, () =>
        formatTable(
          ['id', 'version', 'commit', 'status', 'services', 'size', 'by', 'created'],
          items.map((r) => [
            r.id,
            r.version,
            r.commit.slice(0, 7),
            r.status,
            r.services.map((s) => s.name).join(','),
            totalSize(r),
            r.createdBy?.username,
            r.createdAt,
          ]),
        ),
      );
    }),
  );

  leaf(release, 'info <release>', 'show a release by id or commit').action(
    async (ref: string, opts: { json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const parsed = releaseRef(ref);
        const found = await (await ctx.client()).call(USER_ROUTES.getRelease, {
          params: { ref: String(parsed ?? ref) },
        });
        emit(
          ctx.output,
          found,
          () =>
            formatDetails([
              ['id', found.id],
              ['fleet', found.fleet],
              ['version', found.version],
              ['commit', found.commit],
              ['status', found.status],
              ['final', found.isFinal],
              ['created', found.createdAt],
              ['by', found.createdBy?.username],
              ['size', totalSize(found)],
              ['notes', found.notes],
            ]) +
            formatTable(
              ['service', 'image', 'size'],
              found.services.map((s) => [s.name, s.image, s.imageSize === null ? null : formatBytes(s.imageSize)]),
            ),
        );
      }),
  );
}
