import { chmod, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { OPCUACertificateManager } from 'node-opcua';
import type {
  AttachedDevice,
  BindingHealth,
  DeviceBinding,
  DeviceBindingConfig,
  DeviceUplink,
  DownlinkRequest,
} from '../../gateway/index.js';
import type { CompiledThingModel } from '../../model/index.js';
import type { Logger } from '../../observability/index.js';
import { type DeviceRecord, type FleetDeviceRef, fleetKey } from '../../registry/index.js';
import type { JsonValue } from '../../telemetry/index.js';
import { type ConnectionState, EndpointConnection, loadOpcua, type OpcuaModule, type PointReading, RequestFailed } from './connection.js';
import { endpointKey, type OpcuaDeviceMapping, readDeviceMapping } from './mapping.js';

export interface OpcuaBindingOptions {
  /** The client's certificate and trust lists live in `{dataDir}/opcua-pki` (never in ~/.config). */
  dataDir: string;
  logger: Logger;
  /** Deadline of every request to a server (connect twice this). Default 5 s. */
  requestTimeoutMs?: number;
  /** Reconnect backoff: doubled after each failure up to the maximum. Default 1 s … 30 s. */
  backoff?: { initialMs: number; maxMs: number };
  /** Server clock reads for latency and liveness. Default 10 s. */
  probeIntervalMs?: number;
  /**
   * Trust a server certificate seen for the first time (and remember it), as most OPC UA clients
   * offer. Off: the operator copies server certificates to `opcua-pki/trusted/certs`. Default on.
   */
  trustUnknownServers?: boolean;
}

interface ServedDevice {
  device: DeviceRecord;
  model: CompiledThingModel;
  mapping: OpcuaDeviceMapping;
  /** Its connection's: the tenant and the endpoint. */
  key: string;
  errors: number;
  lastGoodReadTs: number | null;
  lastError?: { ts: number; message: string };
  /** Points whose last reading was Bad: the next good one clears it, repeats are not reported again. */
  bad: Set<string>;
}

interface SharedConnection {
  connection: EndpointConnection;
  /** Fleet keys of the devices behind it. */
  devices: Set<string>;
}

/** A device's binding parameters when they are OPC UA's. */
export function opcuaBindingOf(device: DeviceRecord): DeviceBindingConfig | undefined {
  return device.binding.protocol === 'opcua' ? device.binding : undefined;
}

/** Owner-only, like the rest of the data directory: the client's private key is in here. */
async function narrowPermissions(folder: string): Promise<void> {
  const entries = await readdir(folder, { withFileTypes: true }).catch(() => []);
  await chmod(folder, 0o700).catch(() => undefined);
  for (const entry of entries) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) await narrowPermissions(path);
    else await chmod(path, 0o600).catch(() => undefined);
  }
}

/**
 * The OPC UA client binding: devices behind OPC UA servers. One session per endpoint (and security
 * mode) shared by its devices; properties are monitored items whose values go up as telemetry,
 * desired values are written and read back, actions call methods. Bad status codes never become
 * values: they go on the device's error list with the status name.
 */
export class OpcuaBinding implements DeviceBinding {
  readonly protocol = 'opcua' as const;
  private uplink: DeviceUplink | undefined;
  /** By tenant and id (fleetKey): one binding serves every tenant, and ids repeat across tenants. */
  private readonly devices = new Map<string, ServedDevice>();
  /** By tenant and endpoint: tenants never share a session (nor its subscriptions or its failures). */
  private readonly connections = new Map<string, SharedConnection>();
  private runtime: Promise<{ opcua: OpcuaModule; certificates: OPCUACertificateManager }> | undefined;
  private stopped = false;

  constructor(private readonly options: OpcuaBindingOptions) {}

  async start(uplink: DeviceUplink): Promise<void> {
    this.uplink = uplink;
    this.stopped = false;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const connections = [...this.connections.values()];
    this.connections.clear();
    this.devices.clear();
    await Promise.all(connections.map(({ connection }) => connection.close()));
    if (this.runtime) {
      const { certificates } = await this.runtime;
      await certificates.dispose().catch(() => undefined);
      this.runtime = undefined;
    }
  }

  private loadRuntime() {
    this.runtime ??= (async () => {
      const opcua = await loadOpcua();
      const rootFolder = join(this.options.dataDir, 'opcua-pki');
      const certificates = new opcua.OPCUACertificateManager({
        rootFolder,
        automaticallyAcceptUnknownCertificate: this.options.trustUnknownServers ?? true,
      });
      await certificates.initialize();
      await narrowPermissions(rootFolder);
      return { opcua, certificates };
    })();
    return this.runtime;
  }

  private get up(): DeviceUplink {
    if (!this.uplink) throw new Error('the OPC UA binding is not started');
    return this.uplink;
  }

  /** On the device's errors, in its health, and in /metrics (thingloop_refusals_total{listener="opcua"}). */
  private fault(served: ServedDevice, message: string, reason: string): void {
    served.errors++;
    served.lastError = { ts: this.up.now(), message };
    this.up.refused('opcua', reason);
    this.up.reportError(served.device, message, reason);
  }

