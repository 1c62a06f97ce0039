import { execFile } from 'node:child_process';
import { FlotillaError } from '@flotilla/protocol';

const TOOL_TIMEOUT_MS = 30_000;

/** Runs a bootloader tool (grub-editenv, fw_setenv…); its failure is BOOTLOADER_FAILED with the tool's own words. */
export function runTool(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { encoding: 'utf8', timeout: TOOL_TIMEOUT_MS }, (error, stdout, stderr) => {
      if (!error) return resolve(stdout);
      const why = stderr.trim() || error.message;
      reject(new FlotillaError('BOOTLOADER_FAILED', `${file} ${args.join(' ')}: ${why}`, { cause: error }));
    });
  });
}

/** `name=value` lines (grub-editenv list, fw_printenv) → a map; lines without `=` are ignored. */
export function parseEnvLines(text: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) env.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return env;
}
