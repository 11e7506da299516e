import { SimulatedCoapTank } from './coap-tank.js';
import { Fleet } from './fleet.js';
import { PLC_MODELS, type PlcStation, startPlcStation } from './modbus-station.js';
import { OPCUA_LINE_MODEL_ID, type OpcuaLine, opcuaPumpModel, startOpcuaLine } from './opcua-line.js';
import type { Random } from './physics.js';
import type { Provisioner } from './provisioning.js';
import { pumpStation, streetLights } from './scenarios.js';
import { SimulatedSparkplugEdgeNode } from './sparkplug-edge-node.js';

/**
 * The demo's heterogeneous site: the pump station's SDK devices on MQTT, the same station's PLC
 * (Modbus TCP) and its line 2 (OPC UA) behind one edge, and street lights on the cloud's broker.
 * Nodes are the caller's: this only starts the simulated plant and registers what it simulates.
 */

/** Where a device of the demo is reached and by whom. */
export interface SiteDevice {
  id: string;
  protocol: string;
  /** The edge that serves it; undefined: the cloud itself. */
  edge?: string;
}

export interface DemoSiteOptions {
  /** The edge the pump station sits behind (its agents run there). */
  edge: string;
  /** Registers models and devices served by `edge`. */
  edgeProvisioner: Provisioner;
  /** Registers the devices that talk to the cloud directly. */
  cloudProvisioner: Provisioner;
  /** The edge's and the cloud's brokers. */
  edgeMqttUrl: string;
  cloudMqttUrl: string;
  /** SDK pump-station devices (pumps, valves, tanks) and street lights. */
  pumpDevices: number;
  lights: number;
  /** Plant seconds per real second, for every part of the site. */
  speedup: number;
  /** Where the PLC and the OPC UA server listen (loopback for a demo). */
  host: string;
  /** The OPC UA server's certificate and trust lists. */
  opcuaPkiDir: string;
  /** The edge's CoAP listener, when it runs one: an NB-IoT tank sensor reports to it. */
  edgeCoap?: { host: string; port: number };
  /** Resolves once the edge knows these devices (it learns them from its cloud). */
  edgeKnows(ids: string[]): Promise<boolean>;
  /** SDK devices report at this fleet-wide rate (default: each at its profile's interval). */
  rate?: number;
  random?: Random;
}

export interface DemoSite {
  pumps: Fleet;
  lights: Fleet;
  plc: PlcStation;
  /** The NB-IoT tank sensor on CoAP, when the edge listens for CoAP. */
  coapTank: SimulatedCoapTank | undefined;
  /** The tank farm's Sparkplug B gateway on the cloud's broker; its tanks are registered by their birth. */
  sparkplug: SimulatedSparkplugEdgeNode;
  /**
   * Line 2 once its OPC UA server runs and its devices are registered. It starts in the background:
   * a first start makes the server's certificate, which takes a while on a slow machine.
   */
  line: Promise<OpcuaLine>;
  /** The devices of the site so far (line 2's join once it runs). */
  devices(): SiteDevice[];
  /** A pump fault on any pump of the site, whatever it speaks. */
  injectFault(deviceId: string, fault: string, durationS?: number): void;
  stop(): Promise<void>;
}

/** Devices grouped by protocol, protocols in order of first appearance. */
export function devicesByProtocol(devices: readonly SiteDevice[]): Map<string, SiteDevice[]> {
  const groups = new Map<string, SiteDevice[]>();
  for (const device of devices) groups.set(device.protocol, [...(groups.get(device.protocol) ?? []), device]);
  return groups;
}

/** Stops what has started, in reverse: a part that fails to start must not leave the others holding ports. */
async function stopAll(parts: { stop(): Promise<void> }[]): Promise<void> {
  for (const part of [...parts].reverse()) await part.stop().catch(() => undefined);
}

/** The station's NB-IoT tank sensor on CoAP; it reports the storage tank's level and battery. */
const COAP_TANK = {
  id: 'coap-tank-01',
  model: 'storage-tank',
  name: 'Clear-water tank (NB-IoT, CoAP)',
  attributes: { station: 'station-0001', site: 'north-works', kind: 'tank' },
  network: { profile: 'nbiot', reportInterval: '30s' },
  binding: { protocol: 'coap' },
};
/** Real time between the tank's wake-ups: often enough to watch, as a demo should be. */
const COAP_TANK_WAKE_MS = 10_000;

/** The tank farm gateway as the platform knows it before its first birth (the birth derives its own model). */
const SPARKPLUG_GATEWAY = { group: 'tank-farm', edgeNode: 'gw-1' } as const;
const SPARKPLUG_GATEWAY_MODEL = 'sparkplug-edge-node';

