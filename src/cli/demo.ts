import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { NodeConfig, NodeOptions, RunningNode } from '../node/index.js';
import { ConfigError, startCloudNode } from '../node/index.js';
import {
  type DemoSite,
  type DeviceSpec,
  devicesByProtocol,
  type Provisioner,
  type Random,
  type SiteDevice,
  startDemoSite,
  type ThingModelDocument,
} from '../sim/index.js';
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
export const DEMO_EDGE = 'site-1';
/** The SDK pump whose bearing wears in the demo, and its twin behind the PLC. */
export const DEMO_FAULTY_PUMPS = ['pump-0002', 'plc-pump-02'] as const;

/** Starts the demo's edge node in this process, registered with the cloud node. */
async function startDemoEdge(cloud: RunningNode, config: NodeConfig, nodeOptions: NodeOptions): Promise<RunningNode> {
  const directory = cloud.edges;
  if (!directory) throw new Error('the cloud node has no edge directory');
  const { token } = (await directory.find(DEMO_EDGE))
    ? await directory.rotateToken(DEMO_EDGE)
    : await directory.register({ id: DEMO_EDGE, name: 'North works pumping station' });
  return startCloudNode(
    {
      ...config,
      role: 'edge',
      cloudUrl: cloud.httpUrl,
      edgeId: DEMO_EDGE,
      edgeToken: token,
      dataDir: join(config.dataDir, `edge-${DEMO_EDGE}`),
      httpPort: 0,
      mqttPort: 0,
      // The cloud keeps the CoAP port the user asked for; the edge's listener (the tank sensor's) takes a free one.
      coapPort: 0,
      agentsDir: undefined,
    },
    nodeOptions,
  );
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

/** A wildcard listen address is reached on loopback from this machine. */
const hostOf = (listen: string) => (listen === '0.0.0.0' || listen === '::' ? DEMO_HOST : listen);

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
    coapHost: origins.coapHost === 'default' ? DEMO_HOST : config.coapHost,
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
  if (config.coap && origins.coapPort === 'default' && !(await udpPortIsFree(config.coapPort, config.coapHost))) {
    notes.push(`default CoAP port ${config.coapPort} is taken, so a free port is used instead`);
    next.coapPort = 0;
  }
  return next;
}

function udpPortIsFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createSocket('udp4');
    probe.once('error', () => {
      probe.close();
      resolve(false);
    });
    probe.bind(port, host, () => probe.close(() => resolve(true)));
  });
}

export interface DemoOptions {
  /** SDK pump-station devices (pumps, valves, tanks) behind the edge. */
  pumpDevices: number;
  lights: number;
  /** Plant seconds per real second. */
  speedup: number;
  /** When the bearings of DEMO_FAULTY_PUMPS start to wear; undefined: never (a test injects it). */
  faultAfterMs?: number;
  /** SDK devices report at this fleet-wide rate (default: each at its profile's interval). */
  rate?: number;
  /** The plant's noise (a test's seeded one). */
  random?: Random;
  /** Passed to the edge node (a test's silent logger or clock). */
  nodeOptions?: NodeOptions;
}

export interface RunningDemo {
  edge: RunningNode;
  site: DemoSite;
  /** Stops the site and the edge; the cloud node is the caller's. */
  stop(): Promise<void>;
}

/**
 * Starts the demo around a running cloud node: edge site-1 in this process and the simulated site
 * (SDK devices on both brokers, the PLC and the OPC UA line the edge reaches).
 */
export async function startDemo(cloud: RunningNode, config: NodeConfig, options: DemoOptions): Promise<RunningDemo> {
  const edge = await startDemoEdge(cloud, config, options.nodeOptions ?? {});
  let site: DemoSite;
  try {
    site = await startDemoSite({
      edge: DEMO_EDGE,
      edgeProvisioner: new InProcessProvisioner(cloud, DEMO_EDGE),
      cloudProvisioner: new InProcessProvisioner(cloud),
      edgeMqttUrl: edge.mqttUrl,
      cloudMqttUrl: cloud.mqttUrl,
      pumpDevices: options.pumpDevices,
      lights: options.lights,
      speedup: options.speedup,
      rate: options.rate,
      random: options.random,
      host: DEMO_HOST,
      // Kept with the node's data so a restarted demo's server keeps the certificate its edge met.
      opcuaPkiDir: join(config.dataDir, 'sim', 'opcua-pki'),
      ...(edge.coapPort !== undefined ? { edgeCoap: { host: hostOf(config.coapHost), port: edge.coapPort } } : {}),
      edgeKnows: (ids) => edgeKnows(edge, ids),
    });
  } catch (error) {
    await edge.stop();
    throw error;
  }
  let fault: NodeJS.Timeout | undefined;
  if (options.faultAfterMs !== undefined) {
    // A bearing starts to wear on an SDK pump and on a PLC pump: the protection agents slow them
    // and open their valves, and the vibration agent asks an operator to approve stopping them.
    fault = setTimeout(() => {
      for (const pump of DEMO_FAULTY_PUMPS) site.injectFault(pump, 'bearing-wear');
    }, options.faultAfterMs);
    fault.unref();
  }
  return {
    edge,
    site,
    async stop() {
      clearTimeout(fault);
      // The edge first: its bindings hang up on the PLC and the OPC UA server instead of seeing them vanish.
      await edge.stop();
      await site.stop();
    },
  };
}

const placeOf = (device: SiteDevice) => (device.edge ? `edge ${device.edge}` : 'cloud');

