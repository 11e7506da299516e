import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import {
  type ExistingDevicePolicy,
  ExistingDevicesError,
  Fleet,
  HttpProvisioner,
  OPCUA_LINE_MODEL_ID,
  type OpcuaLine,
  opcuaPumpModel,
  PLC_MODELS,
  type PlcStation,
  SCENARIOS,
  startOpcuaLine,
  startPlcStation,
} from '../sim/index.js';

interface SimOptions {
  scenario: string;
  devices: string;
  url: string;
  api: string;
  adminKey?: string;
  rate?: string;
  speedup: string;
  fault?: string[];
  modbusPort?: string;
  modbusHost: string;
  opcuaPort?: string;
  opcuaHost: string;
  reuse?: boolean;
  replace?: boolean;
}

/** `pump-0003:bearing-wear@30s` or `pump-0001:cavitation@60s+120s` (start, optional duration). */
function parseFault(text: string): { deviceId: string; fault: string; atS: number; durationS?: number } {
  const match = /^([^:]+):([a-z-]+)@(\d+)s(?:\+(\d+)s)?$/.exec(text);
  if (!match) throw new Error(`--fault "${text}" must look like pump-0003:bearing-wear@30s or pump-0001:cavitation@60s+120s`);
  return {
    deviceId: match[1] as string,
    fault: match[2] as string,
    atS: Number(match[3]),
    ...(match[4] ? { durationS: Number(match[4]) } : {}),
  };
}

