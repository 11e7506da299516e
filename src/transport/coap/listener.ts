import { createSocket, type Socket } from 'node:dgram';
import { type AddressInfo, isIPv6 } from 'node:net';
import { type CoapPacket, Server } from 'coap';
import { type BlockOption, blockOf } from './requests.js';

/** A request refused before the binding reads it: answered with `code` and counted under `reason`. */
export interface EarlyRefusal {
  code: string;
  reason: string;
  message: string;
}

/** What the listener asks of the binding before the library sees a datagram. */
export interface ListenerChecks {
  /** Whether a datagram of `bytes` from `address` is read at all (braked addresses and oversized datagrams are not); counts its own refusals. */
  admit(address: string, bytes: number): boolean;
  /** The first block of a block-wise upload: its credentials are checked before any block is kept. */
  authorizeUpload(packet: CoapPacket, rsinfo: AddressInfo): Promise<EarlyRefusal | undefined>;
  /** A datagram that is not CoAP (or that the library could not handle): dropped and counted. */
  malformed(address: string, why: string): void;
}

export interface ListenerLimits {
  /** The largest reassembled upload. */
  maxPayloadBytes: number;
  /** All block-wise uploads in progress together hold at most this many bytes. */
  uploadBudgetBytes: number;
  /** How long an upload may pause between blocks before it is forgotten. */
  uploadIdleMs: number;
  /** How long the library waits for a handler before sending an empty ACK (a separate response follows). */
  piggybackReplyMs: number;
}

const RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;

interface Upload {
  bytes: number;
  touched: number;
}

function optionValue(packet: CoapPacket, name: string): Buffer | undefined {
  const found = packet.options?.find((option) => option.name === name);
  return found && Buffer.isBuffer(found.value) ? found.value : undefined;
}

function withoutOption(packet: CoapPacket, name: string): void {
  packet.options = packet.options?.filter((option) => option.name !== name);
}

/**
 * The `coap` library's server with the checks it lacks in front of it: braked addresses and
 * oversized datagrams are dropped before parsing, datagrams that are not CoAP are counted, and a
 * block-wise upload (RFC 7959 Block1) is admitted only after its first block's credentials pass
 * and only up to the payload limit and a shared byte budget (the library would otherwise keep
 * any stranger's blocks for its exchange lifetime). The library's hooks used here
 * (`handleRequest`, `_handle`, `_sendError`) are declared in its typings; `coap` is pinned to 1.x.
 */
export class CoapListener extends Server {
  private readonly uploads = new Map<string, Upload>();
  private uploadBytes = 0;
  /** Requests refused before the binding reads them, by their sender info (one object per datagram). */
  private readonly refusals = new WeakMap<AddressInfo, EarlyRefusal>();
  private socket: Socket | undefined;

  constructor(
    private readonly checks: ListenerChecks,
    private readonly limits: ListenerLimits,
    private readonly now: () => number,
  ) {
    super({ piggybackReplyMs: limits.piggybackReplyMs });
  }

