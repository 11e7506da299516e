import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { NodeConfig, RunningNode } from '../node/index.js';
import { startCloudNode } from '../node/index.js';
import { type DeviceSpec, Fleet, type Provisioner, pumpStation, streetLights, type ThingModelDocument } from '../sim/index.js';
import {
  addNodeOptions,
  announceAdminKey,
  announceListeners,
  loadResolvedConfig,
  reportStartupFailure,
  stopOnSignals,
  warnAboutDataDir,
} from './serve.js';

/** Provisions straight through the node's registry: works even when the admin key is only a stored hash. */
class InProcessProvisioner implements Provisioner {
  constructor(
    private readonly node: RunningNode,
    /** Register the devices as served by this edge. */
    private readonly edge?: string,
  ) {}
  async ensureModel(id: string, document: ThingModelDocument): Promise<void> {
    await this.node.models.put(id, document);
  }
  async ensureDevice(spec: DeviceSpec): Promise<string> {
    const existing = await this.node.registry.find(spec.id);
    const registration = {
      ...spec,
      network: { ...spec.network, profile: spec.network.profile as 'ethernet' },
      ...(this.edge ? { edge: this.edge } : {}),
    };
    if (!existing) return (await this.node.registry.register(registration)).token;
    if (existing.edge !== this.edge)
      throw new Error(`${spec.id} exists but is served by ${existing.edge ?? 'the cloud'}; use another --data-dir`);
    return (await this.node.registry.rotateToken(spec.id)).token;
  }
}

const DEMO_FAULT_AFTER_MS = 30_000;
const DEMO_EDGE = 'site-1';

/** Starts the demo's edge node in this process, registered with the cloud node. */
async function startDemoEdge(cloud: RunningNode, config: NodeConfig): Promise<RunningNode> {
  const directory = cloud.edges;
  if (!directory) throw new Error('the cloud node has no edge directory');
  const { token } = (await directory.find(DEMO_EDGE))
    ? await directory.rotateToken(DEMO_EDGE)
    : await directory.register({ id: DEMO_EDGE, name: 'North works pumping station' });
  return startCloudNode({
    ...config,
    role: 'edge',
    cloudUrl: cloud.httpUrl,
    edgeId: DEMO_EDGE,
    edgeToken: token,
    dataDir: join(config.dataDir, `edge-${DEMO_EDGE}`),
    httpPort: 0,
    mqttPort: 0,
    agentsDir: undefined,
  });
}

/** Waits until the edge has received the devices it serves from the cloud (or gives up after `ms`). */
async function edgeKnows(edge: RunningNode, ids: string[], ms = 15_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const known = await Promise.all(ids.map((id) => edge.registry.find(id)));
    if (known.every(Boolean)) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}
/** The example agents shipped with the package (examples/agents), used unless --agents-dir says otherwise. */
const EXAMPLE_AGENTS = fileURLToPath(new URL('../../examples/agents', import.meta.url));

function portIsFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, host, () => probe.close(() => resolve(true)));
  });
}

/** The demo is a trial on one machine: it listens on loopback unless the user names an address. */
const DEMO_HOST = '127.0.0.1';

export function onThisMachine(config: NodeConfig, origins: Record<keyof NodeConfig, string>): NodeConfig {
  return {
    ...config,
    httpHost: origins.httpHost === 'default' ? DEMO_HOST : config.httpHost,
    mqttHost: origins.mqttHost === 'default' ? DEMO_HOST : config.mqttHost,
  };
}

/** A default port that is taken gives way to a free one; a port the user chose does not. */
async function withFreeDefaults(config: NodeConfig, origins: Record<keyof NodeConfig, string>, notes: string[]): Promise<NodeConfig> {
  const next = { ...config };
  for (const [key, label] of [
    ['httpPort', 'HTTP'],
    ['mqttPort', 'MQTT'],
  ] as const) {
    const host = key === 'httpPort' ? config.httpHost : config.mqttHost;
    if (origins[key] === 'default' && !(await portIsFree(config[key], host))) {
      notes.push(`default ${label} port ${config[key]} is taken, so a free port is used instead`);
      next[key] = 0;
    }
  }
  return next;
}