  private send(served: ServedDevice, message: Parameters<DeviceUplink['receive']>[1]): void {
    this.up.receive(served.device, message, 'opcua').catch((error: unknown) => {
      this.options.logger.warn(
        { device: served.device.id, kind: message.kind, err: error instanceof Error ? error.message : String(error) },
        'OPC UA message not accepted',
      );
    });
  }

  async attach({ device, model }: AttachedDevice): Promise<void> {
    const uplink = this.up;
    await this.detach(device);
    const id = fleetKey(device);
    const binding = opcuaBindingOf(device);
    if (!binding) {
      uplink.refused('opcua', 'no_binding');
      return;
    }
    const mapping = readDeviceMapping(model, binding);
    if ('problem' in mapping) {
      uplink.reportError(device, mapping.problem, 'invalid_binding');
      return;
    }
    const served: ServedDevice = {
      device,
      model,
      mapping,
      key: `${device.tenant}|${endpointKey(mapping.endpoint)}`,
      errors: 0,
      lastGoodReadTs: null,
      bad: new Set(),
    };
    this.devices.set(id, served);
    for (const problem of mapping.problems) this.fault(served, problem, 'invalid_form');
    const { opcua, certificates } = await this.loadRuntime();
    // Detached or stopped while node-opcua loaded.
    if (this.stopped || this.devices.get(id) !== served) return;
    let shared = this.connections.get(served.key);
    if (!shared) {
      const key = served.key;
      const connection: EndpointConnection = new EndpointConnection(mapping.endpoint, {
        opcua,
        certificates,
        logger: this.options.logger,
        requestTimeoutMs: this.options.requestTimeoutMs ?? 5000,
        backoff: this.options.backoff ?? { initialMs: 1000, maxMs: 30_000 },
        probeIntervalMs: this.options.probeIntervalMs ?? 10_000,
        now: () => uplink.now(),
        stateChanged: (state, message) => this.connectionChanged(key, state, message),
        failed: (message) => this.attemptFailed(key, message),
      });
      shared = { connection, devices: new Set() };
      this.connections.set(key, shared);
      connection.start();
    }
    shared.devices.add(id);
    if (shared.connection.state === 'connected') this.send(served, { kind: 'presence', state: 'online' });
    if (mapping.properties.length > 0) {
      shared.connection.watch(id, {
        points: mapping.properties,
        readings: (readings) => this.readings(id, readings),
        itemRefused: (point, status) => {
          const current = this.devices.get(id);
          if (current) this.fault(current, `${point.property} (${point.nodeId}) cannot be monitored: ${status}`, 'bad_status');
        },
      });
    }
  }

  async detach(device: FleetDeviceRef): Promise<void> {
    const id = fleetKey(device);
    const served = this.devices.get(id);
    if (!served) return;
    this.devices.delete(id);
    const shared = this.connections.get(served.key);
    if (!shared) return;
    shared.devices.delete(id);
    shared.connection.unwatch(id);
    // The last device behind a server gone: its session goes too.
    if (shared.devices.size === 0) {
      this.connections.delete(served.key);
      await shared.connection.close();
    }
  }

  private connectionChanged(key: string, state: ConnectionState, message: string | undefined): void {
    const shared = this.connections.get(key);
    if (!shared || this.stopped) return;
    for (const id of shared.devices) {
      const served = this.devices.get(id);
      if (!served) continue;
      if (state === 'connected') {
        this.send(served, { kind: 'presence', state: 'online' });
        // Desired values and actions that waited for the server go out now.
        this.send(served, { kind: 'presence', state: 'listening' });
      } else if (state === 'unreachable') {
        // Counted in the health by attemptFailed, which follows for this and every later attempt.
        this.up.reportError(
          served.device,
          `OPC UA server ${served.mapping.endpoint.url} unreachable: ${message ?? 'no answer'}`,
          'unreachable',
        );
        this.send(served, { kind: 'presence', state: 'offline' });
      }
    }
  }

  /** Each failed attempt counts in the devices' health; their error lists got the transition only. */
  private attemptFailed(key: string, message: string): void {
    // Once per attempt, not per device behind the server.
    this.up.refused('opcua', 'unreachable');
    for (const id of this.connections.get(key)?.devices ?? []) {
      const served = this.devices.get(id);
      if (!served) continue;
      served.errors++;
      served.lastError = { ts: this.up.now(), message: `OPC UA server ${served.mapping.endpoint.url} unreachable: ${message}` };
    }
  }

  /** Good readings go up as telemetry (one sample per source timestamp); Bad ones are errors. */
  private readings(id: string, readings: PointReading[]): void {
    const served = this.devices.get(id);
    if (!served) return;
    const samples = new Map<number, Record<string, JsonValue>>();
    for (const reading of readings) {
      if (!reading.good) {
        if (!served.bad.has(reading.property)) {
          served.bad.add(reading.property);
          this.fault(served, `${reading.property} (${reading.nodeId}): ${reading.status}`, 'bad_status');
        }
        continue;
      }
      served.bad.delete(reading.property);
      const sample = samples.get(reading.ts) ?? { ts: reading.ts };
      sample[reading.property] = reading.value;
      samples.set(reading.ts, sample);
    }
    if (samples.size === 0) return;
    served.lastGoodReadTs = this.up.now();
    const list = [...samples.values()];
    this.send(served, { kind: 'telemetry', payload: { body: list.length === 1 ? list[0] : list } });
  }