/** What runs where, by protocol, and where to look: the lines the demo prints. */
export function demoSummary(cloud: RunningNode, demo: RunningDemo, config: NodeConfig, notes: string[], faultAfterMs: number): string[] {
  const api = `${cloud.httpUrl}/api/v1`;
  const { plc } = demo.site;
  const groups = [...devicesByProtocol(demo.site.devices())].map(([protocol, devices]) => {
    const places = [...new Set(devices.map(placeOf))].join(' and ');
    return `    ${protocol.padEnd(11)} ${devices.map((d) => d.id).join(', ')}  (${places})`;
  });
  return [
    '',
    '  Thingloop demo is running',
    ...notes.map((note) => `  note: ${note}`),
    `  Listening ${[config.httpHost, config.mqttHost].every((host) => host === DEMO_HOST) ? 'on 127.0.0.1 only: this machine (--http-host/--mqtt-host 0.0.0.0 open it to the network)' : `HTTP on ${config.httpHost}, MQTT on ${config.mqttHost}`}`,
    `  Console   ${cloud.httpUrl}/   (sign in with the admin key; a device's page shows its protocol and binding health)`,
    `  API       ${api}   (OpenAPI: ${api}/openapi.json)`,
    `  Metrics   ${cloud.httpUrl}/metrics`,
    `  MQTT      ${cloud.mqttUrl}   (cloud broker: street lights)`,
    `  Edge      ${DEMO_EDGE}: API ${demo.edge.httpUrl}/api/v1, MQTT ${demo.edge.mqttUrl} (pump station; its agents run here)`,
    `  PLC       Modbus TCP ${plc.host}:${plc.port}, unit ids ${plc.devices.map((d) => `${d.binding.unitId} ${d.id}`).join(', ')} (polled by edge ${DEMO_EDGE})`,
    ...(demo.edge.coapPort === undefined
      ? []
      : [
          `  CoAP      coap://${hostOf(config.coapHost)}:${demo.edge.coapPort}/things/{id}/… on edge ${DEMO_EDGE} (the sleepy NB-IoT tank sensor reports there)${cloud.coapPort === undefined ? '' : `; the cloud's: coap://${hostOf(config.coapHost)}:${cloud.coapPort}`}`,
        ]),
    '  OPC UA    line 2 is starting (a first start makes its server certificate); a line below says when its pumps join',
    `  Agents    ${cloud.agents
      .list()
      .map((a) => `${a.id} (${a.mode ?? 'auto'})`)
      .join(', ')}`,
    `  Fault     bearing wear starts on ${DEMO_FAULTY_PUMPS.join(' (MQTT) and ')} (behind the PLC) in ${faultAfterMs / 1000}s: watch /api/v1/alarms, /api/v1/approvals, /api/v1/agents/pump-bearing-protection/decisions and /api/v1/agents/plc-pump-bearing-protection/decisions`,
    '  Devices by protocol',
    ...groups,
    '  Try       (each with -H "Authorization: Bearer <admin key>")',
    `    curl ${api}/devices?protocol=modbus-tcp`,
    `    curl ${api}/devices/plc-pump-01/binding   (state, lastGoodReadTs, errors, latencyMs)`,
    `    curl ${api}/devices/plc-pump-01/td        (its W3C WoT Thing Description)`,
    `    curl ${api}/devices/plc-pump-01/latest`,
    '  Stop      Ctrl-C',
    '',
  ];
}

/** A count option: a whole number, 0 or more. */
function countOf(options: Record<string, unknown>, name: string, fallback: number): number {
  const value = Number(options[name] ?? fallback);
  if (!Number.isInteger(value) || value < 0) reportStartupFailure(new ConfigError(`--${name} must be a whole number (0 or more)`));
  return value;
}

export function addDemoCommand(program: Command): void {
  addNodeOptions(
    program
      .command('demo')
      .description(
        'run a cloud node, its edge site-1 and a simulated site of heterogeneous devices in one process (SDK pumps on MQTT, a Modbus TCP PLC, an OPC UA line, an NB-IoT tank sensor on CoAP, street lights): what `npm start` runs; it listens on 127.0.0.1 unless --http-host/--mqtt-host say otherwise',
      )
      .option('--devices <n>', 'SDK pump-station devices to simulate (the PLC and the OPC UA line come in addition)', '8')
      .option('--lights <n>', 'street lights to simulate', '4')
      .option('--speedup <factor>', 'plant seconds per real second (at 4 a worn bearing heats within minutes)', '4'),
  ).action(async (options: Record<string, unknown>) => {
    const notes: string[] = [];
    const pumpDevices = countOf(options, 'devices', 8);
    const lights = countOf(options, 'lights', 4);
    const speedup = Number(options.speedup ?? 4);
    if (!Number.isFinite(speedup) || speedup <= 0) reportStartupFailure(new ConfigError('--speedup must be a number above 0'));
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
    const starting = startDemo(node, config, { pumpDevices, lights, speedup, faultAfterMs: DEMO_FAULT_AFTER_MS });
    // A signal while the edge and the site start waits for them, so every part stops in order.
    stopOnSignals(async () => {
      const demo = await starting.catch(() => undefined);
      await demo?.stop();
      await node.stop();
    });
    let demo: RunningDemo;
    try {
      demo = await starting;
    } catch (error) {
      await node.stop();
      reportStartupFailure(error);
    }
    process.stderr.write(`${demoSummary(node, demo, config, notes, DEMO_FAULT_AFTER_MS).join('\n')}\n`);
    demo.site.line.then(
      (line) =>
        process.stderr.write(
          `  OPC UA    line 2 runs on ${line.endpointUrl}: ${line.devices.map((d) => d.id).join(', ')} (edge ${DEMO_EDGE} monitors them; ${node.httpUrl}/api/v1/devices?protocol=opcua)\n`,
        ),
      (error: Error) => process.stderr.write(`  OPC UA    line 2 did not start (${error.message}); the rest of the demo runs on\n`),
    );
  });
}