export function addSimCommand(program: Command): void {
  program
    .command('sim')
    .description('simulate a fleet of devices on the device SDK against a running node')
    .requiredOption('--scenario <name>', `scenario: ${Object.keys(SCENARIOS).join(', ')}`, 'pump-station')
    .option('--devices <n>', 'number of devices', '8')
    .option('--url <mqtt-url>', 'broker the devices connect to', 'mqtt://localhost:1883')
    .option('--api <http-url>', 'node API used to register models and devices', 'http://localhost:8080')
    .option('--admin-key <key>', 'admin key for registration (env THINGLOOP_ADMIN_KEY)')
    .option('--rate <msgs-per-second>', 'fleet-wide telemetry rate (default: each device at its profile interval)')
    .option('--speedup <factor>', 'plant seconds per real second', '1')
    .option('--fault <spec...>', 'scheduled fault, e.g. pump-0001:bearing-wear@30s or pump-0002:cavitation@60s+120s')
    .option(
      '--modbus-port <port>',
      'also run a Modbus TCP PLC with 2 pumps (plc-pump-01/02) and a valve (plc-valve-01) on this port (0: any free port)',
    )
    .option('--modbus-host <host>', 'address the PLC listens on and its devices are registered with', '127.0.0.1')
    .option(
      '--opcua-port <port>',
      'also run line 2 as an OPC UA server (3 pumps, line2-pump-01..03, model line2-pump) on this port (0: any free port)',
    )
    .option('--opcua-host <host>', 'host the line 2 devices are registered with in their opc.tcp:// endpoint', '127.0.0.1')
    .option('--reuse', 'take over devices of the same ids an earlier thingloop sim registered (they get new tokens)')
    .option('--replace', 'delete existing devices of the same ids and register them anew')
    .addHelpText(
      'after',
      [
        '',
        'Existing devices: a device token cannot be read back, so running a device the node already has',
        'means issuing it a new token, which disconnects whatever runs it now. By default the simulator',
        'registers nothing when any of its device ids exists, names them and exits with code 3.',
        '  --reuse    devices an earlier thingloop sim registered (attribute provisionedBy: "thingloop sim")',
        '             and of the same model get new tokens and keep their history; any other existing',
        "             device (the demo's, a real one) is still refused",
        '  --replace  existing devices are deleted (twin, queued actions, credential) and registered anew',
        '',
        'Example:',
        '  thingloop sim --scenario pump-station --devices 1000 --url mqtt://localhost:1883 --api http://localhost:8080 --admin-key $KEY',
        '',
      ].join('\n'),
    )
    .action(async (options: SimOptions) => {
      const scenario = SCENARIOS[options.scenario];
      if (!scenario) throw new Error(`unknown scenario "${options.scenario}"; choose one of ${Object.keys(SCENARIOS).join(', ')}`);
      const adminKey = options.adminKey ?? process.env.THINGLOOP_ADMIN_KEY;
      if (!adminKey) throw new Error('the simulator registers its devices through the API: pass --admin-key or set THINGLOOP_ADMIN_KEY');
      const devices = Number(options.devices);
      if (!Number.isInteger(devices) || devices < 1) throw new Error('--devices must be a positive integer');
      const faults = (options.fault ?? []).map(parseFault);
      if (options.reuse && options.replace) throw new Error('--reuse and --replace exclude each other: choose one');
      const existing: ExistingDevicePolicy = options.reuse ? 'reuse' : options.replace ? 'replace' : 'refuse';
      const provisioner = new HttpProvisioner(options.api, adminKey, {
        existing,
        say: (line) => process.stderr.write(`sim: ${line}\n`),
      });
      const fleet = new Fleet({
        url: options.url,
        scenario,
        devices,
        provisioner,
        rate: options.rate ? Number(options.rate) : undefined,
        speedup: Number(options.speedup),
        progress: (line) => process.stderr.write(`sim: ${line}\n`),
      });
      let station: PlcStation | undefined;
      if (options.modbusPort !== undefined) {
        const port = Number(options.modbusPort);
        if (!Number.isInteger(port) || port < 0 || port > 65_535)
          throw new Error('--modbus-port must be a port number (0 for any free port)');
        station = await startPlcStation({ port, host: options.modbusHost, speedup: Number(options.speedup) });
      }
      let opcuaLine: OpcuaLine | undefined;
      if (options.opcuaPort !== undefined) {
        const port = Number(options.opcuaPort);
        if (!Number.isInteger(port) || port < 0 || port > 65_535)
          throw new Error('--opcua-port must be a port number (0 for any free port)');
        opcuaLine = await startOpcuaLine({
          port,
          host: options.opcuaHost,
          speedup: Number(options.speedup),
          // A lab line: any client certificate is accepted (a plant's server would be told whom to trust).
          pkiDir: join(tmpdir(), `thingloop-sim-opcua-${process.pid}`),
          trustAllClients: true,
        });
      }
      // Every id is looked at before anything is registered: a refusal leaves the node as it was.
      try {
        await provisioner.prepare([...fleet.plant.devices, ...(station?.devices ?? []), ...(opcuaLine?.devices ?? [])]);
      } catch (error) {
        await station?.stop();
        await opcuaLine?.stop();
        if (opcuaLine) rmSync(join(tmpdir(), `thingloop-sim-opcua-${process.pid}`), { recursive: true, force: true });
        if (!(error instanceof ExistingDevicesError)) throw error;
        process.stderr.write(`thingloop sim: ${error.message}\n`);
        process.exit(3);
      }
      await fleet.start();
      if (station) {
        for (const [id, document] of Object.entries(PLC_MODELS)) await provisioner.ensureModel(id, document);
        for (const device of station.devices) await provisioner.ensureDevice(device);
        process.stderr.write(`sim: Modbus TCP PLC on ${station.host}:${station.port} (${station.devices.map((d) => d.id).join(', ')})\n`);
      }
      if (opcuaLine) {
        await provisioner.ensureModel(OPCUA_LINE_MODEL_ID, opcuaPumpModel);
        for (const device of opcuaLine.devices) await provisioner.ensureDevice(device);
        process.stderr.write(`sim: OPC UA line 2 on ${opcuaLine.endpointUrl} (${opcuaLine.devices.map((d) => d.id).join(', ')})\n`);
      }
      for (const fault of faults) {
        setTimeout(() => {
          try {
            const linePump = opcuaLine?.devices.find((device) => device.id === fault.deviceId)?.attributes.pump;
            if (opcuaLine && typeof linePump === 'string') opcuaLine.injectFault(linePump, fault.fault, fault.durationS);
            else if (station?.devices.some((device) => device.id === fault.deviceId))
              station.injectFault(fault.deviceId, fault.fault, fault.durationS);
            else fleet.plant.injectFault(fault.deviceId, fault.fault, fault.durationS);
            process.stderr.write(`sim: injected ${fault.fault} on ${fault.deviceId}\n`);
          } catch (error) {
            process.stderr.write(`sim: ${(error as Error).message}\n`);
          }
        }, fault.atS * 1000).unref();
      }
      process.stderr.write(`sim: ${scenario.name} running with ${devices} devices; Ctrl-C stops\n`);
      const status = setInterval(() => process.stderr.write(`sim: ${JSON.stringify(fleet.stats())}\n`), 10_000);
      const stop = async () => {
        clearInterval(status);
        await fleet.stop();
        await station?.stop();
        await opcuaLine?.stop();
        if (opcuaLine) rmSync(join(tmpdir(), `thingloop-sim-opcua-${process.pid}`), { recursive: true, force: true });
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
