#!/usr/bin/env node
/** `flotilla`: the command-line tool. Every command takes --json; failures print `error: <message> (<CODE>)`. */
import { Command, CommanderError } from 'commander';
import { registerAuthCommands } from './commands/auth.js';
import { registerDeployCommand } from './commands/deploy.js';
import { registerDeviceCommands } from './commands/device.js';
import { registerFleetCommands } from './commands/fleet.js';
import { registerKeyCommands } from './commands/key.js';
import { registerLogsCommand } from './commands/logs.js';
import { registerOrgCommands } from './commands/org.js';
import { registerOsCommands } from './commands/os.js';
import { registerReleaseCommands } from './commands/release.js';
import { registerRolloutCommands } from './commands/rollout.js';
import { registerSessionsCommand } from './commands/sessions.js';
import { registerSshCommand } from './commands/ssh.js';
import { registerTunnelCommand } from './commands/tunnel.js';
import { registerUserCommands } from './commands/user.js';
import { registerVariableCommands } from './commands/variables.js';

export function buildProgram(): Command {
  const program = new Command('flotilla').description('Run containers on fleets of devices.').version('0.1.0');
  // Usage mistakes get the same `error: … (CODE)` shape as every other failure. Set before adding commands:
  // commander copies these settings into each subcommand when it is created.
  program.configureOutput({ outputError: (text, write) => write(`${text.trimEnd()} (VALIDATION_FAILED)\n`) });
  program.exitOverride();
  registerAuthCommands(program);
  registerFleetCommands(program);
  registerDeviceCommands(program);
  registerVariableCommands(program);
  registerReleaseCommands(program);
  registerKeyCommands(program);
  registerOrgCommands(program);
  registerUserCommands(program);
  registerOsCommands(program);
  registerDeployCommand(program);
  registerRolloutCommands(program);
  registerLogsCommand(program);
  registerSshCommand(program);
  registerTunnelCommand(program);
  registerSessionsCommand(program);
  return program;
}

try {
  await buildProgram().parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Help and version are "errors" to commander but successes to the user.
    process.exitCode = error.exitCode === 0 ? 0 : 1;
  } else {
    process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)} (INTERNAL)\n`);
    process.exitCode = 1;
  }
}
