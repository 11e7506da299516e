import type { BindingHealth, DeviceBinding, DeviceInbox, DeviceMessage, DownlinkRequest, MessageOutcomes } from '../../gateway/index.js';
import { type DeviceRecord, type FleetDeviceRef, fleetKey, PRESENCE_GRACE } from '../../registry/index.js';

/** A request whose every value was refused (telemetry with nothing stored, a refused event). */
function nothingTaken(outcome: unknown): boolean {
  if (typeof outcome !== 'object' || outcome === null) return false;
  if ('rejection' in outcome) return true;
  return 'acceptedSamples' in outcome && outcome.acceptedSamples === 0;
}

/**
 * HTTP as a device binding. Devices push (POST /devices/{id}/telemetry, events…) and read their
 * twin with GET, so nothing is pushed to them: desired state and error notices wait to be read,
 * and actions stay queued (an HTTP device cannot be reached between its requests).
 */
export class HttpBinding implements DeviceBinding {
  readonly protocol = 'http' as const;
  // By tenant and id (fleetKey): one binding serves every tenant, and ids repeat across tenants.
  private readonly lastGood = new Map<string, number>();
  private readonly refusedCounts = new Map<string, number>();

  constructor(
    private readonly inbox: DeviceInbox,
    private readonly now: () => number,
  ) {}

  /** A device's request, handed to the gateway; the outcome is the response. */
  async accept<M extends DeviceMessage>(device: DeviceRecord, message: M): Promise<MessageOutcomes[M['kind']]> {
    const outcome = await this.inbox.accept(device, message, 'http');
    const key = fleetKey(device);
    if (nothingTaken(outcome)) this.refusedCounts.set(key, (this.refusedCounts.get(key) ?? 0) + 1);
    else this.lastGood.set(key, this.now());
    return outcome;
  }

  async start(): Promise<void> {}

  async stop(): Promise<void> {}

  /** The device is gone: nothing kept for it. */
  async detach(device: FleetDeviceRef): Promise<void> {
    this.lastGood.delete(fleetKey(device));
    this.refusedCounts.delete(fleetKey(device));
  }

  reachable(_device: DeviceRecord, _request: DownlinkRequest): boolean {
    return false;
  }

  async deliver(device: DeviceRecord, request: DownlinkRequest): Promise<void> {
    // Desired state is read with GET /devices/{id}/twin and refusals with GET …/errors.
    if (request.kind !== 'invoke') return;
    throw new Error(`device ${device.id} speaks HTTP and cannot be sent action ${request.action}: it stays queued`);
  }

  health(device: DeviceRecord): BindingHealth {
    const last = this.lastGood.get(fleetKey(device)) ?? null;
    // Pushing devices have no session: one heard within its reporting interval counts as connected.
    const recent = last !== null && this.now() - last <= device.network.reportIntervalMs * (1 + PRESENCE_GRACE);
    return {
      protocol: 'http',
      state: recent ? 'connected' : 'idle',
      lastGoodReadTs: last,
      errors: this.refusedCounts.get(fleetKey(device)) ?? 0,
      latencyMs: null,
    };
  }
}
