/**
 * The audit trail: every change and every sensitive read, who did it, from where, and how it
 * ended. Recording never waits for the disk: entries are buffered and written in batches, the
 * buffer is bounded and what overflows it is counted (a flood of requests must not take the
 * node's memory, nor slow the requests down).
 */
import { invalid } from '../errors/index.js';

/** How the request ended: done, refused (access, validation, limits), or failed on the node's side. */
export type AuditOutcome = 'succeeded' | 'refused' | 'failed';
export const AUDIT_OUTCOMES: readonly AuditOutcome[] = ['succeeded', 'refused', 'failed'];

/** The tenant of records about the platform itself (tenants created, …): no tenant id can look like it. */
export const PLATFORM_SCOPE = '_platform';

export interface AuditEntry {
  tenant: string;
  /** Epoch milliseconds. */
  at: number;
  /** `user:<username>`, `key:<name>`, `admin`, or a device or edge. */
  actor: string;
  /** What was done, e.g. `devices.create`, `decisions.approve`, `session.sign-in`. */
  action: string;
  /** What it was done to, e.g. `devices/pump-0001`. */
  resource: string;
  /** The address the request came from. */
  address: string;
  /** Derived from `status` when left out: below 400 succeeded, 4xx refused, else failed. */
  outcome?: AuditOutcome;
  /** The protocol's status (HTTP 201, 403…), when there is one. */
  status?: number;
  /** A little more: which fields changed, why it was refused. Kept under MAX_DETAIL_BYTES. */
  detail?: unknown;
}

export interface StoredAuditEntry extends AuditEntry {
  id: number;
  outcome: AuditOutcome;
}

export interface AuditFilter {
  tenant: string;
  /** Inclusive. */
  from?: number;
  /** Exclusive. */
  to?: number;
  actor?: string;
  action?: string;
}

export interface AuditQuery extends AuditFilter {
  /** 1 to MAX_AUDIT_PAGE. */
  limit: number;
  /** The `next` cursor of the previous page. */
  after?: string;
}

export interface AuditPage {
  /** Newest first. */
  entries: StoredAuditEntry[];
  /** Present when there may be more: pass as `after`. */
  next?: string;
}

export interface AuditRepository {
  append(entries: AuditEntry[]): Promise<void>;
  /** Entries matching the filter with an id below `beforeId` (all, when undefined), newest first. */
  query(filter: AuditFilter, beforeId: number | undefined, limit: number): Promise<StoredAuditEntry[]>;
  /** Deletes up to `limit` entries older than `before`; returns how many. */
  pruneChunk(before: number, limit: number): Promise<number>;
}

export const MAX_AUDIT_PAGE = 1000;
export const MAX_DETAIL_BYTES = 4096;
const FIELD_LIMITS = { actor: 200, action: 100, resource: 500, address: 100 } as const;

export interface AuditTrailOptions {
  /** Entries held at most while waiting to be written; beyond it they are dropped and counted. */
  maxBuffered: number;
  /** The same bound in bytes (estimated from the fields): large details cannot fill memory either. */
  maxBufferedBytes: number;
  /** Entries per write. */
  batchSize: number;
  /** How long an entry may wait for a batch to fill. */
  flushDelayMs: number;
}

export const DEFAULT_AUDIT_OPTIONS: AuditTrailOptions = {
  maxBuffered: 10_000,
  maxBufferedBytes: 8 * 1024 * 1024,
  batchSize: 500,
  flushDelayMs: 250,
};

export interface AuditStats {
  buffered: number;
  written: number;
  /** Entries lost because the buffer was full. */
  dropped: number;
  writeFailures: number;
}

function cut(value: unknown, limit: number): string {
  const text = typeof value === 'string' ? value : String(value ?? '');
  return text.length > limit ? text.slice(0, limit) : text;
}

function outcomeOf(entry: AuditEntry): AuditOutcome {
  if (entry.outcome !== undefined && AUDIT_OUTCOMES.includes(entry.outcome)) return entry.outcome;
  if (typeof entry.status !== 'number') return 'failed';
  return entry.status < 400 ? 'succeeded' : entry.status < 500 ? 'refused' : 'failed';
}

/** Roughly what an entry takes in memory (UTF-16 strings, detail as its JSON). */
function sizeOf(entry: AuditEntry): number {
  const detail = entry.detail === undefined ? 0 : JSON.stringify(entry.detail).length;
  return 2 * (entry.tenant.length + entry.actor.length + entry.action.length + entry.resource.length + entry.address.length + detail) + 64;
}

