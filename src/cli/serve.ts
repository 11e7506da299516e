import type { Command } from 'commander';
import {
  ConfigError,
  type NodeConfig,
  type ResolvedConfig,
  type RunningNode,
  resolveConfig,
  SETTINGS,
  StartupError,
  startCloudNode,
} from '../node/index.js';

/** Adds one option per setting, named and described as in the settings table. */
export function addNodeOptions(command: Command): Command {
  for (const setting of SETTINGS) {
    const fallback =
      setting.secret || setting.defaultValue === undefined ? '' : ` (default: ${setting.display ?? String(setting.defaultValue)})`;
    command.option(`--${setting.flag} <value>`, `${setting.description}; env ${setting.env}${fallback}`);
  }
  return command.option('--config <file>', 'YAML or JSON config file (flags > THINGLOOP_* env > file > defaults)');
}

/** Commander camel-cases `--http-port` to `httpPort`; map back to setting keys. */
export function flagValues(options: Record<string, unknown>): Partial<Record<keyof NodeConfig, string>> {
  const flags: Partial<Record<keyof NodeConfig, string>> = {};
  for (const setting of SETTINGS) {
    const camel = setting.flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const value = options[camel];
    if (typeof value === 'string') flags[setting.key] = value;
  }
  return flags;
}

export function loadResolvedConfig(options: Record<string, unknown>): ResolvedConfig {
  return resolveConfig({
    flags: flagValues(options),
    env: process.env,
    configFile: typeof options.config === 'string' ? options.config : undefined,
  });
}

export function loadConfig(options: Record<string, unknown>): NodeConfig {
  return loadResolvedConfig(options).config;
}

/** Prints a one-time admin key where a human will see it, outside the JSON log stream. */
export function announceAdminKey(node: RunningNode): void {
  if (node.adminKey.generatedKey) {
    process.stderr.write(
      `\n  Admin API key (shown only now; stored as a hash):\n\n    ${node.adminKey.generatedKey}\n\n  Use it as "Authorization: Bearer <key>". Set THINGLOOP_ADMIN_KEY to choose your own.\n\n`,
    );
  }
}

/** Runs until SIGINT/SIGTERM, then shuts down gracefully; a second signal forces exit. */
export function stopOnSignals(stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      process.stderr.write(`${signal} again: exiting without waiting\n`);
      process.exit(130);
    }
    stopping = true;
    stop().then(
      () => process.exit(0),
      (error: Error) => {
        process.stderr.write(`shutdown failed: ${error.message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/** Turns expected start-up failures into one clear line and exit code 2. */
export function reportStartupFailure(error: unknown): never {
  if (error instanceof ConfigError || error instanceof StartupError) {
    process.stderr.write(`thingloop: ${error.message}\n`);
    process.exit(2);
  }
  throw error;
}

export async function serve(options: Record<string, unknown>): Promise<void> {
  let node: RunningNode;
  try {
    node = await startCloudNode(loadConfig(options));
  } catch (error) {
    reportStartupFailure(error);
  }
  announceAdminKey(node);
  stopOnSignals(() => node.stop());
}
