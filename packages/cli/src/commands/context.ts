import type { Command } from 'commander';
import { FlotillaError } from '@flotilla/protocol';
import type { z } from 'zod';
import { ApiClient } from '../api-client/api-client.js';
import { requireCredentials } from '../credentials/credentials.js';
import type { Credentials } from '../credentials/credentials.js';
import { trustingFetch } from '../credentials/trust.js';
import { formatError, stdOutput } from '../output/output.js';
import type { Output } from '../output/output.js';

export interface CommandContext {
  output: Output;
  env: NodeJS.ProcessEnv;
  credentials(): Promise<Credentials>;
  client(): Promise<ApiClient>;
}

/** A leaf command: every one takes --json. */
export function leaf(parent: Command, spec: string, description: string): Command {
  return parent.command(spec).description(description).option('--json', 'print machine-readable JSON');
}

/**
 * Runs a command body with its context and turns any failure into `error: <message> (<CODE>)` on stderr (and the
 * error body on stdout with --json) with exit code 1. INVARIANT: no stack trace ever reaches the user.
 */
export async function runCommand(
  options: { json?: boolean },
  body: (ctx: CommandContext) => Promise<void>,
): Promise<void> {
  const output = stdOutput(options.json === true);
  const env = process.env;
  const ctx: CommandContext = {
    output,
    env,
    credentials: () => requireCredentials(env),
    client: async () => {
      const { url, token, ca } = await requireCredentials(env);
      return new ApiClient(url, token, trustingFetch(ca));
    },
  };
  try {
    await body(ctx);
  } catch (error) {
    const { text, code } = formatError(error);
    if (output.json)
      output.out(
        `${JSON.stringify({ error: { code, message: text.replace(/^error: /, '').replace(/ \([A-Z_]+\)$/, '') } })}\n`,
      );
    output.err(`${text}\n`);
    process.exitCode = 1;
  }
}

/** Validates a user-typed argument with a protocol schema; a bad one is VALIDATION_FAILED naming the argument. */
export function checkArg<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new FlotillaError(
    'VALIDATION_FAILED',
    `invalid ${what} ${JSON.stringify(value)}: ${result.error.issues[0]?.message ?? 'invalid'}`,
  );
}

/** A release reference typed by the user: numeric id or (prefix of a) commit; `none` unpins. */
export function releaseRef(value: string): number | string | null {
  if (value === 'none') return null;
  if (/^\d+$/.test(value)) return Number(value);
  if (/^[0-9a-f]{7,64}$/.test(value)) return value;
  throw new FlotillaError(
    'VALIDATION_FAILED',
    `invalid release ${JSON.stringify(value)}: give a release id, a commit (7+ hex chars) or "none"`,
  );
}