/** The entry as stored: fields cut to their limits, detail that cannot be stored replaced by a note. */
function storable(entry: AuditEntry): AuditEntry & { outcome: AuditOutcome } {
  const clean: AuditEntry & { outcome: AuditOutcome } = {
    tenant: cut(entry.tenant, 64),
    at: Number.isSafeInteger(entry.at) ? entry.at : Date.now(),
    actor: cut(entry.actor, FIELD_LIMITS.actor),
    action: cut(entry.action, FIELD_LIMITS.action),
    resource: cut(entry.resource, FIELD_LIMITS.resource),
    address: cut(entry.address, FIELD_LIMITS.address),
    outcome: outcomeOf(entry),
  };
  if (typeof entry.status === 'number' && Number.isSafeInteger(entry.status)) clean.status = entry.status;
  if (entry.detail !== undefined) {
    let text: string | undefined;
    try {
      text = JSON.stringify(entry.detail);
    } catch {
      text = undefined;
    }
    if (text === undefined) clean.detail = { unstorable: true };
    else if (Buffer.byteLength(text) > MAX_DETAIL_BYTES) clean.detail = { truncated: true, bytes: Buffer.byteLength(text) };
    else clean.detail = JSON.parse(text);
  }
  return clean;
}

function cursorOf(after: string | undefined): number | undefined {
  if (after === undefined) return undefined;
  if (typeof after !== 'string' || !/^[1-9][0-9]{0,14}$/.test(after))
    throw invalid('the cursor is invalid: pass the `next` of the previous page');
  return Number(after);
}

function checkFilter(filter: AuditFilter): void {
  if (typeof filter.tenant !== 'string' || filter.tenant === '') throw invalid('an audit query names its tenant');
  for (const field of ['from', 'to'] as const) {
    const value = filter[field];
    if (value !== undefined && (typeof value !== 'number' || !Number.isSafeInteger(value)))
      throw invalid(`${field} must be epoch milliseconds`);
  }
  for (const field of ['actor', 'action'] as const) {
    const value = filter[field];
    if (value !== undefined && (typeof value !== 'string' || value.length > FIELD_LIMITS[field]))
      throw invalid(`${field} is too long or not a string`);
  }
}

export const AUDIT_CSV_COLUMNS = ['id', 'at', 'tenant', 'actor', 'action', 'resource', 'address', 'outcome', 'status', 'detail'] as const;

/**
 * One CSV field (RFC 4180 quoting). A field a spreadsheet would run as a formula (=, +, -, @,
 * tab, CR at the start) gets a leading apostrophe: actors and resources come from callers.
 */
