import { hashSecret, newSecret, secretMatches } from '../access/index.js';
import { conflict, invalid, notFound } from '../errors/index.js';
import type { EdgeConfig, EdgeHeartbeat, GapReport, ReconcileResult, SequencedRecord } from './records.js';

/** An edge node as the cloud knows it. */
export interface EdgeRecord {
  id: string;
  name: string;
  createdAt: number;
  /** Highest sequence number applied: the idempotency mark. */
  appliedSeq: number;
  /** The edge outbox's epoch the mark belongs to (absent until the edge first names one). */
  outboxEpoch?: string;
  lastContact: number | null;
  heartbeat: EdgeHeartbeat | null;
  gaps: { reports: number; dropped: number; last: GapReport | null };
  config: { desiredVersion: number; desiredHash: string | null; appliedVersion: number | null; results: ReconcileResult[] };
  /** Records applied per second, measured by the cloud over the last batches. */
  applyRate: number;
}

export interface EdgeRepository {
  insert(edge: EdgeRecord, tokenHash: string): Promise<void>;
  get(id: string): Promise<EdgeRecord | undefined>;
  list(): Promise<EdgeRecord[]>;
  update(edge: EdgeRecord): Promise<void>;
  tokenHash(id: string): Promise<string | undefined>;
  setTokenHash(id: string, hash: string): Promise<void>;
  delete(id: string): Promise<void>;
  /**
   * Applies the records after the edge's applied mark, and moves the mark, in one transaction:
   * a batch is applied entirely or not at all, and a replayed sequence number is skipped.
   */
  applyUplink(edgeId: string, records: SequencedRecord[], deviceUid: (deviceId: string) => number | undefined): Promise<UplinkApplied>;
  /** Gap reports the edge sent, newest first. */
  gaps(edgeId: string, limit: number): Promise<GapReport[]>;
  /**
   * The edge connected naming its outbox epoch. A different epoch than the one recorded means a
   * new outbox (a new data directory): the applied mark restarts at 0. Returns the mark.
   */
  resumeUplink(edgeId: string, outboxEpoch: string): Promise<{ appliedSeq: number; restarted: boolean }>;
}

export interface UplinkApplied {
  appliedUpTo: number;
  /** Records without the fields their kind needs (see malformedRecord): skipped, the mark moves past them. */
  skippedMalformed: number;
  /** Records applied now (replays excluded), by kind. */
  applied: SequencedRecord[];
  skippedUnknownDevice: number;
}

export const EDGE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The cloud's directory of edges: registration, credentials, link status. */
export class EdgeDirectory {
  private readonly updates = new Map<string, Promise<unknown>>();

  constructor(
    private readonly repository: EdgeRepository,
    private readonly now: () => number,
  ) {}

  async register(input: { id: string; name?: string }): Promise<{ edge: EdgeRecord; token: string }> {
    if (!EDGE_ID_PATTERN.test(input.id)) throw invalid(`edge id "${input.id}" is invalid: letters, digits, ".", "_" or "-" (at most 64)`);
    if (await this.repository.get(input.id)) throw conflict(`edge "${input.id}" already exists`);
    const token = newSecret('tle');
    const edge: EdgeRecord = {
      id: input.id,
      name: input.name ?? input.id,
      createdAt: this.now(),
      appliedSeq: 0,
      lastContact: null,
      heartbeat: null,
      gaps: { reports: 0, dropped: 0, last: null },
      config: { desiredVersion: 0, desiredHash: null, appliedVersion: null, results: [] },
      applyRate: 0,
    };
    await this.repository.insert(edge, hashSecret(token));
    return { edge, token };
  }

  /** Issues a new token for an edge; the old one stops working for new connections. */
  async rotateToken(id: string): Promise<{ edge: EdgeRecord; token: string }> {
    const edge = await this.get(id);
    const token = newSecret('tle');
    await this.repository.setTokenHash(id, hashSecret(token));
    return { edge, token };
  }

  async get(id: string): Promise<EdgeRecord> {
    const edge = await this.repository.get(id);
    if (!edge) throw notFound(`no edge "${id}"`);
    return edge;
  }

  find(id: string): Promise<EdgeRecord | undefined> {
    return this.repository.get(id);
  }

  list(): Promise<EdgeRecord[]> {
    return this.repository.list();
  }

  /**
   * Decommissions an edge: its record, token and gap history go. Refused while devices are
   * still attached to it (`served`), since they would be left with no node to connect to.
   */
  async remove(id: string, served: string[]): Promise<void> {
    await this.get(id);
    if (served.length > 0) {
      throw conflict(
        `edge "${id}" still serves ${served.length === 1 ? 'device' : 'devices'} ${served.slice(0, 5).join(', ')}${served.length > 5 ? ', …' : ''}: delete them (DELETE /api/v1/devices/{id}) first`,
        { devices: served },
      );
    }
    await this.repository.delete(id);
  }

  async authenticate(id: string, token: string): Promise<EdgeRecord | undefined> {
    const hash = await this.repository.tokenHash(id);
    if (!hash || !secretMatches(token, hash)) return undefined;
    return this.repository.get(id);
  }

  /**
   * Read-modify-write of one edge's record, one at a time per edge: heartbeats, batch
   * statistics and configuration results arrive concurrently and must not overwrite each other.
   */
  update(id: string, change: (edge: EdgeRecord) => void): Promise<EdgeRecord> {
    const previous = this.updates.get(id) ?? Promise.resolve();
    const run = previous
      .catch(() => undefined)
      .then(async () => {
        const edge = await this.get(id);
        change(edge);
        await this.repository.update(edge);
        return edge;
      });
    this.updates.set(id, run);
    const forget = () => {
      if (this.updates.get(id) === run) this.updates.delete(id);
    };
    run.then(forget, forget);
    return run;
  }

  applyUplink(edgeId: string, records: SequencedRecord[], deviceUid: (deviceId: string) => number | undefined): Promise<UplinkApplied> {
    return this.repository.applyUplink(edgeId, records, deviceUid);
  }

  resumeUplink(id: string, outboxEpoch: string): Promise<{ appliedSeq: number; restarted: boolean }> {
    return this.repository.resumeUplink(id, outboxEpoch);
  }

  /** What the edge lost to its outbox quota: per report, the policy and the samples per device. */
  async gaps(id: string, limit: number): Promise<GapReport[]> {
    await this.get(id);
    return this.repository.gaps(id, limit);
  }

  /** Records a new desired config version when its content changed. */
  async desiredConfig(id: string, config: Omit<EdgeConfig, 'version'>, hash: string): Promise<EdgeConfig> {
    const edge = await this.update(id, (record) => {
      if (record.config.desiredHash === hash) return;
      record.config.desiredVersion++;
      record.config.desiredHash = hash;
    });
    return { ...config, version: edge.config.desiredVersion };
  }
}