  reachable(device: DeviceRecord, request: DownlinkRequest): boolean {
    if (request.kind === 'errors') return true;
    const served = this.devices.get(fleetKey(device));
    return served !== undefined && this.connections.get(served.key)?.connection.state === 'connected';
  }

  async deliver(device: DeviceRecord, request: DownlinkRequest): Promise<void> {
    // An OPC UA server has nowhere to show a device's error list: operators see it on the API.
    if (request.kind === 'errors') return;
    const served = this.devices.get(fleetKey(device));
    if (!served) throw new Error(`device ${device.id} is not served by the OPC UA binding (no "opcua" binding or model forms)`);
    const shared = this.connections.get(served.key);
    if (shared?.connection.state !== 'connected') {
      throw new Error(
        `OPC UA server ${served.mapping.endpoint.url} is not connected${shared?.connection.lastError ? `: ${shared.connection.lastError}` : ''}`,
      );
    }
    if (request.kind === 'desired') {
      await this.writeDesired(served, shared.connection, request.state.delta);
      return;
    }
    const method = served.mapping.actions.find((point) => point.action === request.action);
    if (!method) throw new Error(`action ${request.action} has no OPC UA method form ("opcua:objectId" and "opcua:methodId")`);
    const outputType = served.model.document.actions?.[request.action]?.output?.type;
    // The call runs after delivery is acknowledged: its result comes back like any device's.
    setImmediate(() => {
      deadlineCall(shared.connection, method, request.input, outputType !== undefined && outputType !== 'object', request.timeoutMs)
        .then((output) =>
          this.send(served, { kind: 'action-result', action: request.action, payload: { body: { id: request.id, output } } }),
        )
        .catch((error: unknown) => {
          const message = error instanceof Error ? error.message : String(error);
          this.fault(served, `action ${request.action}: ${message}`, error instanceof RequestFailed ? error.reason : 'action_failed');
          this.send(served, { kind: 'action-result', action: request.action, payload: { body: { id: request.id, error: message } } });
        });
    });
  }

  /** Writes each desired value, then reads them back: what the server holds is reported. */
  private async writeDesired(served: ServedDevice, connection: EndpointConnection, delta: Record<string, JsonValue>): Promise<void> {
    const written = [];
    for (const [property, value] of Object.entries(delta)) {
      const point = served.mapping.properties.find((candidate) => candidate.property === property);
      if (!point?.writable) {
        this.fault(
          served,
          `desired ${property}: ${point ? 'the form does not allow writeproperty' : 'no OPC UA form ("opcua:nodeId") for it'}`,
          'not_writable',
        );
        continue;
      }
      try {
        await connection.write(point, value);
        written.push(point);
      } catch (error) {
        this.fault(
          served,
          `desired ${property}: ${error instanceof Error ? error.message : String(error)}`,
          error instanceof RequestFailed ? error.reason : 'write_failed',
        );
      }
    }
    if (written.length === 0) return;
    const readings = await connection.read(written);
    const reported: Record<string, JsonValue> = {};
    for (const reading of readings) {
      if (reading.good) reported[reading.property] = reading.value;
      else this.fault(served, `${reading.property} (${reading.nodeId}) read back: ${reading.status}`, 'bad_status');
    }
    if (Object.keys(reported).length > 0) {
      served.lastGoodReadTs = this.up.now();
      this.send(served, { kind: 'twin-reported', payload: { body: reported } });
    }
  }

  health(device: DeviceRecord): BindingHealth | undefined {
    const served = this.devices.get(fleetKey(device));
    if (!served) return undefined;
    const connection = this.connections.get(served.key)?.connection;
    const state = connection?.state;
    return {
      protocol: 'opcua',
      state: state === 'connected' ? 'connected' : state === 'unreachable' ? 'unreachable' : 'idle',
      lastGoodReadTs: served.lastGoodReadTs,
      errors: served.errors,
      latencyMs: connection?.latencyMs ?? null,
      ...(served.lastError ? { lastError: served.lastError } : {}),
    };
  }
}

/** An invocation's own timeout bounds the call too (a method may legitimately take longer than a read). */
function deadlineCall(
  connection: EndpointConnection,
  method: Parameters<EndpointConnection['call']>[0],
  input: JsonValue | undefined,
  scalar: boolean,
  timeoutMs: number,
) {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    connection.call(method, input, scalar),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new RequestFailed(`no answer within ${timeoutMs} ms`, 'timeout')), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}

export function createOpcuaBinding(options: OpcuaBindingOptions): OpcuaBinding {
  return new OpcuaBinding(options);
}
