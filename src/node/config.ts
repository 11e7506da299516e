import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { MIN_ADMIN_KEY_LENGTH } from '../access/index.js';
import { DEFAULT_CODE_PREFIX, DEFAULT_IPV6_PREFIX } from '../identity/index.js';
import { DEFAULT_TENANT, isTenantId, TENANT_ID_PATTERN } from '../tenancy/index.js';
import { parseDuration } from '../time/index.js';
import { parseAddressRange } from '../transport/webhook/index.js';

export interface NodeConfig {
  dataDir: string;
  httpHost: string;
  httpPort: number;
  mqttHost: string;
  mqttPort: number;
  /** Serve CoAP devices (UDP). */
  coap: boolean;
  coapHost: string;
  coapPort: number;
  /** The host name consumers and devices use to reach this node (Thing Description forms); else the host a request came to. */
  publicHost: string | undefined;
  adminKey: string | undefined;
  /** Where the admin key was read from, when it came from a file (then it is also in `adminKey`). */
  adminKeyFile: string | undefined;
  /** CIDR ranges alarm webhooks may reach although they are loopback, private or reserved. */
  webhookAllow: string[];
  codePrefix: string;
  ipv6Prefix: string;
  retentionMs: number;
  maxPayloadBytes: number;
  maxSamplesPerMessage: number;
  maxClockSkewMs: number;
  durability: 'normal' | 'full';
  role: 'cloud' | 'edge';
  cloudUrl: string | undefined;
  edgeId: string | undefined;
  edgeToken: string | undefined;
  /** Edge role: further tenants this edge serves, each over its own link to the cloud. */
  edgeTenants: EdgeTenantLink[];
  outboxQuotaBytes: number;
  outboxPolicy: 'drop-oldest' | 'downsample';
  drainRate: number;
  agentsDir: string | undefined;
  alarmWebhook: string | undefined;
  alarmWebhookSecret: string | undefined;
  /** OpenID Connect sign-in: the issuer (off when unset), this node's client at it, and the claims read. */
  oidcIssuer: string | undefined;
  oidcClientId: string | undefined;
  /** Also filled from `oidcClientSecretFile`. */
  oidcClientSecret: string | undefined;
  oidcClientSecretFile: string | undefined;
  /** Unset: `oidcRedirectUrl(config, publicUrl)` derives it from the node's public URL. */
  oidcRedirectUrl: string | undefined;
  oidcTenantClaim: string;
  oidcRoleClaim: string;
  logLevel: string;
  metricsToken: string | undefined;
  publicMetrics: boolean;
  publicApiDocs: boolean;
  httpRequestTimeoutMs: number;
  authFailureBurst: number;
  authFailureRefillPerSecond: number;
  mqttMaxUnauthenticated: number;
  mqttConnectTimeoutMs: number;
  /** Run the Sparkplug B host application. */
  sparkplug: boolean;
  /** Its Sparkplug Host Application id (`spBv1.0/STATE/{id}`). */
  sparkplugHostId: string;
  /** An external broker for it (mqtt://…); the embedded broker when unset. */
  sparkplugBroker: string | undefined;
  /** The tenant whose registry the devices it learns from births join (one tenant: births carry no credentials). */
  sparkplugTenant: string;
  /** Modbus TCP: poll interval of a property whose form has no `modv:pollingTime`. */
  modbusPollMs: number;
  /** Modbus TCP: how long a PLC has to answer one request. */
  modbusTimeoutMs: number;
  /** OPC UA: how long a server has to answer one request (connecting: twice this). */
  opcuaTimeoutMs: number;
  /** OPC UA: trust a server certificate seen for the first time (and keep it in opcua-pki/trusted). */
  opcuaTrustUnknownServers: boolean;
  /** TLS: the server certificate (PEM; a chain after it) and its private key; both turn on MQTTS and HTTPS. */
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  /** TLS: the CA whose client certificates log devices in (mTLS); an edge also trusts it for the cloud link. */
  tlsCa: string | undefined;
  /** TLS: certificates that CA has revoked. */
  tlsCrl: string | undefined;
  mqttsPort: number;
  httpsPort: number;
  /** Keep the plaintext MQTT and HTTP listeners (off needs a certificate). */
  plaintext: boolean;
  /** Edge role: the CA the cloud's HTTPS certificate is checked against (else --tls-ca, else the system's CAs). */
  cloudCa: string | undefined;
  /** How long a stopping node waits for its work in flight before it exits anyway. */
  shutdownTimeoutMs: number;
  /** How long the audit trail keeps an entry; older ones are deleted by the node's housekeeping. */
  auditRetentionMs: number;
}

type Origin = 'default' | 'config file' | 'environment' | 'flag';