  /** Binds a UDP socket (the node's own, so a taken port fails instead of being shared) and starts serving. */
  async open(port: number, host: string | undefined): Promise<number> {
    const socket = createSocket({ type: host !== undefined && isIPv6(host) ? 'udp6' : 'udp4', reuseAddr: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    try {
      // Bursts from many devices at once (or a flood) must not overflow the default buffer.
      socket.setRecvBufferSize(RECEIVE_BUFFER_BYTES);
    } catch {
      // Capped by the system (net.core.rmem_max): the default stays.
    }
    this.socket = socket;
    await new Promise<void>((resolve, reject) => {
      this.listen(socket, (error) => (error ? reject(error) : resolve()));
    });
    return socket.address().port;
  }

  /** The refusal decided for a request before the binding saw it, if any. */
  refusalFor(rsinfo: AddressInfo): EarlyRefusal | undefined {
    return this.refusals.get(rsinfo);
  }

  override handleRequest(): (msg: Buffer, rsinfo: AddressInfo) => void {
    const handle = super.handleRequest();
    return (msg, rsinfo) => {
      if (this.checks.admit(rsinfo.address, msg.length)) handle(msg, rsinfo);
    };
  }

  override _handle(packet: CoapPacket, rsinfo: AddressInfo): void {
    const raw = optionValue(packet, 'Block1');
    // Only requests carry an upload; the library drops everything else itself.
    if (raw === undefined || packet.code === undefined || !packet.code.startsWith('0.') || packet.ack || packet.reset) {
      super._handle(packet, rsinfo);
      return;
    }
    const block = blockOf(raw);
    if (!block) {
      this.refuse(packet, rsinfo, {
        code: '4.02',
        reason: 'malformed_block',
        message: 'the Block1 option is not a valid block (RFC 7959 §2.2)',
      });
      return;
    }
    const key = `${rsinfo.address}:${rsinfo.port}/${packet.token?.toString('hex') ?? ''}`;
    if (block.num === 0) {
      this.checks.authorizeUpload(packet, rsinfo).then(
        (refusal) => {
          if (refusal) this.refuse(packet, rsinfo, refusal);
          else this.continueUpload(key, block, packet, rsinfo);
        },
        (error: Error) =>
          this.refuse(packet, rsinfo, {
            code: '5.03',
            reason: 'unavailable',
            message: `credentials could not be checked: ${error.message}`,
          }),
      );
      return;
    }
    this.continueUpload(key, block, packet, rsinfo);
  }

  private continueUpload(key: string, block: BlockOption, packet: CoapPacket, rsinfo: AddressInfo): void {
    const now = this.now();
    this.forgetIdleUploads(now);
    const upload = this.uploads.get(key) ?? (block.num === 0 ? { bytes: 0, touched: now } : undefined);
    if (!upload) {
      this.refuse(packet, rsinfo, {
        code: '4.08',
        reason: 'upload_incomplete',
        message: 'no block-wise upload in progress for this token: start again with block 0',
      });
      return;
    }
    const length = packet.payload?.length ?? 0;
    const end = block.num * block.size + length;
    if (end > this.limits.maxPayloadBytes) {
      this.endUpload(key);
      this.refuse(packet, rsinfo, {
        code: '4.13',
        reason: 'payload_too_large',
        message: `the upload reaches ${end} bytes; the limit is ${this.limits.maxPayloadBytes}`,
      });
      return;
    }
    const grown = Math.max(0, end - upload.bytes);
    if (this.uploadBytes + grown > this.limits.uploadBudgetBytes) {
      this.endUpload(key);
      this.refuse(packet, rsinfo, {
        code: '5.03',
        reason: 'upload_budget',
        message: 'too many block-wise uploads in progress: retry later',
      });
      return;
    }
    upload.bytes += grown;
    upload.touched = now;
    this.uploadBytes += grown;
    this.uploads.set(key, upload);
    if (!block.more) this.endUpload(key);
    this.handleSafely(packet, rsinfo);
  }

  /** The request reaches the binding without its upload; the binding answers with the refusal. */
  private refuse(packet: CoapPacket, rsinfo: AddressInfo, refusal: EarlyRefusal): void {
    this.refusals.set(rsinfo, refusal);
    withoutOption(packet, 'Block1');
    packet.payload = Buffer.alloc(0);
    try {
      super._handle(packet, rsinfo);
    } catch (error) {
      this.checks.malformed(rsinfo.address, (error as Error).message);
    }
  }

  /**
   * Past an await nothing catches what the library throws (it throws when an upload's blocks
   * do not join up): the sender is told to start the upload again.
   */
  private handleSafely(packet: CoapPacket, rsinfo: AddressInfo): void {
    try {
      super._handle(packet, rsinfo);
    } catch (error) {
      this.refuse(packet, rsinfo, {
        code: '4.08',
        reason: 'upload_incomplete',
        message: `the upload's blocks do not join up (${(error as Error).message}): send it again from block 0`,
      });
    }
  }

  private endUpload(key: string): void {
    const upload = this.uploads.get(key);
    if (!upload) return;
    this.uploadBytes -= upload.bytes;
    this.uploads.delete(key);
  }

  private forgetIdleUploads(now: number): void {
    for (const [key, upload] of this.uploads) {
      if (now - upload.touched > this.limits.uploadIdleMs) this.endUpload(key);
    }
  }

  /**
   * The library answers its own failures here, without the sender's address (its send goes to the
   * sender's port on localhost): a datagram it could not parse, or a request it refused itself
   * (Observe on a POST). Such datagrams are counted and dropped; an answer to a garbled or spoofed
   * sender helps nobody.
   */
  override _sendError(payload: Buffer, rsinfo: AddressInfo): void {
    this.checks.malformed(rsinfo.address, payload.toString('utf8'));
  }

  async shut(): Promise<void> {
    await new Promise<void>((resolve) => this.close(() => resolve()));
    this.uploads.clear();
    this.uploadBytes = 0;
    const socket = this.socket;
    this.socket = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}
