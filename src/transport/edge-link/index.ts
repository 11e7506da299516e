/**
 * The edge's end of the edge ↔ cloud link: a WebSocket to `{cloud}/api/v1/edges/{id}/link`,
 * authenticated with the edge token, reconnecting with exponential backoff. Binary frames carry
 * uplink batches; text frames carry JSON control messages. (The cloud's end is an HTTP route.)
 */
import WebSocket from 'ws';
import { OUTBOX_EPOCH_HEADER } from '../../edge/index.js';

export interface EdgeLinkOptions {
  cloudUrl: string;
  edgeId: string;
  token: string;
  /** Identifies the edge's outbox sequence; sent so the cloud can tell a new data directory. */
  outboxEpoch: string;
  /**
   * The CA the cloud's certificate is checked against on an https:// cloud (wss), read at every
   * attempt so a renewed file needs no restart; the system's CAs when absent.
   */
  ca?: () => string;
  backoff?: { minMs: number; maxMs: number };
  onOpen(): void;
  onClose(reason: string): void;
  onMessage(message: unknown): void;
}

export class EdgeLinkClient {
  private socket: WebSocket | undefined;
  private delay: number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly options: EdgeLinkOptions) {
    this.delay = options.backoff?.minMs ?? 500;
  }

  get url(): string {
    const base = new URL(this.options.cloudUrl);
    base.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
    base.pathname = `${base.pathname.replace(/\/$/, '')}/api/v1/edges/${encodeURIComponent(this.options.edgeId)}/link`;
    return base.toString();
  }

  start(): void {
    if (this.stopped) return;
    let ca: string | undefined;
    try {
      ca = this.options.ca?.();
    } catch (error) {
      // An unreadable CA file is a failed attempt like an unreachable cloud: reported, then retried.
      this.options.onClose(`cannot read the cloud's CA: ${(error as Error).message}`);
      this.retry();
      return;
    }
    const socket = new WebSocket(this.url, {
      headers: { authorization: `Bearer ${this.options.token}`, [OUTBOX_EPOCH_HEADER]: this.options.outboxEpoch },
      maxPayload: 64 * 1024 * 1024,
      ...(ca ? { ca } : {}),
    });
    this.socket = socket;
    socket.on('open', () => {
      this.delay = this.options.backoff?.minMs ?? 500;
      this.options.onOpen();
    });
    socket.on('message', (data, isBinary) => {
      if (isBinary) return;
      try {
        this.options.onMessage(JSON.parse(data.toString()));
      } catch {
        // A malformed control frame is ignored; the cloud resends state on reconnect.
      }
    });
    let failure = '';
    socket.on('error', (error) => {
      // 'close' follows and schedules the reconnect; the cause (an untrusted certificate…) goes with it.
      failure = error.message;
    });
    socket.on('close', (code, reason) => {
      this.socket = undefined;
      this.options.onClose([`${code} ${reason.toString()}`.trim(), failure].filter(Boolean).join(': '));
      this.retry();
    });
  }

  private retry(): void {
    if (this.stopped) return;
    const max = this.options.backoff?.maxMs ?? 30_000;
    const wait = Math.round(this.delay * (0.75 + Math.random() * 0.5));
    this.delay = Math.min(max, this.delay * 2);
    this.timer = setTimeout(() => this.start(), wait);
    this.timer.unref();
  }

  get open(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  sendBinary(frame: Buffer): boolean {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(frame, { binary: true });
    return true;
  }

  sendJson(message: unknown): boolean {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  /** Drops the connection now (the link reconnects); for tests of link loss. */
  drop(): void {
    this.socket?.terminate();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.socket?.close(1001, 'edge stopping');
  }
}
