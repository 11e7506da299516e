import type { Codec } from '../../gateway/index.js';
import { readBirth, readMetrics } from './births.js';
import { decodeSparkplugPayload } from './payload.js';

export const SPARKPLUG_CONTENT_TYPE = 'application/x-sparkplug-b';

/**
 * Sparkplug B protobuf as a content type, for a device that posts a Sparkplug payload over HTTP,
 * CoAP or MQTT 5 instead of JSON: its named metrics become a telemetry sample (or a batch, one per
 * timestamp) with property names as a birth would derive them. Aliases mean nothing without a
 * birth, so only metrics that carry their name and datatype count. The host application reads
 * its own topics with the births it has seen and needs no codec.
 */
export function sparkplugCodec(now: () => number): Codec {
  return {
    contentType: SPARKPLUG_CONTENT_TYPE,
    decode(bytes) {
      let payload: ReturnType<typeof decodeSparkplugPayload>;
      try {
        payload = decodeSparkplugPayload(bytes);
      } catch (error) {
        return { reason: 'malformed_payload', message: `payload is not Sparkplug B protobuf: ${(error as Error).message}` };
      }
      // The message read as its own birth: names and datatypes from its metrics.
      const { certificate } = readBirth(
        { group: '', edgeNode: '' },
        { ...payload, metrics: payload.metrics.filter((m) => m.name !== undefined) },
      );
      const { samples } = readMetrics(certificate, payload, now());
      return { body: samples.length === 1 ? samples[0] : samples };
    },
  };
}
