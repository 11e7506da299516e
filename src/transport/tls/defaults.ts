import type { SecureContextOptions } from 'node:tls';

/**
 * The protocol floor and cipher list every TLS listener uses. TLS 1.0 and 1.1 are off (RFC 8996).
 * TLS 1.3 suites first, then TLS 1.2 with forward secrecy (ECDHE) and AEAD only: the "intermediate"
 * profile of Mozilla's server guidelines without its DHE suites (slow and rarely needed by devices).
 */
export const TLS_MIN_VERSION = 'TLSv1.2' as const;

export const TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export const SECURE_DEFAULTS: SecureContextOptions = {
  minVersion: TLS_MIN_VERSION,
  ciphers: TLS_CIPHERS,
  // The server's order, not the client's: an old client cannot talk it into the weakest suite.
  honorCipherOrder: true,
};
