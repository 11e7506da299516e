import type { TLSSocket } from 'node:tls';

/** The tenant a client certificate without an organisation (subject O) belongs to. */
export const DEFAULT_CERTIFICATE_TENANT = 'default';

/** Why a presented client certificate was not accepted (also the refusal reason in /metrics). */
export type CertificateRefusalReason =
  | 'certificate_expired'
  | 'certificate_not_yet_valid'
  | 'certificate_revoked'
  | 'certificate_unknown_ca'
  | 'certificate_unverified'
  | 'certificate_without_device';

/**
 * What a TLS connection's client certificate says:
 * - `none`: no certificate (the client logs in with a token);
 * - `refused`: one was presented and failed (the connection may not log in at all: a revoked
 *   device must not slip in with a token);
 * - `verified`: issued by the configured CA, valid, not revoked; subject CN names the device and
 *   subject O its tenant.
 */
export type ClientCertificate =
  | { kind: 'none' }
  | { kind: 'refused'; reason: CertificateRefusalReason; message: string; subject?: string }
  | { kind: 'verified'; deviceId: string; tenant: string; serialNumber: string };

/** OpenSSL's verification codes, grouped into what an operator needs to know. */
const REASON_BY_CODE: Record<string, CertificateRefusalReason> = {
  CERT_HAS_EXPIRED: 'certificate_expired',
  CERT_NOT_YET_VALID: 'certificate_not_yet_valid',
  CERT_REVOKED: 'certificate_revoked',
  UNABLE_TO_GET_ISSUER_CERT: 'certificate_unknown_ca',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'certificate_unknown_ca',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'certificate_unknown_ca',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'certificate_unknown_ca',
  SELF_SIGNED_CERT_IN_CHAIN: 'certificate_unknown_ca',
  CERT_SIGNATURE_FAILURE: 'certificate_unknown_ca',
};

const MESSAGES: Record<CertificateRefusalReason, string> = {
  certificate_expired: 'the client certificate has expired',
  certificate_not_yet_valid: 'the client certificate is not valid yet (check the device clock)',
  certificate_revoked: 'the client certificate has been revoked',
  certificate_unknown_ca: 'the client certificate was not issued by the CA this node trusts (--tls-ca)',
  certificate_unverified: 'the client certificate could not be verified',
  certificate_without_device: 'the client certificate names no device (subject CN)',
};

/** A subject field as one string: OpenSSL gives repeated attributes as an array. */
function field(value: string | string[] | undefined): string | undefined {
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined || first === '' ? undefined : first;
}

/** Reads the verdict of a server-side socket whose handshake finished (`secureConnection`). */
export function clientCertificateOf(socket: TLSSocket): ClientCertificate {
  const peer = socket.getPeerCertificate();
  // No certificate gives an empty object.
  if (!peer || Object.keys(peer).length === 0) return { kind: 'none' };
  const subject = peer.subject
    ? Object.entries(peer.subject)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(', ')
    : undefined;
  if (!socket.authorized) {
    const code = String(socket.authorizationError ?? '');
    const reason = REASON_BY_CODE[code] ?? 'certificate_unverified';
    return { kind: 'refused', reason, message: `${MESSAGES[reason]} (${code || 'unknown error'})`, ...(subject ? { subject } : {}) };
  }
  const deviceId = field(peer.subject?.CN);
  if (!deviceId) {
    return {
      kind: 'refused',
      reason: 'certificate_without_device',
      message: MESSAGES.certificate_without_device,
      ...(subject ? { subject } : {}),
    };
  }
  return { kind: 'verified', deviceId, tenant: field(peer.subject?.O) ?? DEFAULT_CERTIFICATE_TENANT, serialNumber: peer.serialNumber };
}
