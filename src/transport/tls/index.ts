/**
 * TLS for every listener: PEM files (certificate, key, the CA that issues device certificates,
 * its revocation list) read, checked and followed (a changed file is reloaded for new
 * connections; a broken one is reported and the old context kept), the secure defaults every
 * listener uses (TLS 1.2+, forward-secret AEAD ciphers), what a device's client certificate says
 * (verified device id and tenant, or why it is refused), and a local CA for `thingloop certs dev`.
 */

export {
  type CertificateRefusalReason,
  type ClientCertificate,
  clientCertificateOf,
  DEFAULT_CERTIFICATE_TENANT,
} from './client-certificate.js';
export { SECURE_DEFAULTS, TLS_CIPHERS, TLS_MIN_VERSION } from './defaults.js';
export { certificateSerial, DevCertificateAuthority, type IssuedCertificate, revokedSerials, type Validity } from './dev-authority.js';
export { loadTlsMaterial, type TlsCertificateSummary, TlsFileError, type TlsFiles, type TlsMaterial } from './material.js';
export { type ContextHolder, type ReloadingOptions, ReloadingTlsContext, type ReloadObserver } from './reloading.js';
