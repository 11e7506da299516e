import { readFile } from 'node:fs/promises';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { SECURE_DEFAULTS } from './defaults.js';
import { x509 } from './x509.js';

/** Where a listener's certificate, key, trusted CA and revocation list are (PEM files). */
export interface TlsFiles {
  cert: string;
  key: string;
  /** Client certificates issued by this CA may log in as devices (mTLS). */
  ca?: string;
  /** Certificates this CA has revoked; needs `ca`. */
  crl?: string;
}

/** What the files hold, for logs and start-up messages. */
export interface TlsCertificateSummary {
  subject: string;
  issuer: string;
  notAfter: string;
  serialNumber: string;
  /** The trusted CA's subject, when one is configured. */
  clientCa?: string;
  /** Serial numbers the revocation list names. */
  revoked?: number;
}

/** The files read and checked: options for `setSecureContext`, and what they say. */
export interface TlsMaterial {
  options: SecureContextOptions;
  summary: TlsCertificateSummary;
  /** The PEM text, to tell a real change from a touched file. */
  fingerprint: string;
}

export class TlsFileError extends Error {}

async function readPem(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new TlsFileError(`cannot read the TLS ${what} ${path}: ${(error as Error).message}`);
  }
}

function parsed<T>(path: string, what: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new TlsFileError(`the TLS ${what} ${path} is not a PEM ${what}: ${(error as Error).message}`);
  }
}

/**
 * Reads and checks the files: each must parse, the key must belong to the certificate (OpenSSL
 * checks that when the context is built), the CRL needs the CA. Throws a `TlsFileError` that
 * names the file; nothing half-read is ever returned.
 */
export async function loadTlsMaterial(files: TlsFiles): Promise<TlsMaterial> {
  if (files.crl && !files.ca) throw new TlsFileError('a certificate revocation list (--tls-crl) needs the CA that issued it (--tls-ca)');
  const [cert, key, ca, crl] = await Promise.all([
    readPem(files.cert, 'certificate'),
    readPem(files.key, 'private key'),
    files.ca ? readPem(files.ca, 'CA certificate') : undefined,
    files.crl ? readPem(files.crl, 'revocation list') : undefined,
  ]);
  const leaf = parsed(files.cert, 'certificate', () => new x509.X509Certificate(cert));
  const authority = ca && files.ca ? parsed(files.ca, 'CA certificate', () => new x509.X509Certificate(ca)) : undefined;
  const revocations = crl && files.crl ? parsed(files.crl, 'revocation list', () => new x509.X509Crl(crl)) : undefined;
  const options: SecureContextOptions = {
    ...SECURE_DEFAULTS,
    cert,
    key,
    ...(ca ? { ca } : {}),
    ...(crl ? { crl } : {}),
  };
  try {
    createSecureContext(options);
  } catch (error) {
    throw new TlsFileError(
      `the TLS files ${[files.cert, files.key, files.ca, files.crl].filter(Boolean).join(', ')} do not make a usable context: ${(error as Error).message}`,
    );
  }
  return {
    options,
    summary: {
      subject: leaf.subject,
      issuer: leaf.issuer,
      notAfter: leaf.notAfter.toISOString(),
      serialNumber: leaf.serialNumber,
      ...(authority ? { clientCa: authority.subject } : {}),
      ...(revocations ? { revoked: revocations.entries.length } : {}),
    },
    fingerprint: [cert, key, ca ?? '', crl ?? ''].join('\n--\n'),
  };
}
