import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { SparkplugBrokerEndpoint } from './host.js';

/** The MQTT username of the node's own host application on its embedded broker (it logs in as admin). */
const ADMIN_USERNAME = '$admin';

/**
 * The secret the host application logs in with on the node's own broker: made at start, held in
 * memory only (never stored, logged or shown), so the host needs no admin key the node may not
 * know (a stored key is only a hash). The broker accepts it where it accepts the admin key.
 */
export class HostCredential {
  private readonly secret = randomBytes(32).toString('base64url');

  matches(candidate: string): boolean {
    const given = Buffer.from(candidate);
    const expected = Buffer.from(this.secret);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  /**
   * The embedded broker as seen from inside the node: a wildcard listen address is reached on
   * loopback. `secure` when only MQTTS listens (--plaintext false): the host then talks TLS to
   * its own listener without checking the certificate, whose names need not include loopback; the
   * peer is this process on this machine, and the secret is random and never leaves memory.
   */
  endpoint(listenHost: string, port: number, secure = false): SparkplugBrokerEndpoint {
    const host = listenHost === '0.0.0.0' || listenHost === '' ? '127.0.0.1' : listenHost === '::' ? '::1' : listenHost;
    const literal = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
    const url = `${secure ? 'mqtts' : 'mqtt'}://${literal}:${port}`;
    return { url, username: ADMIN_USERNAME, password: this.secret, ...(secure ? { verifyServer: false } : {}) };
  }
}
