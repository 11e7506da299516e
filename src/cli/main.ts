#!/usr/bin/env node
/**
 * The `thingloop` command. Each sub-command is a thin shell over node/, sdk/ or sim/.
 */
import { Command } from 'commander';
import { MIN_ADMIN_KEY_LENGTH } from '../access/index.js';
import { VERSION } from '../node/index.js';
import { addAgentCommand, addAlarmsCommand, addApprovalsCommand } from './agents.js';
import { addCertsCommand } from './certs.js';
import { addDataDirCommands } from './data-dir.js';
import { addDemoCommand } from './demo.js';
import { addDeviceCommand } from './devices.js';
import { addModelCommand } from './model.js';
import { addNodeOptions, serve } from './serve.js';
import { addSimCommand } from './sim.js';
import { addStatusCommand } from './status.js';

const program = new Command()
  .name('thingloop')
  .description('Thingloop: an open terminal–edge–cloud IoT platform. Devices are not only connected, they are operated.')
  .version(VERSION)
  .showHelpAfterError('(add --help for usage)');

addNodeOptions(
  program
    .command('serve')
    .description('run a node: embedded MQTT broker, HTTP API and SQLite store (role cloud)')
    .addHelpText(
      'after',
      [
        '',
        'Listeners: HTTP and MQTT listen on every network interface (0.0.0.0) unless --http-host or',
        '--mqtt-host names one (127.0.0.1 keeps a listener on this machine); the start-up log says',
        'which addresses are listened on.',
        '',
        'Admin key: --admin-key is visible to other users in ps; prefer THINGLOOP_ADMIN_KEY or',
        `--admin-key-file. Keys shorter than ${MIN_ADMIN_KEY_LENGTH} characters are refused.`,
        '',
        'Example:',
        '  thingloop serve --http-port 8080 --mqtt-port 1883 --data-dir ./.thingloop --admin-key-file /etc/thingloop/admin.key',
        '',
      ].join('\n'),
    ),
).action((options: Record<string, unknown>) => serve(options));

addDemoCommand(program);
addSimCommand(program);
addModelCommand(program);
addCertsCommand(program);
// Daily work against a running node's API, and on its data directory.
addStatusCommand(program);
addDeviceCommand(program);
addAgentCommand(program);
addApprovalsCommand(program);
addAlarmsCommand(program);
addDataDirCommands(program);

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`thingloop: ${(error as Error).message}\n`);
  process.exit(1);
});