/** One setting: the same name as a flag, an env var and a config-file key. */
export interface SettingSpec<K extends keyof NodeConfig = keyof NodeConfig> {
  key: K;
  flag: string;
  env: string;
  description: string;
  defaultValue: NodeConfig[K];
  parse(text: string): NodeConfig[K];
  secret?: boolean;
  /** How the default reads in --help when the raw value would not (30d, not 2592000000). */
  display?: string;
}

/** One more tenant an edge serves: its edge id in that tenant and the token the cloud issued, read from a file. */
export interface EdgeTenantLink {
  tenant: string;
  edgeId: string;
  token: string;
}

/** `tenant=edgeId:tokenFile`, comma-separated: the tokens stay in files, never on a command line. */
function edgeTenantLinks(text: string): EdgeTenantLink[] {
  return text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0)
    .map((part) => {
      const match = /^([a-z0-9][a-z0-9-]{0,62})=([A-Za-z0-9][A-Za-z0-9._:-]{0,127}?):(.+)$/.exec(part);
      if (!match) throw new Error(`"${part}" is not tenant=edgeId:tokenFile (e.g. acme=site-1:/etc/thingloop/acme-edge.token)`);
      const [, tenant, edgeId, file] = match as unknown as [string, string, string, string];
      let token: string;
      try {
        token = readFileSync(file, 'utf8').trim();
      } catch (error) {
        throw new Error(`cannot read the edge token file ${file} of tenant ${tenant}: ${(error as Error).message}`);
      }
      if (token === '') throw new Error(`the edge token file ${file} of tenant ${tenant} is empty`);
      return { tenant, edgeId, token };
    });
}

/** Decimal digits only: Number() would also take '', ' ', '0x1F90', '1e3' and '-0'. */
function wholeNumber(text: string): number {
  const trimmed = text.trim();
  return /^\d+$/.test(trimmed) ? Number(trimmed) : Number.NaN;
}

function port(text: string): number {
  const value = wholeNumber(text);
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw new Error(`"${text}" is not a TCP port (0-65535; 0 picks a free one)`);
  return value;
}

function positiveInteger(text: string): number {
  const value = wholeNumber(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`"${text}" is not a positive integer`);
  return value;
}

function duration(text: string): number {
  const value = parseDuration(text);
  if (value === undefined) throw new Error(`"${text}" is not a duration like 30s, 15m, 7d`);
  return value;
}

/** A duration with a floor: below it a setting only loads a peer or cuts devices off, almost surely a typo. */
function durationAtLeast(minimumMs: number, minimumText: string): (text: string) => number {
  return (text) => {
    const ms = duration(text);
    if (ms < minimumMs) throw new Error(`"${text}" is shorter than the ${minimumText} minimum`);
    return ms;
  };
}

/** Retention shorter than a minute would delete data as it arrives: almost surely a typo. */
function retention(text: string): number {
  const value = duration(text);
  if (value < 60_000) throw new Error(`"${text}" is shorter than the 1m minimum retention`);
  return value;
}

