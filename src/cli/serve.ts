import { statSync } from 'node:fs';
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
      `\n  Admin API key (shown only now; stored as a hash):\n\n    ${node.adminKey.generatedKey}\n\n  Use it as "Authorization: Bearer <key>". Set THINGLOOP_ADMIN_KEY or --admin-key-file to choose your own.\n\n`,
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

const listensEverywhere = (host: string) => host === '0.0.0.0' || host === '::';

/** `host:port` as a listener line reads it; an IPv6 host in brackets. */
function listenAddress(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** One line that says where the node can be reached: every interface is a choice to notice. */
export function announceListeners(node: RunningNode, config: NodeConfig): void {
  const http = listenAddress(config.httpHost, node.httpPort);
  const mqtt = listenAddress(config.mqttHost, node.mqttPort);
  const open = [listensEverywhere(config.httpHost) && 'HTTP', listensEverywhere(config.mqttHost) && 'MQTT'].filter(Boolean);
  node.logger.info(
    { http, mqtt },
    open.length > 0
      ? `listening on HTTP ${http} and MQTT ${mqtt}: ${open.join(' and ')} on every network interface (--http-host/--mqtt-host 127.0.0.1 keeps a listener on this machine)`
      : `listening on HTTP ${http} and MQTT ${mqtt}`,
  );
}

/**
 * The files in the data directory are the node user's only (0600), but a directory others can
 * read still shows what is there; one the node created is 0700, one the user made is theirs to
 * change, so it is only reported.
 */
export function warnAboutDataDir(node: RunningNode, dataDir: string): void {
  let mode: number;
  try {
    mode = statSync(dataDir).mode & 0o777;
  } catch {
    return;
  }
  if ((mode & 0o077) !== 0) {
    node.logger.warn(
      { dataDir, mode: mode.toString(8) },
      `the data directory is open to other users (mode ${mode.toString(8)}): chmod 700 ${dataDir}`,
    );
  }
}

export async function serve(options: Record<string, unknown>): Promise<void> {
  let node: RunningNode;
  let config: NodeConfig;
  try {
    config = loadConfig(options);
    node = await startCloudNode(config);
  } catch (error) {
    reportStartupFailure(error);
  }
  announceListeners(node, config);
  warnAboutDataDir(node, config.dataDir);
  announceAdminKey(node);
  stopOnSignals(() => node.stop());
}