export function addDemoCommand(program: Command): void {
  addNodeOptions(
    program
      .command('demo')
      .description(
        'run a cloud node with a simulated pump station and street lights behind it (what `npm start` runs); it listens on 127.0.0.1 unless --http-host/--mqtt-host say otherwise',
      )
      .option('--devices <n>', 'pump-station devices to simulate', '8')
      .option('--lights <n>', 'street lights to simulate', '4'),
  ).action(async (options: Record<string, unknown>) => {
    const notes: string[] = [];
    let node: RunningNode;
    let config: NodeConfig;
    try {
      const loaded = loadResolvedConfig(options);
      const local = onThisMachine(loaded.config, loaded.origins);
      config = { ...(await withFreeDefaults(local, loaded.origins, notes)), agentsDir: loaded.config.agentsDir ?? EXAMPLE_AGENTS };
      node = await startCloudNode(config, {});
    } catch (error) {
      reportStartupFailure(error);
    }
    announceListeners(node, config);
    warnAboutDataDir(node, config.dataDir);
    announceAdminKey(node);
    let edge: RunningNode;
    try {
      edge = await startDemoEdge(node, config);
    } catch (error) {
      await node.stop();
      reportStartupFailure(error);
    }
    // The pump station sits behind the edge (its agents run there); street lights talk to the cloud.
    const pumps = new Fleet({
      url: edge.mqttUrl,
      scenario: pumpStation,
      devices: Number(options.devices ?? 8),
      provisioner: new InProcessProvisioner(node, DEMO_EDGE),
      // Plant time runs 4x faster so the scheduled bearing fault develops within minutes.
      speedup: 4,
      connectWhen: (ids) => edgeKnows(edge, ids),
    });
    const lights = new Fleet({
      url: node.mqttUrl,
      scenario: streetLights,
      devices: Number(options.lights ?? 4),
      provisioner: new InProcessProvisioner(node),
    });
    const fleets = [pumps, lights];
    for (const fleet of fleets) await fleet.start();
    // A bearing starts to wear on pump-0002: the protection agent slows it and opens the valve,
    // and the vibration agent asks an operator to approve stopping it.
    const fault = setTimeout(() => pumps.plant.injectFault('pump-0002', 'bearing-wear'), DEMO_FAULT_AFTER_MS);
    fault.unref();
    const lines = [
      '',
      '  Thingloop demo is running',
      ...notes.map((note) => `  note: ${note}`),
      `  Listening ${[config.httpHost, config.mqttHost].every((host) => host === DEMO_HOST) ? 'on 127.0.0.1 only: this machine (--http-host/--mqtt-host 0.0.0.0 open it to the network)' : `HTTP on ${config.httpHost}, MQTT on ${config.mqttHost}`}`,
      `  Console   ${node.httpUrl}/   (sign in with the admin key)`,
      `  API       ${node.httpUrl}/api/v1   (OpenAPI: ${node.httpUrl}/api/v1/openapi.json)`,
      `  Metrics   ${node.httpUrl}/metrics`,
      `  MQTT      ${node.mqttUrl}   (cloud broker: street lights)`,
      `  Edge      ${DEMO_EDGE}: API ${edge.httpUrl}/api/v1, MQTT ${edge.mqttUrl} (pump station; its agents run here)`,
      `  Agents    ${node.agents
        .list()
        .map((a) => `${a.id} (${a.mode ?? 'auto'})`)
        .join(', ')}`,
      `  Fault     bearing wear starts on pump-0002 in ${DEMO_FAULT_AFTER_MS / 1000}s: watch /api/v1/alarms, /api/v1/approvals and /api/v1/agents/pump-bearing-protection/decisions`,
      `  Devices   ${fleets.map((f) => f.plant.devices.map((d) => d.id).join(', ')).join(', ')}`,
      `  Try       curl -H "Authorization: Bearer <admin key>" ${node.httpUrl}/api/v1/devices/pump-0001/latest`,
      '  Stop      Ctrl-C',
      '',
    ];
    process.stderr.write(`${lines.join('\n')}\n`);
    stopOnSignals(async () => {
      for (const fleet of fleets) await fleet.stop();
      await edge.stop();
      await node.stop();
    });
  });
}
