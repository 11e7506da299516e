import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { NodeConfig, RunningNode } from '../node/index.js';
import { startCloudNode } from '../node/index.js';
import { type DeviceSpec, Fleet, type Provisioner, pumpStation, streetLights, type ThingModelDocument } from '../sim/index.js';
import { addNodeOptions, announceAdminKey, loadResolvedConfig, reportStartupFailure, stopOnSignals } from './serve.js';

/** Provisions straight through the node's registry: works even when the admin key is only a stored hash. */
class InProcessProvisioner implements Provisioner {
  constructor(private readonly node: RunningNode) {}
  async ensureModel(id: string, document: ThingModelDocument): Promise<void> {
    await this.node.models.put(id, document);
  }
  async ensureDevice(spec: DeviceSpec): Promise<string> {
    const existing = await this.node.registry.find(spec.id);
    const registration = { ...spec, network: { ...spec.network, profile: spec.network.profile as 'ethernet' } };
    if (!existing) return (await this.node.registry.register(registration)).token;
    return (await this.node.registry.rotateToken(spec.id)).token;
  }
}

const DEMO_FAULT_AFTER_MS = 30_000;
/** The example agents shipped with the package (examples/agents), used unless --agents-dir says otherwise. */
const EXAMPLE_AGENTS = fileURLToPath(new URL('../../examples/agents', import.meta.url));

function portIsFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, host, () => probe.close(() => resolve(true)));
  });
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
      .description('run a cloud node with a simulated pump station and street lights behind it (what `npm start` runs)')
      .option('--devices <n>', 'pump-station devices to simulate', '8')
      .option('--lights <n>', 'street lights to simulate', '4'),
  ).action(async (options: Record<string, unknown>) => {
    const notes: string[] = [];
    let node: RunningNode;
    try {
      const { config, origins } = loadResolvedConfig(options);
      const demoConfig = { ...(await withFreeDefaults(config, origins, notes)), agentsDir: config.agentsDir ?? EXAMPLE_AGENTS };
      node = await startCloudNode(demoConfig, {});
    } catch (error) {
      reportStartupFailure(error);
    }
    announceAdminKey(node);
    const provisioner = new InProcessProvisioner(node);
    const fleets = [
      // Plant time runs 4x faster so the scheduled bearing fault develops within minutes.
      new Fleet({ url: node.mqttUrl, scenario: pumpStation, devices: Number(options.devices ?? 8), provisioner, speedup: 4 }),
      new Fleet({ url: node.mqttUrl, scenario: streetLights, devices: Number(options.lights ?? 4), provisioner }),
    ];
    for (const fleet of fleets) await fleet.start();
    const [plant] = fleets;
    // A bearing starts to wear on pump-0002: the protection agent slows it and opens the valve,
    // and the vibration agent asks an operator to approve stopping it.
    const fault = setTimeout(() => plant?.plant.injectFault('pump-0002', 'bearing-wear'), DEMO_FAULT_AFTER_MS);
    fault.unref();
    const lines = [
      '',
      '  Thingloop demo is running',
      ...notes.map((note) => `  note: ${note}`),
      `  API       ${node.httpUrl}/api/v1   (OpenAPI: ${node.httpUrl}/api/v1/openapi.json)`,
      `  Metrics   ${node.httpUrl}/metrics`,
      `  MQTT      ${node.mqttUrl}   (topics things/{deviceId}/…)`,
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
      await node.stop();
    });
  });
}
