/**
 * Access: who may do what. Secrets (device tokens, admin keys) are high-entropy random
 * strings, shown once and stored only as SHA-256 hashes; a slow password hash buys
 * nothing against 256 random bits and would cost every MQTT connect. Roles and
 * multi-tenancy arrive here later.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A new secret: 32 random bytes, base64url, with a prefix that says what it is. */
export function newSecret(prefix: string): string {
  return `${prefix}_${randomBytes(32).toString('base64url')}`;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Compares a presented secret to a stored hash in constant time. */
export function secretMatches(secret: string, storedHash: string): boolean {
  const presented = Buffer.from(hashSecret(secret), 'hex');
  const stored = Buffer.from(storedHash, 'hex');
  return presented.length === stored.length && timingSafeEqual(presented, stored);
}

/** Storage port for node-wide settings (the admin key hash, schema facts). */
export interface SettingsRepository {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
}

const ADMIN_KEY_SETTING = 'admin_key_sha256';

export interface AdminKeySetup {
  /** Set only when a key was generated now: the one time it is ever shown. */
  generatedKey?: string;
  source: 'configured' | 'stored' | 'generated';
}

/**
 * The admin credential. A configured key (THINGLOOP_ADMIN_KEY) wins and replaces the stored
 * hash; otherwise the stored hash is kept; on first start a key is generated.
 */
export class AdminAccess {
  private hash: string | undefined;

  constructor(private readonly settings: SettingsRepository) {}

  async setUp(configuredKey: string | undefined): Promise<AdminKeySetup> {
    if (configuredKey) {
      // Configuration refuses a short key already; this also holds for nodes started in code.
      if (configuredKey.length < MIN_ADMIN_KEY_LENGTH) {
        throw new Error(`the admin key is too short (${configuredKey.length} characters; at least ${MIN_ADMIN_KEY_LENGTH})`);
      }
      this.hash = hashSecret(configuredKey);
      await this.settings.set(ADMIN_KEY_SETTING, this.hash);
      return { source: 'configured' };
    }
    this.hash = await this.settings.get(ADMIN_KEY_SETTING);
    if (this.hash) return { source: 'stored' };
    const generatedKey = newSecret('tla');
    this.hash = hashSecret(generatedKey);
    await this.settings.set(ADMIN_KEY_SETTING, this.hash);
    return { source: 'generated', generatedKey };
  }

  isAdminKey(secret: string): boolean {
    return this.hash !== undefined && secretMatches(secret, this.hash);
  }
}

export interface GuessingBrakeOptions {
  /** Failures an address may make at once before it is braked. */
  burst: number;
  /** Failures per second an address earns back. */
  refillPerSecond: number;
  now(): number;
  /** Addresses tracked at most; beyond it the oldest entries are forgotten (memory stays bounded). */
  maxTracked?: number;
}

/**
 * A brake on credential guessing: a token bucket of failed logins per source address. Only
 * failures spend tokens, so correct credentials are never slowed while the bucket has any; a
 * braked address is refused before its credentials are checked, or the refusal would still be
 * an oracle at full speed.
 */
export class GuessingBrake {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly maxTracked: number;

  constructor(private readonly options: GuessingBrakeOptions) {
    this.maxTracked = options.maxTracked ?? 100_000;
  }

  /** Milliseconds until `address` may try again; 0 when it may try now. */
  retryAfterMs(address: string): number {
    const tokens = this.tokens(address);
    return tokens >= 1 ? 0 : Math.ceil(((1 - tokens) / this.options.refillPerSecond) * 1000);
  }

  /** A failed login from `address`. */
  failed(address: string): void {
    const tokens = this.tokens(address) - 1;
    this.buckets.delete(address);
    this.buckets.set(address, { tokens, at: this.options.now() });
    if (this.buckets.size > this.maxTracked) {
      const oldest = this.buckets.keys().next().value;
      if (oldest !== undefined) this.buckets.delete(oldest);
    }
  }

  private tokens(address: string): number {
    const bucket = this.buckets.get(address);
    if (!bucket) return this.options.burst;
    const earned = ((this.options.now() - bucket.at) / 1000) * this.options.refillPerSecond;
    const tokens = Math.min(this.options.burst, bucket.tokens + earned);
    // A full bucket is the same as none: forget it so idle addresses cost nothing.
    if (tokens >= this.options.burst) this.buckets.delete(address);
    return tokens;
  }
}

/** The shortest admin key the node accepts: shorter ones can be guessed. */
export const MIN_ADMIN_KEY_LENGTH = 16;
