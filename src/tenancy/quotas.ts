import { DomainError } from '../errors/index.js';
import { checkQuota, QUOTA_REASONS, type TenantQuotas } from './tenants.js';

export type QuotaName = keyof TenantQuotas;
export type QuotaReason = (typeof QUOTA_REASONS)[QuotaName];

/** Counts every quota refusal by tenant and quota (`thingloop_quota_refusals_total`). */
export interface QuotaRefusals {
  quotaRefused(tenant: string, quota: QuotaName): void;
}

/** Whether an error is a tenant's quota refusing (a listener answers it as a refusal, not a failure). */
export function isQuotaRefusal(error: unknown): error is DomainError & { details: { reason: QuotaReason } } {
  if (!(error instanceof DomainError) || error.kind !== 'too_many_requests') return false;
  const reason: unknown = typeof error.details === 'object' && error.details !== null ? Reflect.get(error.details, 'reason') : undefined;
  return typeof reason === 'string' && (Object.values(QUOTA_REASONS) as string[]).includes(reason);
}

/** How stale the database size may be: reading it is cheap, but not free on every message. */
export const STORED_BYTES_REFRESH_MS = 5_000;

export interface TenantQuotaGuardOptions {
  tenant: string;
  quotas?: TenantQuotas;
  /** The tenant's database size in bytes, read when the cached figure is older than `storedBytesRefreshMs`. */
  storedBytes(): number;
  refusals: QuotaRefusals;
  now(): number;
  storedBytesRefreshMs?: number;
}

/**
 * Keeps a tenant inside its quotas: devices and agents are counted when one is created, device
 * messages (telemetry, events, reports) take a token from the tenant's bucket (refilled at
 * `messagesPerSecond`, holding one second's worth, at least one message), and new telemetry and
 * events are refused while the tenant's database is larger than `storedBytes`. Each tenant has
 * its own guard, so one tenant over its quota never slows another. Quotas change at runtime
 * (`apply`); every refusal is counted.
 */
export class TenantQuotaGuard {
  private quotas: TenantQuotas;
  private tokens = 0;
  private refilledAt = 0;
  private size: { bytes: number; readAt: number } | undefined;
  private readonly refreshMs: number;

  constructor(private readonly options: TenantQuotaGuardOptions) {
    this.quotas = {};
    this.refreshMs = options.storedBytesRefreshMs ?? STORED_BYTES_REFRESH_MS;
    this.apply(options.quotas ?? {});
  }

  /** The tenant's quotas changed: they apply from the next request on, with a full bucket at the new rate. */
  apply(quotas: TenantQuotas): void {
    this.quotas = { ...quotas };
    this.tokens = this.capacity();
    this.refilledAt = this.options.now();
  }

  current(): TenantQuotas {
    return { ...this.quotas };
  }

  /** Refuses registering `adding` devices past the quota; `count` (the devices now) is only read when there is one. */
  async admitDevices(count: () => Promise<number>, adding = 1): Promise<void> {
    if (this.quotas.devices === undefined) return;
    this.check('devices', await count(), adding);
  }

  /** Refuses creating an agent past the quota (`current`: the agents now). */
  admitAgents(current: number, adding = 1): void {
    this.check('agents', current, adding);
  }

  /**
   * A device message: refused over the tenant's message rate (`retryAfterSeconds` says when a
   * token is back) and, for data that grows the store (telemetry, events), while the database is
   * over its size quota. Twin reports replace values, so only the rate applies to them.
   */
  admitMessage(grows: boolean): void {
    this.takeToken();
    if (grows && this.quotas.storedBytes !== undefined) this.check('storedBytes', this.storedBytes(), 0);
  }

  /** The tenant's database size as last read (at most `storedBytesRefreshMs` old). */
  storedBytes(): number {
    const at = this.options.now();
    if (!this.size || at - this.size.readAt >= this.refreshMs) {
      try {
        this.size = { bytes: this.options.storedBytes(), readAt: at };
      } catch {
        // A closing database: keep the last figure rather than fail the message on it.
        this.size = { bytes: this.size?.bytes ?? 0, readAt: at };
      }
    }
    return this.size.bytes;
  }

  private capacity(): number {
    const rate = this.quotas.messagesPerSecond;
    // A rate of 0 takes nothing; a slow one (below 1 per second) still lets one message through now and then.
    return rate === undefined || rate === 0 ? 0 : Math.max(1, rate);
  }

  private takeToken(): void {
    const rate = this.quotas.messagesPerSecond;
    if (rate === undefined) return;
    const at = this.options.now();
    this.tokens = Math.min(this.capacity(), this.tokens + (Math.max(0, at - this.refilledAt) / 1000) * rate);
    this.refilledAt = at;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return;
    }
    this.options.refusals.quotaRefused(this.options.tenant, 'messagesPerSecond');
    const retryAfterSeconds = rate > 0 ? Math.max(1, Math.ceil((1 - this.tokens) / rate)) : 3600;
    throw new DomainError(
      'too_many_requests',
      `tenant "${this.options.tenant}" is over its messagesPerSecond quota (${rate} per second): message dropped, retry in ${retryAfterSeconds} s`,
      { reason: QUOTA_REASONS.messagesPerSecond, limit: rate, retryAfterSeconds },
    );
  }

  private check(quota: QuotaName, current: number, adding: number): void {
    try {
      checkQuota({ id: this.options.tenant, quotas: this.quotas }, quota, current, adding);
    } catch (error) {
      this.options.refusals.quotaRefused(this.options.tenant, quota);
      throw error;
    }
  }
}
