import { createSocket, type Socket } from 'node:dgram';
import { Agent, type IncomingMessage } from 'coap';
import { noise, type Random, stepTank, type TankState } from './physics.js';

/**
 * A battery-powered NB-IoT tank level sensor on CoAP (the `coap` package's client, as constrained
 * stacks speak it): it sleeps, wakes to POST its level and battery to
 * `coap://node/things/{id}/telemetry` with its token in option 65003, and sleeps again. A sleepy
 * device has no session, so whatever the platform queued for it waits for its next uplink.
 */

/** The device token as a CoAP option (experimental range, critical, unsafe to forward). */
const TOKEN_OPTION = '65003';

export interface CoapTankOptions {
  /** Where the node's CoAP listener is. */
  host: string;
  port: number;
  id: string;
  token: string;
  /** Real time between wake-ups. */
  intervalMs: number;
  /** Plant seconds per real second. */
  speedup?: number;
  random?: Random;
}

export interface CoapTankStats {
  sent: number;
  /** Uplinks the node answered 2.xx (stored). */
  acknowledged: number;
  /** Uplinks refused (4.xx/5.xx) or unanswered (the radio dropped them). */
  failed: number;
  lastCode: string | undefined;
}

/** Net inflow through the day: the station's pumps fill it, the district draws it down. */
const INFLOW_M3H = 140;
const VALVE_PERCENT = 50;

export class SimulatedCoapTank {
  private socket: Socket | undefined;
  private agent: Agent | undefined;
  private timer: NodeJS.Timeout | undefined;
  private state: TankState = { level: 2.5 };
  private battery = 100;
  private lastWake = Date.now();
  private busy = false;
  readonly stats: CoapTankStats = { sent: 0, acknowledged: 0, failed: 0, lastCode: undefined };

  constructor(private readonly options: CoapTankOptions) {}

  async start(): Promise<void> {
    const type = this.options.host.includes(':') ? 'udp6' : 'udp4';
    const socket = createSocket(type);
    await new Promise<void>((resolve) => socket.bind(0, () => resolve()));
    this.socket = socket;
    this.agent = new Agent({ type, socket });
    this.lastWake = Date.now();
    this.wake();
    this.timer = setInterval(() => this.wake(), this.options.intervalMs);
    this.timer.unref();
  }

  /** The level and battery it reports now, advanced by the time slept. */
  private read(): { level: number; battery: number } {
    const now = Date.now();
    const dt = ((now - this.lastWake) / 1000) * (this.options.speedup ?? 1);
    this.lastWake = now;
    const random = this.options.random ?? Math.random;
    this.state = stepTank(this.state, INFLOW_M3H + noise(random, 20), VALVE_PERCENT, dt);
    // A radio wake-up costs far more than sleeping: the battery drains per uplink.
    this.battery = Math.max(0, this.battery - 0.01);
    return { level: Number(this.state.level.toFixed(3)), battery: Number(this.battery.toFixed(2)) };
  }

  private wake(): void {
    const agent = this.agent;
    // One uplink at a time: a wake-up while the last one still waits for its answer is skipped, as a modem would.
    if (!agent || this.busy) return;
    this.busy = true;
    void this.send(agent).finally(() => {
      this.busy = false;
    });
  }

  private send(agent: Agent): Promise<void> {
    const { host, port, id, token } = this.options;
    this.stats.sent += 1;
    // The token is an option number the library has no name for, so the options are a plain record.
    const options: Record<string, Buffer | string> = { [TOKEN_OPTION]: Buffer.from(token), 'Content-Format': 'application/json' };
    return new Promise((resolve) => {
      const req = agent.request({
        hostname: host,
        port,
        method: 'POST',
        pathname: `/things/${encodeURIComponent(id)}/telemetry`,
        confirmable: true,
        options,
      });
      const failed = () => {
        this.stats.failed += 1;
        resolve();
      };
      req.on('response', (res: IncomingMessage) => {
        this.stats.lastCode = res.code;
        if (res.code.startsWith('2.')) this.stats.acknowledged += 1;
        else this.stats.failed += 1;
        resolve();
      });
      req.on('error', failed);
      req.on('timeout', failed);
      req.end(Buffer.from(JSON.stringify(this.read())));
    });
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    const agent = this.agent;
    this.agent = undefined;
    // An unanswered confirmable request would keep retrying for a minute: closing aborts it.
    agent?.close();
    const socket = this.socket;
    this.socket = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}
