/**
 * A size limit for MQTT packets, enforced from their fixed headers. Aedes (through mqtt-packet)
 * buffers a packet of any announced size, up to 256 MB, before it looks at it; the guard sits
 * between the socket and the broker, reads each packet's type and announced length as the bytes
 * go by, and closes the connection as soon as a packet announces more than its type may carry.
 */
import { Duplex, pipeline, Transform } from 'node:stream';

/** MQTT control packet types (the high nibble of the first byte). */
export const PacketType = { connect: 1, publish: 3 } as const;

/** The packet a chunk boundary left the scanner in. */
export type HeaderScan = { at: 'type' } | { at: 'length'; type: number; length: number; bytes: number } | { at: 'body'; left: number };

export const SCAN_START: HeaderScan = { at: 'type' };

/** A packet's fixed header: its type and the length of everything after the header. */
export interface FixedHeader {
  type: number;
  /** Infinity for a length that does not fit MQTT's four-byte varint (a malformed packet). */
  remainingLength: number;
}

/** The remaining length is a varint of at most four bytes (MQTT 3.1.1 §2.2.3). */
const MAX_LENGTH_BYTES = 4;

/**
 * Reads the fixed headers that start in `chunk`, skipping packet bodies without looking at
 * them. Pure: `scan` carries a header or body split across chunks over to the next call.
 */
export function scanFixedHeaders(scan: HeaderScan, chunk: Uint8Array): { scan: HeaderScan; headers: FixedHeader[] } {
  const headers: FixedHeader[] = [];
  let state = scan;
  let i = 0;
  while (i < chunk.length) {
    if (state.at === 'type') {
      state = { at: 'length', type: (chunk[i] as number) >> 4, length: 0, bytes: 0 };
      i++;
    } else if (state.at === 'length') {
      const byte = chunk[i] as number;
      i++;
      const length = state.length + (byte & 0x7f) * 128 ** state.bytes;
      const bytes = state.bytes + 1;
      if (byte & 0x80) {
        if (bytes < MAX_LENGTH_BYTES) {
          state = { at: 'length', type: state.type, length, bytes };
          continue;
        }
        headers.push({ type: state.type, remainingLength: Number.POSITIVE_INFINITY });
        // Nothing after a malformed length can be framed: the rest of the stream is one endless body.
        state = { at: 'body', left: Number.POSITIVE_INFINITY };
        continue;
      }
      headers.push({ type: state.type, remainingLength: length });
      state = length > 0 ? { at: 'body', left: length } : SCAN_START;
    } else {
      const skipped = Math.min(state.left, chunk.length - i);
      i += skipped;
      state = state.left === skipped ? SCAN_START : { at: 'body', left: state.left - skipped };
    }
  }
  return { scan: state, headers };
}

/** The largest remaining length a client's packet may announce, by type. */
export interface PacketSizeLimits {
  /** A CONNECT carries a client id, credentials and perhaps a will: small. */
  connect: number;
  publish: number;
  /** SUBSCRIBE, UNSUBSCRIBE, acknowledgements, PINGREQ, DISCONNECT. */
  other: number;
}

export function exceedsLimit(header: FixedHeader, limits: PacketSizeLimits): boolean {
  const limit = header.type === PacketType.connect ? limits.connect : header.type === PacketType.publish ? limits.publish : limits.other;
  return header.remainingLength > limit;
}

export class PacketTooLargeError extends Error {
  constructor(readonly header: FixedHeader) {
    super(`packet of type ${header.type} announces ${header.remainingLength} bytes, over the limit`);
  }
}

/**
 * The connection the broker reads from: the socket's bytes pass through the guard, its writes
 * go straight to the socket. An oversized packet destroys both before its body is read, and
 * `refused` hears of it once.
 */
export function guardPacketSizes(socket: Duplex, limits: PacketSizeLimits, refused: (header: FixedHeader) => void): Duplex {
  let scan = SCAN_START;
  const guard = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      const result = scanFixedHeaders(scan, chunk);
      scan = result.scan;
      const oversized = result.headers.find((header) => exceedsLimit(header, limits));
      if (oversized) {
        refused(oversized);
        callback(new PacketTooLargeError(oversized));
        return;
      }
      callback(null, chunk);
    },
  });
  // The broker hears of errors (and the end of the socket) through the composed stream.
  pipeline(socket, guard, () => undefined);
  return Duplex.from({ readable: guard, writable: socket });
}