export function csvField(value: string): string {
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

export function auditCsvLine(entry: StoredAuditEntry): string {
  const fields = [
    String(entry.id),
    new Date(entry.at).toISOString(),
    entry.tenant,
    entry.actor,
    entry.action,
    entry.resource,
    entry.address,
    entry.outcome,
    entry.status === undefined ? '' : String(entry.status),
    entry.detail === undefined ? '' : JSON.stringify(entry.detail),
  ];
  return `${fields.map(csvField).join(',')}\r\n`;
}

export class AuditTrail {
  private readonly options: AuditTrailOptions;
  private buffer: AuditEntry[] = [];
  private bufferedBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerDelayMs = 0;
  private writing: Promise<void> | undefined;
  private closed = false;
  private readonly counts = { written: 0, dropped: 0, writeFailures: 0 };

  constructor(
    private readonly repository: AuditRepository,
    options: Partial<AuditTrailOptions> = {},
    /** Told when a batch could not be written (the entries stay buffered for the next try). */
    private readonly onWriteError: (error: unknown) => void = () => {},
  ) {
    this.options = { ...DEFAULT_AUDIT_OPTIONS, ...options };
  }

  /** Queues an entry; returns at once and never throws. False when the buffer was full and it was dropped. */
  record(entry: AuditEntry): boolean {
    if (this.buffer.length >= this.options.maxBuffered) {
      this.counts.dropped++;
      return false;
    }
    const clean = storable(entry);
    const size = sizeOf(clean);
    if (this.bufferedBytes + size > this.options.maxBufferedBytes) {
      this.counts.dropped++;
      return false;
    }
    this.buffer.push(clean);
    this.bufferedBytes += size;
    if (!this.closed) this.schedule(this.buffer.length >= this.options.batchSize ? 0 : this.options.flushDelayMs);
    return true;
  }

  /** Writes everything recorded so far; resolves when it is on disk (or the write failed). */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.writing) await this.writing;
    if (this.buffer.length === 0) return;
    this.writing = this.writeBuffered().finally(() => {
      this.writing = undefined;
      // Entries that came in at the very end, or a batch that failed: the next try is scheduled.
      if (this.buffer.length > 0 && !this.closed) this.schedule(this.options.flushDelayMs);
    });
    await this.writing;
  }

  /** A page of entries, newest first. What was recorded before the call is included. */
  async query(query: AuditQuery): Promise<AuditPage> {
    checkFilter(query);
    if (!Number.isSafeInteger(query.limit) || query.limit < 1 || query.limit > MAX_AUDIT_PAGE) {
      throw invalid(`limit must be a whole number from 1 to ${MAX_AUDIT_PAGE}`);
    }
    const beforeId = cursorOf(query.after);
    await this.flush();
    const entries = await this.repository.query(query, beforeId, query.limit + 1);
    const page: AuditPage = { entries: entries.slice(0, query.limit) };
    const last = page.entries[page.entries.length - 1];
    if (entries.length > query.limit && last) page.next = String(last.id);
    return page;
  }

  /** Every matching entry, newest first, a page at a time: a large export never sits in memory whole. */
  async *entries(filter: AuditFilter): AsyncGenerator<StoredAuditEntry> {
    checkFilter(filter);
    await this.flush();
    let beforeId: number | undefined;
    for (;;) {
      const page = await this.repository.query(filter, beforeId, MAX_AUDIT_PAGE);
      for (const entry of page) yield entry;
      const last = page[page.length - 1];
      if (!last || page.length < MAX_AUDIT_PAGE) return;
      beforeId = last.id;
    }
  }

  /** NDJSON: one entry per line. */
  async *exportNdjson(filter: AuditFilter): AsyncGenerator<string> {
    for await (const entry of this.entries(filter)) yield `${JSON.stringify(entry)}\n`;
  }

  /** CSV with a header line (AUDIT_CSV_COLUMNS); `at` as ISO 8601, `detail` as JSON. */
  async *exportCsv(filter: AuditFilter): AsyncGenerator<string> {
    yield `${AUDIT_CSV_COLUMNS.join(',')}\r\n`;
    for await (const entry of this.entries(filter)) yield auditCsvLine(entry);
  }

  /** Retention: deletes entries older than `before`, in chunks, yielding between them. */
  async prune(before: number): Promise<number> {
    await this.flush();
    let removed = 0;
    for (;;) {
      const changes = await this.repository.pruneChunk(before, 5000);
      removed += changes;
      if (changes < 5000) return removed;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  stats(): AuditStats {
    return { buffered: this.buffer.length, ...this.counts };
  }

  /** Writes what is buffered and stops scheduling; entries recorded later wait for flush(). */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  private schedule(delayMs: number): void {
    // A write in progress takes what arrives meanwhile (it loops until the buffer is empty).
    if (this.writing) return;
    if (this.timer) {
      // A full batch does not wait out the delay a first entry started.
      if (delayMs > 0 || this.timerDelayMs === 0) return;
      clearTimeout(this.timer);
    }
    this.timerDelayMs = delayMs;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, delayMs);
    this.timer.unref();
  }

  private async writeBuffered(): Promise<void> {
    while (this.buffer.length > 0) {
      const batch = this.buffer.splice(0, this.options.batchSize);
      try {
        await this.repository.append(batch);
        this.counts.written += batch.length;
        for (const written of batch) this.bufferedBytes -= sizeOf(written);
      } catch (error) {
        this.counts.writeFailures++;
        // Back to the front, as much as the bound allows: the oldest entries are kept first.
        const room = Math.max(0, this.options.maxBuffered - this.buffer.length);
        this.counts.dropped += Math.max(0, batch.length - room);
        for (const lost of batch.slice(room)) this.bufferedBytes -= sizeOf(lost);
        this.buffer.unshift(...batch.slice(0, room));
        this.onWriteError(error);
        return;
      }
      if (this.buffer.length > 0) await new Promise((resolve) => setImmediate(resolve));
    }
  }
}