function bytes(text: string): number {
  const match = /^(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?$/i.exec(text.trim());
  if (!match) throw new Error(`"${text}" is not a size like 262144, 256KiB, 1MiB or 2GiB`);
  const unit = (match[2] ?? 'b').toLowerCase();
  const factor = unit.startsWith('k') ? 1024 : unit.startsWith('m') ? 1024 ** 2 : unit.startsWith('g') ? 1024 ** 3 : 1;
  const value = Number(match[1]) * factor;
  if (value < 1) throw new Error(`"${text}" must be at least 1 byte`);
  return value;
}

function oneOf<T extends string>(...allowed: T[]) {
  return (text: string): T => {
    if (!(allowed as string[]).includes(text)) throw new Error(`"${text}" must be one of ${allowed.join(', ')}`);
    return text as T;
  };
}

const spec = <K extends keyof NodeConfig>(s: SettingSpec<K>): SettingSpec => s as unknown as SettingSpec;

/** A DNS name or an IP address (IPv6 in brackets or bare), nothing a URL could be broken by. */
function hostName(text: string): string {
  const trimmed = text.trim();
  const bare = trimmed.replace(/^\[(.*)\]$/, '$1');
  if (/^[A-Za-z0-9.-]{1,253}$/.test(bare)) return bare;
  if (bare.includes(':') && /^[0-9A-Fa-f:.]+$/.test(bare)) return `[${bare}]`;
  throw new Error(`"${text}" is not a host name or IP address`);
}

function tenantId(text: string): string {
  const trimmed = text.trim();
  if (!isTenantId(trimmed)) throw new Error(`"${text}" is not a tenant id (${TENANT_ID_PATTERN})`);
  return trimmed;
}

/** A Sparkplug id is one MQTT topic level (spec 4.1.1). */
function sparkplugHostId(text: string): string {
  const trimmed = text.trim();
  if (!/^[^/+#\s]{1,64}$/.test(trimmed))
    throw new Error(`"${text}" is not a Sparkplug host id (1-64 characters, no "/", "+", "#" or spaces)`);
  return trimmed;
}

function mqttUrl(text: string): string {
  let parsed: URL;
  try {
    parsed = new URL(text);
  } catch {
    throw new Error(`"${text}" is not an MQTT URL like mqtt://broker:1883`);
  }
  if (!['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'ws:', 'wss:'].includes(parsed.protocol))
    throw new Error(`"${text}" is not an MQTT URL (mqtt://, mqtts://, ws:// or wss://)`);
  return text;
}

function nonNegativeInteger(text: string): number {
  const value = wholeNumber(text);
  if (!Number.isInteger(value)) throw new Error(`"${text}" is not a whole number`);
  return value;
}

function yesNo(text: string): boolean {
  const value = text.trim().toLowerCase();
  if (['true', 'yes', '1', 'on'].includes(value)) return true;
  if (['false', 'no', '0', 'off'].includes(value)) return false;
  throw new Error(`"${text}" is not true or false`);
}

function url(text: string): string {
  let parsed: URL;
  try {
    parsed = new URL(text);
  } catch {
    throw new Error(`"${text}" is not an http(s) URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error(`"${text}" is not an http(s) URL`);
  return text;
}

/** The key itself never appears in the message: it may be a real key that is merely short. */
function adminKey(text: string): string {
  if (text.length < MIN_ADMIN_KEY_LENGTH) {
    throw new Error(
      `the admin key is too short (${text.length} characters; at least ${MIN_ADMIN_KEY_LENGTH}, since a short key can be guessed; generate one with: openssl rand -base64 32)`,
    );
  }
  return text;
}

/** The admin key in a file (trimmed: editors add a newline). */
function readAdminKeyFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read the admin key file ${path}: ${(error as Error).message}`);
  }
  return adminKey(text.trim());
}

/** Checked when the setting is read, so a missing file or short key names where the path came from. */
function adminKeyFile(path: string): string {
  readAdminKeyFile(path);
  return path;
}

/** https, or http to a loopback address (a local test issuer): codes and tokens cross this link. */
function oidcIssuer(text: string): string {
  const parsed = new URL(url(text));
  const loopback = ['localhost', '[::1]'].includes(parsed.hostname) || /^127\.\d+\.\d+\.\d+$/.test(parsed.hostname);
  if (parsed.protocol === 'http:' && !loopback) throw new Error(`"${text}" must be an https URL (http only on loopback)`);
  return text;
}

function readOidcClientSecretFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (error) {
    throw new Error(`cannot read the OIDC client secret file ${path}: ${(error as Error).message}`);
  }
  if (text === '') throw new Error(`the OIDC client secret file ${path} is empty`);
  return text;
}

/** A claim name as it appears in an ID token: one word. */
function claimName(text: string): string {
  const trimmed = text.trim();
  if (!/^[A-Za-z0-9_:.\-/]{1,128}$/.test(trimmed)) throw new Error(`"${text}" is not a claim name`);
  return trimmed;
}

/** Comma- or space-separated addresses and CIDR ranges, in canonical form. */
function addressRanges(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .filter((entry) => entry !== '')
    .map((entry) => {
      const [network, bits] = parseAddressRange(entry);
      return `${network.toString()}/${bits}`;
    });
}

export const SETTINGS: SettingSpec[] = [
  spec({
    key: 'dataDir',
    flag: 'data-dir',
    env: 'THINGLOOP_DATA_DIR',
    description: 'directory for the SQLite database and node state',
    defaultValue: './.thingloop',
    parse: String,
  }),
  spec({
    key: 'httpPort',
    flag: 'http-port',
    env: 'THINGLOOP_HTTP_PORT',
    description: 'HTTP API and console port',
    defaultValue: 8080,
    parse: port,
  }),
  spec({
    key: 'httpHost',
    flag: 'http-host',
    env: 'THINGLOOP_HTTP_HOST',
    description: 'HTTP listen address',
    defaultValue: '0.0.0.0',
    parse: String,
  }),
  spec({
    key: 'mqttPort',
    flag: 'mqtt-port',
    env: 'THINGLOOP_MQTT_PORT',
    description: 'embedded MQTT broker port',
    defaultValue: 1883,
    parse: port,
  }),
  spec({
    key: 'mqttHost',
    flag: 'mqtt-host',
    env: 'THINGLOOP_MQTT_HOST',
    description: 'MQTT listen address',
    defaultValue: '0.0.0.0',
    parse: String,
  }),
  spec({
    key: 'coap',
    flag: 'coap',
    env: 'THINGLOOP_COAP',
    description: 'serve CoAP devices (RFC 7252 over UDP, no DTLS): things/{id}/telemetry, events, twin and actions; off: no UDP listener',
    defaultValue: true,
    parse: yesNo,
  }),
  spec({
    key: 'coapPort',
    flag: 'coap-port',
    env: 'THINGLOOP_COAP_PORT',
    description: 'CoAP listen port (UDP)',
    defaultValue: 5683,
    parse: port,
  }),
  spec({
    key: 'coapHost',
    flag: 'coap-host',
    env: 'THINGLOOP_COAP_HOST',
    description: 'CoAP listen address',
    defaultValue: '0.0.0.0',
    parse: String,
  }),
  spec({
    key: 'publicHost',
    flag: 'public-host',
    env: 'THINGLOOP_PUBLIC_HOST',
    description:
      'host name devices and WoT consumers reach this node by, used in Thing Descriptions (MQTT and CoAP forms); otherwise the host the request was sent to',
    defaultValue: undefined,
    parse: hostName,
  }),
  spec({
    key: 'adminKey',
    flag: 'admin-key',
    env: 'THINGLOOP_ADMIN_KEY',
    description: `admin API key, at least ${MIN_ADMIN_KEY_LENGTH} characters (visible in ps; prefer THINGLOOP_ADMIN_KEY or --admin-key-file); otherwise generated on first start and printed once`,
    defaultValue: undefined,
    parse: adminKey,
    secret: true,
  }),
  spec({
    key: 'codePrefix',
    flag: 'code-prefix',
    env: 'THINGLOOP_CODE_PREFIX',
    description: 'identification code prefix (codes are {prefix}/{id})',
    defaultValue: DEFAULT_CODE_PREFIX,
    parse: String,
  }),
  spec({
    key: 'ipv6Prefix',
    flag: 'ipv6-prefix',
    env: 'THINGLOOP_IPV6_PREFIX',
    description: 'IPv6 /64 that device addresses are derived in',
    defaultValue: DEFAULT_IPV6_PREFIX,
    parse: String,
  }),
  spec({
    key: 'retentionMs',
    flag: 'retention',
    env: 'THINGLOOP_RETENTION',
    description: 'how long telemetry is kept (at least 1m)',
    defaultValue: 30 * 86_400_000,
    parse: retention,
    display: '30d',
  }),
  spec({
    key: 'maxPayloadBytes',
    flag: 'max-payload',
    env: 'THINGLOOP_MAX_PAYLOAD',
    description: 'largest telemetry payload accepted',
    display: '256KiB',
    defaultValue: 256 * 1024,
    parse: bytes,
  }),
  spec({
    key: 'maxSamplesPerMessage',
    flag: 'max-batch',
    env: 'THINGLOOP_MAX_BATCH',
    description: 'most samples in one batch message',
    defaultValue: 1000,
    parse: positiveInteger,
  }),
  spec({
    key: 'maxClockSkewMs',
    flag: 'max-clock-skew',
    env: 'THINGLOOP_MAX_CLOCK_SKEW',
    description: 'how far in the future a device timestamp may be',
    display: '1h',
    defaultValue: 3_600_000,
    parse: duration,
  }),
  spec({
    key: 'durability',
    flag: 'durability',
    env: 'THINGLOOP_DURABILITY',
    description: 'normal: survives a process kill; full: also power loss (slower)',
    defaultValue: 'normal',
    parse: oneOf('normal', 'full'),
  }),
  spec({
    key: 'logLevel',
    flag: 'log-level',
    env: 'THINGLOOP_LOG_LEVEL',
    description: 'trace, debug, info, warn, error',
    defaultValue: 'info',
    parse: oneOf('trace', 'debug', 'info', 'warn', 'error', 'silent'),
  }),
  spec({
    key: 'role',
    flag: 'role',
    env: 'THINGLOOP_ROLE',
    description: 'cloud, or edge (a site gateway that syncs with a cloud node)',
    defaultValue: 'cloud',
    parse: oneOf('cloud', 'edge'),
  }),
  spec({
    key: 'cloudUrl',
    flag: 'cloud',
    env: 'THINGLOOP_CLOUD',
    description: 'edge role: HTTP base URL of the cloud node',
    defaultValue: undefined,
    parse: url,
  }),
  spec({
    key: 'edgeId',
    flag: 'edge-id',
    env: 'THINGLOOP_EDGE_ID',
    description: "edge role: this edge's id (POST /api/v1/edges on the cloud)",
    defaultValue: undefined,
    parse: String,
  }),
  spec({
    key: 'edgeToken',
    flag: 'token',
    env: 'THINGLOOP_EDGE_TOKEN',
    description: 'edge role: the token the cloud issued for this edge',
    defaultValue: undefined,
    parse: String,
    secret: true,
  }),
  spec({
    key: 'edgeTenants',
    flag: 'edge-tenants',
    env: 'THINGLOOP_EDGE_TENANTS',
    description:
      'edge role: more tenants this edge serves, each with its own link: tenant=edgeId:tokenFile, comma-separated (the edge registered in that tenant, its token in the file)',
    defaultValue: [],
    display: 'none',
    parse: edgeTenantLinks,
  }),
  spec({
    key: 'outboxQuotaBytes',
    flag: 'outbox-quota',
    env: 'THINGLOOP_OUTBOX_QUOTA',
    description: 'edge role: disk quota of the uplink outbox',
    display: '1GiB',
    defaultValue: 1024 ** 3,
    parse: bytes,
  }),
  spec({
    key: 'outboxPolicy',
    flag: 'outbox-policy',
    env: 'THINGLOOP_OUTBOX_POLICY',
    description: 'edge role: when the outbox is full, drop-oldest or downsample older telemetry (always reported as a gap)',
    defaultValue: 'drop-oldest',
    parse: oneOf('drop-oldest', 'downsample'),
  }),
  spec({
    key: 'drainRate',
    flag: 'drain-rate',
    env: 'THINGLOOP_DRAIN_RATE',
    description: 'edge role: records per second when draining a backlog (0 = as fast as the cloud acknowledges)',
    defaultValue: 0,
    parse: nonNegativeInteger,
  }),
  spec({
    key: 'agentsDir',
    flag: 'agents-dir',
    env: 'THINGLOOP_AGENTS_DIR',
    description: 'directory of agent definitions (*.yaml, *.json) loaded at start',
    defaultValue: undefined,
    parse: String,
  }),
  spec({
    key: 'alarmWebhook',
    flag: 'alarm-webhook',
    env: 'THINGLOOP_ALARM_WEBHOOK',
    description: 'URL that alarm events are POSTed to (signed with HMAC-SHA256)',
    defaultValue: undefined,
    parse: url,
  }),
  spec({
    key: 'alarmWebhookSecret',
    flag: 'alarm-webhook-secret',
    env: 'THINGLOOP_ALARM_WEBHOOK_SECRET',
    description: 'HMAC key for the alarm webhook signature (x-thingloop-signature)',
    defaultValue: undefined,
    parse: String,
    secret: true,
  }),
  spec({
    key: 'metricsToken',
    flag: 'metrics-token',
    env: 'THINGLOOP_METRICS_TOKEN',
    description: 'bearer token a Prometheus scraper may read /metrics with (the admin key always may)',
    defaultValue: undefined,
    parse: String,
    secret: true,
  }),
  spec({
    key: 'publicMetrics',
    flag: 'public-metrics',
    env: 'THINGLOOP_PUBLIC_METRICS',
    description: 'serve /metrics without a key (only where the HTTP listener is private)',
    defaultValue: false,
    parse: yesNo,
  }),
  spec({
    key: 'publicApiDocs',
    flag: 'public-api-docs',
    env: 'THINGLOOP_PUBLIC_API_DOCS',
    description: 'serve /api/v1/openapi.json without a key',
    defaultValue: false,
    parse: yesNo,
  }),
  spec({
    key: 'auditRetentionMs',
    flag: 'audit-retention',
    env: 'THINGLOOP_AUDIT_RETENTION',
    description: 'how long the audit trail keeps who did what; older entries are deleted hourly',
    display: '365d',
    defaultValue: 365 * 86_400_000,
    parse: retention,
  }),
  spec({
    key: 'shutdownTimeoutMs',
    flag: 'shutdown-timeout',
    env: 'THINGLOOP_SHUTDOWN_TIMEOUT',
    description:
      'how long a stopping node waits for work in flight (batches, flushes, requests); then it logs what it was still waiting for and exits with code 1',
    display: '10s',
    defaultValue: 10_000,
    parse: durationAtLeast(100, '100ms'),
  }),
  spec({
    key: 'httpRequestTimeoutMs',
    flag: 'http-request-timeout',
    env: 'THINGLOOP_HTTP_REQUEST_TIMEOUT',
    description: 'deadline for receiving a whole HTTP request, headers and body (slow bodies are cut off with 408)',
    display: '30s',
    defaultValue: 30_000,
    parse: duration,
  }),
  spec({
    key: 'authFailureBurst',
    flag: 'auth-failure-burst',
    env: 'THINGLOOP_AUTH_FAILURE_BURST',
    description: 'failed logins (HTTP and MQTT) one address may make before it is braked (429 / delayed refusal)',
    defaultValue: 20,
    parse: positiveInteger,
  }),
  spec({
    key: 'authFailureRefillPerSecond',
    flag: 'auth-failure-rate',
    env: 'THINGLOOP_AUTH_FAILURE_RATE',
    description: 'failed logins per second a braked address earns back',
    defaultValue: 1,
    parse: positiveInteger,
  }),
  spec({
    key: 'adminKeyFile',
    flag: 'admin-key-file',
    env: 'THINGLOOP_ADMIN_KEY_FILE',
    description: 'file holding the admin API key (kept out of ps and the environment)',
    defaultValue: undefined,
    parse: adminKeyFile,
  }),
  spec({
    key: 'oidcIssuer',
    flag: 'oidc-issuer',
    env: 'THINGLOOP_OIDC_ISSUER',
    description: 'OpenID Connect issuer people may sign in with (https; its /.well-known/openid-configuration is read); off when unset',
    defaultValue: undefined,
    parse: oidcIssuer,
  }),
  spec({
    key: 'oidcClientId',
    flag: 'oidc-client-id',
    env: 'THINGLOOP_OIDC_CLIENT_ID',
    description: "this node's client id at the OIDC issuer",
    defaultValue: undefined,
    parse: String,
  }),
  spec({
    key: 'oidcClientSecret',
    flag: 'oidc-client-secret',
    env: 'THINGLOOP_OIDC_CLIENT_SECRET',
    description:
      "this node's client secret at the OIDC issuer (visible in ps as a flag; prefer THINGLOOP_OIDC_CLIENT_SECRET or --oidc-client-secret-file)",
    defaultValue: undefined,
    parse: String,
    secret: true,
  }),
  spec({
    key: 'oidcClientSecretFile',
    flag: 'oidc-client-secret-file',
    env: 'THINGLOOP_OIDC_CLIENT_SECRET_FILE',
    description: "file holding this node's client secret at the OIDC issuer",
    defaultValue: undefined,
    parse: (path) => {
      readOidcClientSecretFile(path);
      return path;
    },
  }),
  spec({
    key: 'oidcRedirectUrl',
    flag: 'oidc-redirect-url',
    env: 'THINGLOOP_OIDC_REDIRECT_URL',
    description: 'where the OIDC issuer sends people back (register it at the issuer)',
    defaultValue: undefined,
    display: '<public URL>/api/v1/auth/oidc/callback',
    parse: url,
  }),
  spec({
    key: 'oidcTenantClaim',
    flag: 'oidc-tenant-claim',
    env: 'THINGLOOP_OIDC_TENANT_CLAIM',
    description: "the ID token or userinfo claim naming a person's tenant (absent: the default tenant)",
    defaultValue: 'thingloop_tenant',
    parse: claimName,
  }),
  spec({
    key: 'oidcRoleClaim',
    flag: 'oidc-role-claim',
    env: 'THINGLOOP_OIDC_ROLE_CLAIM',
    description: "the claim naming a person's role (absent: viewer; an unknown role or platform-admin is refused)",
    defaultValue: 'thingloop_role',
    parse: claimName,
  }),
  spec({
    key: 'webhookAllow',
    flag: 'webhook-allow',
    env: 'THINGLOOP_WEBHOOK_ALLOW',
    description:
      'addresses or CIDR ranges alarm webhooks may reach although they are loopback, private, link-local or reserved, comma-separated (e.g. 10.20.0.0/16,fd00::/8); otherwise public addresses only',
    defaultValue: [],
    display: 'none',
    parse: addressRanges,
  }),
  spec({
    key: 'mqttMaxUnauthenticated',
    flag: 'mqtt-max-pending-connects',
    env: 'THINGLOOP_MQTT_MAX_PENDING_CONNECTS',
    description: 'MQTT connections that have not logged in yet; beyond it new ones are closed at once',
    defaultValue: 1000,
    parse: positiveInteger,
  }),
  spec({
    key: 'mqttConnectTimeoutMs',
    flag: 'mqtt-connect-timeout',
    env: 'THINGLOOP_MQTT_CONNECT_TIMEOUT',
    description: 'how long an MQTT connection may take to log in before it is closed',
    display: '10s',
    defaultValue: 10_000,
    // Shorter would close devices on a slow link before their CONNECT has arrived.
    parse: durationAtLeast(1_000, '1s'),
  }),
  spec({
    key: 'sparkplug',
    flag: 'sparkplug',
    env: 'THINGLOOP_SPARKPLUG',
    description: 'run the Sparkplug B host application (births register devices, DATA is telemetry, writes go out as NCMD/DCMD)',
    defaultValue: true,
    parse: yesNo,
  }),
  spec({
    key: 'sparkplugHostId',
    flag: 'sparkplug-host-id',
    env: 'THINGLOOP_SPARKPLUG_HOST_ID',
    description: 'Sparkplug Host Application id: its STATE is spBv1.0/STATE/{id}',
    defaultValue: 'thingloop',
    parse: sparkplugHostId,
  }),
  spec({
    key: 'sparkplugBroker',
    flag: 'sparkplug-broker',
    env: 'THINGLOOP_SPARKPLUG_BROKER',
    description: 'external broker of the Sparkplug host application (mqtt://user:password@host:1883); the embedded broker when unset',
    defaultValue: undefined,
    parse: mqttUrl,
    // The URL may carry the broker's user and password.
    secret: true,
  }),
  spec({
    key: 'sparkplugTenant',
    flag: 'sparkplug-tenant',
    env: 'THINGLOOP_SPARKPLUG_TENANT',
    description: 'the tenant the Sparkplug host application registers devices in (births carry no credentials to tell)',
    defaultValue: DEFAULT_TENANT,
    parse: tenantId,
  }),
  spec({
    key: 'modbusPollMs',
    flag: 'modbus-poll',
    env: 'THINGLOOP_MODBUS_POLL',
    description: 'Modbus TCP poll interval of properties whose form has no modv:pollingTime',
    display: '1s',
    defaultValue: 1_000,
    // Faster polling than this only loads the PLC; a form's own modv:pollingTime may still ask for it.
    parse: durationAtLeast(100, '100ms'),
  }),
  spec({
    key: 'modbusTimeoutMs',
    flag: 'modbus-timeout',
    env: 'THINGLOOP_MODBUS_TIMEOUT',
    description: 'how long a PLC has to answer one Modbus TCP request (then the read fails and the connection is renewed)',
    display: '2s',
    defaultValue: 2_000,
    parse: durationAtLeast(50, '50ms'),
  }),
  spec({
    key: 'opcuaTimeoutMs',
    flag: 'opcua-timeout',
    env: 'THINGLOOP_OPCUA_TIMEOUT',
    description: 'how long an OPC UA server has to answer one request (reads, writes, calls; connecting gets twice this)',
    display: '5s',
    defaultValue: 5_000,
    parse: durationAtLeast(100, '100ms'),
  }),
  spec({
    key: 'opcuaTrustUnknownServers',
    flag: 'opcua-trust-unknown-servers',
    env: 'THINGLOOP_OPCUA_TRUST_UNKNOWN_SERVERS',
    description:
      'trust an OPC UA server certificate seen for the first time and remember it (off: copy server certificates to {data-dir}/opcua-pki/trusted/certs)',
    defaultValue: true,
    parse: yesNo,
  }),
  spec({
    key: 'tlsCert',
    flag: 'tls-cert',
    env: 'THINGLOOP_TLS_CERT',
    description:
      'server certificate (PEM file, chain after it); with --tls-key turns on MQTT over TLS and HTTPS; reloaded when the file changes',
    defaultValue: undefined,
    parse: String,
  }),
  spec({
    key: 'tlsKey',
    flag: 'tls-key',
    env: 'THINGLOOP_TLS_KEY',
    description: "the server certificate's private key (PEM file)",
    defaultValue: undefined,
    parse: String,
  }),
  spec({
    key: 'tlsCa',
    flag: 'tls-ca',
    env: 'THINGLOOP_TLS_CA',
    description:
      'CA certificate (PEM file) whose client certificates log devices in on MQTTS (subject CN = device id, O = tenant); tokens still work',
    defaultValue: undefined,
    parse: String,
  }),
  spec({
    key: 'tlsCrl',
    flag: 'tls-crl',
    env: 'THINGLOOP_TLS_CRL',
    description: 'revocation list (PEM file) of that CA: its certificates are refused',
    defaultValue: undefined,
    parse: String,
  }),
  spec({
    key: 'mqttsPort',
    flag: 'mqtts-port',
    env: 'THINGLOOP_MQTTS_PORT',
    description: 'MQTT over TLS port (with --tls-cert)',
    defaultValue: 8883,
    parse: port,
  }),
  spec({
    key: 'httpsPort',
    flag: 'https-port',
    env: 'THINGLOOP_HTTPS_PORT',
    description: 'HTTPS port of the API, console and WebSockets (with --tls-cert)',
    defaultValue: 8443,
    parse: port,
  }),
  spec({
    key: 'plaintext',
    flag: 'plaintext',
    env: 'THINGLOOP_PLAINTEXT',
    description: 'keep the plaintext MQTT and HTTP listeners; false leaves only MQTTS and HTTPS (needs --tls-cert and --tls-key)',
    defaultValue: true,
    parse: yesNo,
  }),
  spec({
    key: 'cloudCa',
    flag: 'cloud-ca',
    env: 'THINGLOOP_CLOUD_CA',
    description:
      "edge role: CA certificate (PEM file) the cloud's HTTPS certificate is checked against; otherwise --tls-ca, otherwise the system's CAs",
    defaultValue: undefined,
    parse: String,
  }),
];

export interface ResolvedConfig {
  config: NodeConfig;
  origins: Record<keyof NodeConfig, Origin>;
}

export interface ConfigSources {
  /** Flag values by setting key, as strings (commander gives strings). */
  flags?: Partial<Record<keyof NodeConfig, string>>;
  env?: NodeJS.ProcessEnv;
  configFile?: string;
}

export class ConfigError extends Error {}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  try {
    const parsed: unknown = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
    if (parsed === null || parsed === undefined) return {};
    if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('the top level must be a mapping');
    return parsed as Record<string, unknown>;
  } catch (error) {
    throw new ConfigError(`config file ${path} is not valid YAML/JSON: ${(error as Error).message}`);
  }
}

/** Precedence: flags > THINGLOOP_* environment > config file > defaults. */
export function resolveConfig(sources: ConfigSources): ResolvedConfig {
  const env = sources.env ?? {};
  const file = sources.configFile ? readConfigFile(sources.configFile) : {};
  const known = new Set(SETTINGS.flatMap((s) => [s.key, s.flag]));
  const unknown = Object.keys(file).filter((key) => !known.has(key));
  if (unknown.length > 0) {
    throw new ConfigError(
      `config file ${sources.configFile} has unknown settings: ${unknown.join(', ')}; known: ${SETTINGS.map((s) => s.key).join(', ')}`,
    );
  }
  const config = {} as Record<keyof NodeConfig, unknown>;
  const origins = {} as Record<keyof NodeConfig, Origin>;
  for (const setting of SETTINGS) {
    const candidates: [Origin, unknown, string][] = [
      ['flag', sources.flags?.[setting.key], `--${setting.flag}`],
      ['environment', env[setting.env], setting.env],
      ['config file', file[setting.key] ?? file[setting.flag], `${setting.key} in ${sources.configFile}`],
    ];
    const chosen = candidates.find(([, value]) => value !== undefined && value !== '');
    if (!chosen) {
      config[setting.key] = setting.defaultValue;
      origins[setting.key] = 'default';
      continue;
    }
    const [origin, value, where] = chosen;
    try {
      config[setting.key] = setting.parse(String(value));
    } catch (error) {
      throw new ConfigError(`${where}: ${(error as Error).message}`);
    }
    origins[setting.key] = origin;
  }
  const resolved = { config: config as unknown as NodeConfig, origins };
  withAdminKeyFromFile(resolved);
  withOidcClient(resolved);
  return resolved;
}

const PRECEDENCE: Origin[] = ['default', 'config file', 'environment', 'flag'];

/**
 * An admin key file fills `adminKey`. When both are set the usual precedence decides; set by
 * the same source, neither is obviously meant, so the node refuses to guess.
 */
function withAdminKeyFromFile({ config, origins }: ResolvedConfig): void {
  if (config.adminKeyFile === undefined) return;
  const byFile = PRECEDENCE.indexOf(origins.adminKeyFile);
  const byKey = PRECEDENCE.indexOf(origins.adminKey);
  if (byFile === byKey) {
    throw new ConfigError(
      `the admin key and the admin key file are both set (in the ${origins.adminKey}): keep one of ${howToSet('adminKey')} and ${howToSet('adminKeyFile')}`,
    );
  }
  if (byFile < byKey) return;
  try {
    config.adminKey = readAdminKeyFile(config.adminKeyFile);
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  origins.adminKey = origins.adminKeyFile;
}

/**
 * The OIDC client secret file fills the secret (the usual precedence; both from one source is
 * refused), and an issuer needs a client id and secret.
 */
function withOidcClient({ config, origins }: ResolvedConfig): void {
  if (config.oidcClientSecretFile !== undefined) {
    const byFile = PRECEDENCE.indexOf(origins.oidcClientSecretFile);
    const bySecret = PRECEDENCE.indexOf(origins.oidcClientSecret);
    if (byFile === bySecret) {
      throw new ConfigError(
        `the OIDC client secret and its file are both set (in the ${origins.oidcClientSecret}): keep one of ${howToSet('oidcClientSecret')} and ${howToSet('oidcClientSecretFile')}`,
      );
    }
    if (byFile > bySecret) {
      try {
        config.oidcClientSecret = readOidcClientSecretFile(config.oidcClientSecretFile);
      } catch (error) {
        throw new ConfigError((error as Error).message);
      }
      origins.oidcClientSecret = origins.oidcClientSecretFile;
    }
  }
  if (config.oidcIssuer === undefined) return;
  if (config.oidcClientId === undefined) {
    throw new ConfigError(`OIDC sign-in (--oidc-issuer) needs this node's client id at the issuer: ${howToSet('oidcClientId')}`);
  }
  if (config.oidcClientSecret === undefined) {
    throw new ConfigError(
      `OIDC sign-in (--oidc-issuer) needs this node's client secret: ${howToSet('oidcClientSecretFile')}, or THINGLOOP_OIDC_CLIENT_SECRET`,
    );
  }
}

/** Where the OIDC issuer sends people back: the configured URL, else the callback route under the node's public URL. */
export function oidcRedirectUrl(config: NodeConfig, publicUrl: string | URL): string {
  return config.oidcRedirectUrl ?? new URL('/api/v1/auth/oidc/callback', publicUrl).href;
}

/** How to change a setting, for error messages: "--mqtt-port or THINGLOOP_MQTT_PORT". */
export function howToSet(key: keyof NodeConfig): string {
  const setting = SETTINGS.find((s) => s.key === key);
  return setting ? `--${setting.flag} or ${setting.env}` : key;
}
