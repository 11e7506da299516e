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
