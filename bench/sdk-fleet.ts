/**
 * Simulated devices for bench/twin-actions.ts and bench/agent-loop.ts: N ThingloopDevice
 * instances (the device SDK, over real MQTT) in their own process, started with `fork`
 * (configuration, orders and results over IPC).
 *
 * Every device answers the action `reset` and follows desired state: a desired `setpoint` is
 * recorded (arrival time) and reported back on twin/reported. In the agent loop, devices also
 * publish `temp`, alternating a high value (unique per device, so the agent's answer can be
 * matched to the sample that caused it) and a low one that clears the condition.
 */
import { type DesiredUpdate, ThingloopDevice } from '../src/sdk/index.js';
import { type FleetConfig, type FleetLoop, type FleetMessage, type FleetOrder, nowMs } from './lib/fleet-protocol.js';
import { LatencyHistogram } from './lib/histogram.js';

function send(message: FleetMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) resolve();
    else process.send(message, () => resolve());
  });
}

interface SimDevice {
  sdk: ThingloopDevice;
  id: string;
  /** Next sample is high (fires the agent) or low (clears it). */
  high: boolean;
  seq: number;
  /** High value sent → when it was reported, waiting for the agent's answer. */
  waiting: Map<number, number>;
}

class Fleet {
  readonly devices: SimDevice[] = [];
  /** setpoint value → arrival time, for the twin benchmark (values are unique per run). */
  readonly desiredArrivals: [number, number][] = [];
  reported = 0;
  actions = 0;
  loopLatency = new LatencyHistogram();
  loopsOpen = 0;

  async connect(config: FleetConfig): Promise<number> {
    const started = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < config.devices.length) {
        const { id, token } = config.devices[next++]!;
        const sdk = await ThingloopDevice.connect({ url: config.mqttUrl, deviceId: id, token, clientId: id, keepAliveSeconds: 300 });
        const device: SimDevice = { sdk, id, high: true, seq: 0, waiting: new Map() };
        sdk.handle('reset', () => {
          this.actions++;
          return { ok: true };
        });
        sdk.onDesired((update) => this.onDesired(device, update));
        sdk.on('error', () => undefined);
        this.devices.push(device);
        if (this.devices.length % 1000 === 0) process.stderr.write(`[fleet] connected ${this.devices.length}/${config.devices.length}\n`);
      }
    };
    await Promise.all(Array.from({ length: config.connectConcurrency }, worker));
    return (performance.now() - started) / 1000;
  }

  private onDesired(device: SimDevice, update: DesiredUpdate): void {
    const at = nowMs();
    const setpoint = update.desired.setpoint;
    if (typeof setpoint !== 'number') return;
    const sentAt = device.waiting.get(setpoint);
    if (sentAt !== undefined) {
      device.waiting.delete(setpoint);
      this.loopLatency.record(at - sentAt);
    } else {
      this.desiredArrivals.push([setpoint, at]);
    }
    // Follow desired state: apply it and say so.
    device.sdk.reportTwin({ setpoint }).then(
      () => this.reported++,
      () => undefined,
    );
  }

  /** Publishes `temp` at an aggregate rate, round-robin, for `seconds`; measures sample → desired. */
  async loop(order: FleetLoop): Promise<void> {
    const started = performance.now();
    let sent = 0;
    let cursor = 0;
    let measuring = false;
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const elapsed = (performance.now() - started) / 1000;
        if (!measuring && elapsed >= order.warmupSeconds) {
          measuring = true;
          this.loopLatency = new LatencyHistogram();
        }
        if (elapsed >= order.warmupSeconds + order.seconds) {
          clearInterval(timer);
          resolve();
          return;
        }
        const owed = Math.floor(order.rate * elapsed) - sent;
        for (let i = 0; i < owed; i++) {
          const device = this.devices[cursor]!;
          cursor = (cursor + 1) % this.devices.length;
          sent++;
          if (device.high) {
            // 60.000–69.999: above the agent's threshold, and unique among this device's open samples.
            const value = 60 + (device.seq++ % 10_000) / 1000;
            device.waiting.set(value, nowMs());
            device.sdk.report({ temp: value });
          } else {
            device.sdk.report({ temp: 20 });
          }
          device.high = !device.high;
        }
      }, 1);
    });
    // Let answers to the last samples arrive.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    this.loopsOpen = this.devices.reduce((n, d) => n + d.waiting.size, 0);
  }
}

async function main(): Promise<void> {
  if (!process.send) throw new Error('this script is started by a benchmark (fork), which sends its configuration');
  const config = await new Promise<FleetConfig>((resolve) => {
    const listener = (order: FleetOrder) => {
      if (order.type !== 'config') return;
      process.off('message', listener);
      resolve(order.config);
    };
    process.on('message', listener);
  });
  const fleet = new Fleet();
  const seconds = await fleet.connect(config);
  await send({ type: 'connected', seconds });
  process.on('message', (order: FleetOrder) => {
    if (order.type === 'loop') {
      fleet.loop(order).then(
        () => send({ type: 'loop-result', latency: fleet.loopLatency.summary(), open: fleet.loopsOpen }),
        (error: Error) => send({ type: 'failed', message: error.message }),
      );
    } else if (order.type === 'report') {
      void send({ type: 'report', desiredArrivals: fleet.desiredArrivals.splice(0), reported: fleet.reported, actions: fleet.actions });
    } else if (order.type === 'stop') {
      Promise.all(fleet.devices.map((d) => d.sdk.close())).finally(() => process.exit(0));
    }
  });
}

main().catch(async (error: Error) => {
  process.stderr.write(`fleet: ${error.stack ?? error.message}\n`);
  await send({ type: 'failed', message: error.message });
  process.exit(1);
});