async function startSparkplugGateway(options: DemoSiteOptions): Promise<SimulatedSparkplugEdgeNode> {
  const { group, edgeNode } = SPARKPLUG_GATEWAY;
  await options.cloudProvisioner.ensureModel(SPARKPLUG_GATEWAY_MODEL, {
    title: 'Sparkplug B edge node (until its birth)',
    properties: {},
  });
  const id = `${group}:${edgeNode}`;
  const token = await options.cloudProvisioner.ensureDevice({
    id,
    model: SPARKPLUG_GATEWAY_MODEL,
    name: 'Tank farm gateway (Sparkplug B)',
    attributes: { site: 'north-works', kind: 'gateway' },
    network: { profile: 'ethernet' },
    binding: { protocol: 'sparkplug-b', group, edgeNode },
  });
  const gateway = new SimulatedSparkplugEdgeNode({
    url: options.cloudMqttUrl,
    group,
    edgeNode,
    username: id,
    password: token,
    speedup: options.speedup,
  });
  await gateway.start();
  return gateway;
}

async function startCoapTank(options: DemoSiteOptions, listener: { host: string; port: number }): Promise<SimulatedCoapTank> {
  const model = pumpStation.models[COAP_TANK.model];
  if (model) await options.edgeProvisioner.ensureModel(COAP_TANK.model, model);
  const token = await options.edgeProvisioner.ensureDevice(COAP_TANK);
  // The edge refuses a token it has not learnt yet; the sensor's first uplink would be lost.
  await options.edgeKnows([COAP_TANK.id]);
  const tank = new SimulatedCoapTank({
    ...listener,
    id: COAP_TANK.id,
    token,
    intervalMs: COAP_TANK_WAKE_MS,
    speedup: options.speedup,
    random: options.random,
  });
  await tank.start();
  return tank;
}

export async function startDemoSite(options: DemoSiteOptions): Promise<DemoSite> {
  const started: { stop(): Promise<void> }[] = [];
  try {
    // Line 2 first: its certificate is made while the rest starts.
    const devices: SiteDevice[] = [];
    let running: OpcuaLine | undefined;
    const line = (async () => {
      const server = await startOpcuaLine({
        port: 0,
        host: options.host,
        speedup: options.speedup,
        pkiDir: options.opcuaPkiDir,
        // A lab line on loopback: the edge's client certificate is accepted without an operator.
        trustAllClients: true,
        random: options.random,
      });
      running = server;
      await options.edgeProvisioner.ensureModel(OPCUA_LINE_MODEL_ID, opcuaPumpModel);
      for (const device of server.devices) await options.edgeProvisioner.ensureDevice(device);
      devices.push(...server.devices.map((device) => ({ id: device.id, protocol: 'opcua', edge: options.edge })));
      return server;
    })();
    // Whoever awaits `line` hears of a failure; the rest of the site runs on without line 2.
    line.catch(() => undefined);
    started.push({
      async stop() {
        await line.catch(() => undefined);
        await running?.stop();
      },
    });
    const plc = await startPlcStation({ port: 0, host: options.host, speedup: options.speedup, random: options.random });
    started.push(plc);
    for (const [id, document] of Object.entries(PLC_MODELS)) await options.edgeProvisioner.ensureModel(id, document);
    for (const device of plc.devices) await options.edgeProvisioner.ensureDevice(device);

    const pumps = new Fleet({
      url: options.edgeMqttUrl,
      scenario: pumpStation,
      devices: options.pumpDevices,
      provisioner: options.edgeProvisioner,
      speedup: options.speedup,
      rate: options.rate,
      random: options.random,
      connectWhen: options.edgeKnows,
    });
    const lights = new Fleet({
      url: options.cloudMqttUrl,
      scenario: streetLights,
      devices: options.lights,
      provisioner: options.cloudProvisioner,
      rate: options.rate,
      random: options.random,
    });
    await pumps.start();
    started.push(pumps);
    await lights.start();
    started.push(lights);

    const coapTank = options.edgeCoap ? await startCoapTank(options, options.edgeCoap) : undefined;
    if (coapTank) started.push(coapTank);
    const sparkplug = await startSparkplugGateway(options);
    started.push(sparkplug);

    devices.unshift(
      ...pumps.plant.devices.map((device) => ({ id: device.id, protocol: 'mqtt', edge: options.edge })),
      ...plc.devices.map((device) => ({ id: device.id, protocol: device.binding.protocol, edge: options.edge })),
      ...(coapTank ? [{ id: COAP_TANK.id, protocol: 'coap', edge: options.edge }] : []),
      ...lights.plant.devices.map((device) => ({ id: device.id, protocol: 'mqtt' })),
      ...sparkplug.deviceIds().map((id) => ({ id, protocol: 'sparkplug-b' })),
    );
    const linePump = (id: string) => running?.devices.find((device) => device.id === id)?.attributes.pump;
    return {
      pumps,
      lights,
      plc,
      coapTank,
      sparkplug,
      line,
      devices: () => [...devices],
      injectFault(deviceId, fault, durationS) {
        const onLine = linePump(deviceId);
        if (running && typeof onLine === 'string') running.injectFault(onLine, fault, durationS);
        else if (plc.devices.some((device) => device.id === deviceId)) plc.injectFault(deviceId, fault, durationS);
        else pumps.plant.injectFault(deviceId, fault, durationS);
      },
      stop: () => stopAll(started),
    };
  } catch (error) {
    await stopAll(started);
    throw error;
  }
}
