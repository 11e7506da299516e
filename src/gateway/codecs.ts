import type { Rejection } from '../ingest/index.js';

/**
 * Content decoding: a device's bytes become a body by the codec registered for their content
 * type, never by a `JSON.parse` buried in a pipeline. JSON is the default, since MQTT 3.1.1 and
 * most devices name no content type; a binding with its own encoding (Sparkplug protobuf, a
 * register map) registers a codec or hands over decoded bodies itself.
 */
export interface Codec {
  /** The media type it decodes (`application/json`), without parameters. */
  readonly contentType: string;
  /** The body, or why the bytes are refused (`malformed_json`…). Never throws. */
  decode(bytes: Buffer): { body: unknown } | Rejection;
}

export const JSON_CONTENT_TYPE = 'application/json';

export const jsonCodec: Codec = {
  contentType: JSON_CONTENT_TYPE,
  decode(bytes) {
    try {
      return { body: JSON.parse(bytes.toString('utf8')) };
    } catch (error) {
      return { reason: 'malformed_json', message: `payload is not JSON: ${(error as Error).message}` };
    }
  },
};

/** `application/json; charset=utf-8` → `application/json`. */
export function mediaType(contentType: string): string {
  return (contentType.split(';')[0] ?? '').trim().toLowerCase();
}

/** The codecs a node knows, by content type; JSON when a payload names none. */
export class CodecRegistry {
  private readonly codecs = new Map<string, Codec>();

  constructor(codecs: Codec[] = [jsonCodec]) {
    for (const codec of codecs) this.register(codec);
  }

  register(codec: Codec): void {
    const type = mediaType(codec.contentType);
    const existing = this.codecs.get(type);
    if (existing && existing !== codec) throw new Error(`a codec for ${type} is already registered`);
    this.codecs.set(type, codec);
  }

  for(contentType: string | undefined): Codec | undefined {
    return this.codecs.get(contentType === undefined ? JSON_CONTENT_TYPE : mediaType(contentType));
  }

  /** Size limits are checked by the caller before: a codec only sees bytes it may read. */
  decode(bytes: Buffer, contentType?: string): { body: unknown } | Rejection {
    const codec = this.for(contentType);
    if (!codec) {
      const known = [...this.codecs.keys()].join(', ');
      return { reason: 'unsupported_content_type', message: `no codec for content type "${contentType}" (this node decodes: ${known})` };
    }
    return codec.decode(bytes);
  }

  contentTypes(): string[] {
    return [...this.codecs.keys()];
  }
}
