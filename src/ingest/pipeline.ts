import type { EventBus } from '../bus/index.js';
import type { MessageSource } from '../gateway/index.js';
import type { CompiledThingModel } from '../model/index.js';
import type { DeviceRecord } from '../registry/index.js';
import type { DeviceEvent, DeviceEventStore, JsonValue, TelemetrySample, TelemetryStore } from '../telemetry/index.js';
import {
  type DecodeLimits,
  decodeEvent,
  decodeTelemetry,
  decodeTwinReport,
  type PayloadDecoder,
  type PayloadFormat,
  parseBody,
  type Rejection,
} from './decode.js';

/** Which listener or poller a message came through (a metric label): any binding's protocol, or an edge's uplink. */
export type IngestSource = MessageSource;

export type IngestEvents = {
  /** Samples that are durable in the store, in arrival order per device. */
  'telemetry.accepted': { device: DeviceRecord; samples: TelemetrySample[]; source: IngestSource };
  'telemetry.rejected': { device: DeviceRecord; rejections: Rejection[]; source: IngestSource };
  /** A device event that is durable in the store. */
  'event.accepted': { device: DeviceRecord; event: DeviceEvent; source: IngestSource };
  'event.rejected': { device: DeviceRecord; rejection: Rejection; source: IngestSource };
};

/** What the pipeline reports to whoever counts (Prometheus, in the node). */
export interface IngestMetrics {
  messageReceived(source: IngestSource): void;
  messageAccepted(source: IngestSource, samples: number, values: number): void;
  valueRejected(reason: Rejection['reason']): void;
}

export interface IngestOutcome {
  acceptedSamples: number;
  acceptedValues: number;
  rejections: Rejection[];
}

export interface IngestDependencies {
  store: TelemetryStore;
  events: DeviceEventStore;
  bus: EventBus<IngestEvents>;
  metrics: IngestMetrics;
  modelOf(device: DeviceRecord): Promise<CompiledThingModel>;
  now(): number;
  limits: DecodeLimits;
  /** Bytes to a body by content type (the gateway's codecs); JSON alone when not given. */
  decode?: PayloadDecoder;
}

/**
 * The one pipeline every protocol feeds: decode → validate → store (durable) → publish on
 * the bus. Authentication and topic authorization happen in the transport, which hands
 * over an already identified device.
 */
export class IngestPipeline {
  constructor(private readonly deps: IngestDependencies) {}

  private format(contentType: string | undefined): PayloadFormat {
    return { ...(contentType !== undefined ? { contentType } : {}), ...(this.deps.decode ? { decode: this.deps.decode } : {}) };
  }

  /** `contentType`: how bytes are encoded (JSON when not given); a decoded body needs none. */
  async acceptTelemetry(
    device: DeviceRecord,
    payload: Buffer | unknown,
    source: IngestSource,
    contentType?: string,
  ): Promise<IngestOutcome> {
    const { deps } = this;
    deps.metrics.messageReceived(source);
    const model = await deps.modelOf(device);
    const decoded = decodeTelemetry(payload, model, deps.now(), deps.limits, this.format(contentType));
    let acceptedValues = 0;
    const samples: TelemetrySample[] = decoded.samples.map((sample) => {
      for (const _ in sample.values) acceptedValues++;
      return { deviceId: device.id, deviceUid: device.uid, ts: sample.ts, values: sample.values };
    });
    if (samples.length > 0) {
      // Resolves only once committed: the caller's acknowledgement waits on this.
      await deps.store.append(samples);
      deps.metrics.messageAccepted(source, samples.length, acceptedValues);
      deps.bus.emit('telemetry.accepted', { device, samples, source });
    }
    if (decoded.rejections.length > 0) {
      for (const rejection of decoded.rejections) deps.metrics.valueRejected(rejection.reason);
      deps.bus.emit('telemetry.rejected', { device, rejections: decoded.rejections, source });
    }
    return { acceptedSamples: samples.length, acceptedValues, rejections: decoded.rejections };
  }

  /** One event named in the device's model; stored (durably) or refused with a reason. */
  async acceptEvent(
    device: DeviceRecord,
    name: string,
    payload: Buffer | unknown,
    source: IngestSource,
    contentType?: string,
  ): Promise<{ event: DeviceEvent; id: number } | { rejection: Rejection }> {
    const { deps } = this;
    const model = await deps.modelOf(device);
    const decoded = decodeEvent(name, payload, model, deps.now(), deps.limits, this.format(contentType));
    if ('rejection' in decoded) {
      deps.metrics.valueRejected(decoded.rejection.reason);
      deps.bus.emit('event.rejected', { device, rejection: decoded.rejection, source });
      return decoded;
    }
    const event: DeviceEvent = { deviceId: device.id, deviceUid: device.uid, ...decoded.event };
    const id = await deps.events.append(event);
    deps.bus.emit('event.accepted', { device, event, source });
    return { event, id };
  }

  /** A twin report's values checked against the device's model (stored by the twin, not here). */
  async checkTwinReport(
    device: DeviceRecord,
    payload: Buffer | unknown,
    contentType?: string,
  ): Promise<{ values: Record<string, JsonValue>; rejections: Rejection[] }> {
    return decodeTwinReport(payload, await this.deps.modelOf(device), this.deps.limits, this.format(contentType));
  }

  /** Any other device message's body (an action result), with the same size limit, codecs and reasons as telemetry. */
  readBody(payload: Buffer | unknown, contentType?: string): { body: unknown } | Rejection {
    return parseBody(payload, this.deps.limits, undefined, this.format(contentType));
  }
}
