import { ThingloopDevice } from '../sdk/index.js';
import type { Random } from './physics.js';
import type { Provisioner } from './provisioning.js';
import type { Plant, Scenario, SimulatedDevice } from './scenarios.js';

export interface FleetOptions {
  /** mqtt://host:port devices connect to. */
  url: string;
  scenario: Scenario;
  devices: number;
  provisioner: Provisioner;
  /** Fleet-wide messages per second; default: each device at its profile's interval (5 s). */
  rate?: number;
  /** Seconds of plant time per real second (default 1). */
  speedup?: number;
  /** Sleepy devices stay connected this long after a report to hear downlink. */
  wakeWindowMs?: number;
  random?: Random;
  /** Progress lines for long work (provisioning, connecting). */
  progress?: (line: string) => void;
  concurrency?: number;
  /** Resolves once the broker knows these devices (e.g. an edge that learns them from its cloud). */
  connectWhen?: (deviceIds: string[]) => Promise<boolean>;
}

export interface FleetStats {
  devices: number;
  connected: number;
  reported: number;
  acknowledged: number;
  dropped: number;
  actionsHandled: number;
  desiredApplied: number;
}

interface Member {
  sim: SimulatedDevice;
  token: string;
  sleepy: boolean;
  intervalMs: number;
  connection?: ThingloopDevice;
  nextReport: number;
  sleepTimer?: NodeJS.Timeout;
}

const TICK_MS = 100;
const DEFAULT_INTERVAL_MS = 5_000;

function intervalOf(text: string | undefined): number {
  const match = text ? /^(\d+)(ms|s|m|h)$/.exec(text) : null;
  if (!match) return DEFAULT_INTERVAL_MS;
  const factor = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'm' | 'h'];
  return Number(match[1]) * factor;
}

async function inBatches<T>(
  items: T[],
  concurrency: number,
  work: (item: T) => Promise<void>,
  onDone?: (done: number) => void,
): Promise<void> {
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
      onDone?.(++done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/**
 * Runs a scenario's plant as real devices: each one an SDK connection to the broker, reporting
 * its readings, applying desired setpoints and answering actions. Sleepy (NB-IoT) devices
 * connect only around their reports, as in the field.
 */
export class Fleet {
  readonly plant: Plant;
  private readonly members: Member[] = [];
  private timer?: NodeJS.Timeout;
  private counters = { reported: 0, actionsHandled: 0, desiredApplied: 0 };
  private clock = 0;

  constructor(private readonly options: FleetOptions) {
    this.plant = options.scenario.build(options.devices, options.random ?? Math.random);
  }

  async start(): Promise<void> {
    const { options } = this;
    const say = options.progress ?? (() => {});
    for (const [id, document] of Object.entries(options.scenario.models)) await options.provisioner.ensureModel(id, document);
    const total = this.plant.devices.length;
    const fleetInterval = options.rate ? (total / options.rate) * 1_000 : undefined;
    const members: Member[] = [];
    await inBatches(
      this.plant.devices,
      options.concurrency ?? 16,
      async (sim) => {
        const token = await options.provisioner.ensureDevice(sim);
        const sleepy = sim.network.profile === 'nbiot' || sim.network.profile === 'lpwan';
        const intervalMs = fleetInterval ?? intervalOf(sim.network.reportInterval);
        members.push({ sim, token, sleepy, intervalMs, nextReport: Math.random() * intervalMs });
      },
      (done) => (done % 500 === 0 || done === total) && say(`registered ${done}/${total} devices`),
    );
    this.members.push(...members.sort((a, b) => a.sim.id.localeCompare(b.sim.id)));
    if (options.connectWhen && !(await options.connectWhen(this.members.map((m) => m.sim.id)))) {
      say('the broker does not know the devices yet; connecting anyway (they retry with backoff)');
    }
    const awake = this.members.filter((m) => !m.sleepy);
    await inBatches(
      awake,
      options.concurrency ?? 64,
      async (member) => {
        member.connection = await this.connect(member);
      },
      (done) => (done % 500 === 0 || done === awake.length) && say(`connected ${done}/${awake.length} devices`),
    );
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  private async connect(member: Member): Promise<ThingloopDevice> {
    const connection = await ThingloopDevice.connect({
      url: this.options.url,
      deviceId: member.sim.id,
      token: member.token,
      maxInFlight: 8,
    });
    connection.onDesired((update) => {
      member.sim.applyDesired(update.desired);
      this.counters.desiredApplied++;
    });
    for (const [name, run] of Object.entries(member.sim.actions)) {
      connection.handle(name, (input) => {
        this.counters.actionsHandled++;
        return run(input);
      });
    }
    connection.on('error', () => {});
    return connection;
  }

  private tick(): void {
    const dt = (TICK_MS / 1000) * (this.options.speedup ?? 1);
    this.plant.advance(dt);
    this.clock += TICK_MS;
    for (const member of this.members) {
      if (member.nextReport > this.clock) continue;
      member.nextReport += member.intervalMs;
      if (member.sleepy) {
        this.wakeAndReport(member).catch(() => {});
        continue;
      }
      const reading = member.sim.read();
      if (reading && member.connection) {
        member.connection.report(reading);
        this.counters.reported++;
      }
      if (member.connection) for (const event of member.sim.takeEvents?.() ?? []) member.connection.emitEvent(event.name, event.data);
    }
  }

  /** An NB-IoT device's wake window: connect, report, listen briefly, sleep. */
  private async wakeAndReport(member: Member): Promise<void> {
    if (member.connection) return;
    const reading = member.sim.read();
    const connection = await this.connect(member);
    member.connection = connection;
    if (reading) {
      connection.report(reading);
      this.counters.reported++;
    }
    await connection.flush();
    member.sleepTimer = setTimeout(() => {
      member.connection = undefined;
      connection.close().catch(() => {});
    }, this.options.wakeWindowMs ?? 2_000);
  }

  stats(): FleetStats {
    let connected = 0;
    let acknowledged = 0;
    let dropped = 0;
    for (const member of this.members) {
      if (member.connection?.connected) connected++;
      acknowledged += member.connection?.stats.acknowledged ?? 0;
      dropped += member.connection?.stats.dropped ?? 0;
    }
    return { devices: this.members.length, connected, acknowledged, dropped, ...this.counters };
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await Promise.all(
      this.members.map(async (member) => {
        if (member.sleepTimer) clearTimeout(member.sleepTimer);
        await member.connection?.close();
        member.connection = undefined;
      }),
    );
  }
}
