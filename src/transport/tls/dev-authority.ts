import { webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import { x509 } from './x509.js';

/** ECDSA P-256 with SHA-256: small certificates and fast handshakes, which devices and the mTLS set-up rate both need. */
const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

/** A certificate and its private key, both PEM. */
export interface IssuedCertificate {
  certificatePem: string;
  privateKeyPem: string;
  serialNumber: string;
}

/** When a certificate is valid: from `notBefore` (default now) for `days`, unless `notAfter` is given. */
export interface Validity {
  days: number;
  notBefore?: Date;
  notAfter?: Date;
}

function validity(v: Validity): { notBefore: Date; notAfter: Date } {
  const notBefore = v.notBefore ?? new Date(Date.now() - 60_000);
  return { notBefore, notAfter: v.notAfter ?? new Date(notBefore.getTime() + v.days * DAY_MS) };
}

async function keyPair(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

async function privateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

/** A positive 16-byte serial (RFC 5280 allows up to 20; the top bit clear keeps it positive). */
function serialNumber(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return Buffer.from(bytes).toString('hex');
}

/** A distinguished-name value with the characters RFC 4514 escapes escaped. */
function dnValue(text: string): string {
  return text.replace(/([,+"\\<>;=])/g, '\\$1');
}

/**
 * A local certificate authority for trying TLS out (`thingloop certs dev`): a self-signed CA,
 * a server certificate for this machine's names, device client certificates (subject CN = the
 * device id, O = its tenant when given) and revocation lists. Not a production PKI.
 */
export class DevCertificateAuthority {
  private constructor(
    private readonly certificate: x509.X509Certificate,
    private readonly keys: webcrypto.CryptoKeyPair,
  ) {}

  static async create(v: Validity, name = 'Thingloop development CA'): Promise<DevCertificateAuthority> {
    const keys = await keyPair();
    const certificate = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serialNumber(),
      name: `CN=${dnValue(name)}`,
      ...validity(v),
      keys,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    return new DevCertificateAuthority(certificate, keys);
  }

  /** An authority made earlier (`ca.pem`, `ca-key.pem`), so later runs add devices and revocations to it. */
  static async load(certificatePem: string, privateKeyPemText: string): Promise<DevCertificateAuthority> {
    const certificate = new x509.X509Certificate(certificatePem);
    const der = x509.PemConverter.decodeFirst(privateKeyPemText);
    const privateKey = await webcrypto.subtle.importKey('pkcs8', der, KEY_ALGORITHM, true, ['sign']);
    const publicKey = await certificate.publicKey.export(KEY_ALGORITHM, ['verify']);
    return new DevCertificateAuthority(certificate, { privateKey, publicKey });
  }

  get certificatePem(): string {
    return this.certificate.toString('pem');
  }

  get subject(): string {
    return this.certificate.subject;
  }

  privateKeyPem(): Promise<string> {
    return privateKeyPem(this.keys.privateKey);
  }

  /** A TLS server certificate for `hosts` (DNS names and IP addresses, all in the SAN). */
  async issueServer(hosts: string[], v: Validity): Promise<IssuedCertificate> {
    const names = hosts.map((host) => (isIP(host) ? { type: 'ip' as const, value: host } : { type: 'dns' as const, value: host }));
    return this.issue(`CN=${dnValue(hosts[0] ?? 'localhost')}`, v, [
      new x509.SubjectAlternativeNameExtension(names),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    ]);
  }

  /** A device's client certificate: subject CN = device id, O = tenant when given (none means the default tenant). */
  async issueDevice(deviceId: string, v: Validity, tenant?: string): Promise<IssuedCertificate> {
    const subject = tenant === undefined ? `CN=${dnValue(deviceId)}` : `CN=${dnValue(deviceId)}, O=${dnValue(tenant)}`;
    return this.issue(subject, v, [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    ]);
  }

  private async issue(subject: string, v: Validity, extensions: x509.Extension[]): Promise<IssuedCertificate> {
    const keys = await keyPair();
    const serial = serialNumber();
    const certificate = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject,
      issuer: this.certificate.subjectName,
      ...validity(v),
      publicKey: keys.publicKey,
      signingKey: this.keys.privateKey,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        ...extensions,
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(this.keys.publicKey),
      ],
    });
    return { certificatePem: certificate.toString('pem'), privateKeyPem: await privateKeyPem(keys.privateKey), serialNumber: serial };
  }

  /** A CRL naming `serialNumbers` (hex), valid for `days`: a node with `--tls-crl` refuses those certificates. */
  async revocationList(serialNumbers: string[], days: number): Promise<string> {
    const now = new Date(Date.now() - 60_000);
    const crl = await x509.X509CrlGenerator.create({
      issuer: this.certificate.subjectName,
      thisUpdate: now,
      nextUpdate: new Date(now.getTime() + days * DAY_MS),
      signingKey: this.keys.privateKey,
      signingAlgorithm: SIGNING,
      entries: serialNumbers.map((serial) => ({ serialNumber: serial, revocationDate: now, reason: x509.X509CrlReason.keyCompromise })),
      extensions: [await x509.AuthorityKeyIdentifierExtension.create(this.keys.publicKey)],
    });
    // OpenSSL reads only the "X509 CRL" label (RFC 7468), not the library's "CRL".
    return x509.PemConverter.encode(crl.rawData, 'X509 CRL');
  }
}

/** The serial numbers a CRL (PEM) names, lower-case hex. */
export function revokedSerials(crlPem: string): string[] {
  return new x509.X509Crl(crlPem).entries.map((entry) => entry.serialNumber.toLowerCase());
}

/** A certificate's serial number (PEM), lower-case hex. */
export function certificateSerial(certificatePem: string): string {
  return new x509.X509Certificate(certificatePem).serialNumber.toLowerCase();
}
