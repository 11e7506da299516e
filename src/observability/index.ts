/**
 * Observability: Prometheus metrics and structured logs. Each node owns its own metric
 * registry (several nodes can share a process in tests); domain modules see only the small
 * reporting interfaces they declare, implemented here.
 */

import pino, { type Logger, type LoggerOptions } from 'pino';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { BindingProtocol, BindingRefusals } from '../gateway/index.js';
import type { IngestMetrics, IngestSource, RejectionReason } from '../ingest/index.js';
import type { WriteMetrics } from '../store/sqlite/index.js';
import type { AuditStats, CredentialRefusal, CredentialRefusals, QuotaName, QuotaReason, QuotaRefusals } from '../tenancy/index.js';

export type { Logger } from 'pino';

export function createLogger(options: { level?: string; name?: string; destination?: pino.DestinationStream } = {}): Logger {
  const config: LoggerOptions = { level: options.level ?? 'info', base: { node: options.name ?? 'thingloop' } };
  return options.destination ? pino(config, options.destination) : pino(config);
}

/** The listener a refusal happened on: the node's own, or any device binding's protocol. */
export type RefusalListener = BindingProtocol | 'mqtts' | 'mqtt-ws' | 'https' | 'websocket' | 'edge-link' | 'webhook';

/**
 * Why a connection, request or packet was refused before reaching the domain. Ingest refusals
 * of values and messages (bad_timestamp, out_of_range, …) are `thingloop_values_rejected_total`.
 */
export type RefusalReason =
  | 'auth_failed'
  | 'rate_limited'
  | 'packet_too_large'
  | 'connect_timeout'
  | 'too_many_unauthenticated'
  | 'client_id_taken'
  | 'queue_full'
  | 'invalid_request'
  | 'body_too_large'
  | 'request_timeout'
  | 'forbidden_target'
  /** A known caller without the permission the route needs, or outside its tenant. */
  | 'forbidden'
  // TLS listeners: a failed handshake, and client certificates (mTLS) that may not log in.
  | 'tls_handshake_failed'
  | 'certificate_expired'
  | 'certificate_not_yet_valid'
  | 'certificate_revoked'
  | 'certificate_unknown_ca'
  | 'certificate_unverified'
  | 'certificate_without_device'
  | 'certificate_unknown_device'
  | 'certificate_wrong_tenant'
  /** A tenant's quota (devices, agents, messages per second, stored bytes): also `thingloop_quota_refusals_total`. */
  | QuotaReason;

/** Counts every refusal, by listener and reason. */
export interface RefusalMetrics {
  refused(listener: RefusalListener, reason: RefusalReason): void;
}

export interface TransportMetrics extends RefusalMetrics {
  setConnectedDevices(count: number): void;
  /** Also counted as a refusal with reason `auth_failed`. */
  authFailed(protocol: 'mqtt' | 'http'): void;
  aclDenied(action: 'publish' | 'subscribe'): void;
}

export class NodeMetrics implements IngestMetrics, WriteMetrics, TransportMetrics, BindingRefusals, QuotaRefusals, CredentialRefusals {
  readonly registry = new Registry();
  private readonly received: Counter<'source'>;
  private readonly accepted: Counter<'source'>;
  private readonly samplesStored: Counter;
  private readonly valuesStored: Counter;
  private readonly rejected: Counter<'reason'>;
  private readonly batchSeconds: Histogram;
  private readonly connected: Gauge;
  private readonly authFailures: Counter<'protocol'>;
  private readonly aclDenials: Counter<'action'>;
  private readonly refusals: Counter<'listener' | 'reason'>;
  private readonly quotaRefusals: Counter<'tenant' | 'quota'>;
  private readonly credentialRefusals: Counter<'reason'>;
  private auditStats: (() => AuditStats) | undefined;

  constructor(queueDepth: () => number) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'thingloop_' });
    this.received = new Counter({
      name: 'thingloop_messages_received_total',
      help: 'Telemetry messages received',
      labelNames: ['source'],
      registers,
    });
    this.accepted = new Counter({
      name: 'thingloop_messages_accepted_total',
      help: 'Telemetry messages with at least one value stored',
      labelNames: ['source'],
      registers,
    });
    this.samplesStored = new Counter({
      name: 'thingloop_samples_stored_total',
      help: 'Timestamped samples committed to the store',
      registers,
    });
    this.valuesStored = new Counter({ name: 'thingloop_values_stored_total', help: 'Property values committed to the store', registers });
    this.rejected = new Counter({
      name: 'thingloop_values_rejected_total',
      help: 'Values or messages refused, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.batchSeconds = new Histogram({
      name: 'thingloop_batch_write_seconds',
      help: 'Time to commit one telemetry batch',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    new Gauge({
      name: 'thingloop_ingest_queue_depth',
      help: 'Samples accepted but not yet committed',
      registers,
      collect() {
        this.set(queueDepth());
      },
    });
    this.connected = new Gauge({ name: 'thingloop_connected_devices', help: 'Devices with a live MQTT session', registers });
    this.authFailures = new Counter({
      name: 'thingloop_auth_failures_total',
      help: 'Refused device credentials',
      labelNames: ['protocol'],
      registers,
    });
    this.aclDenials = new Counter({
      name: 'thingloop_acl_denied_total',
      help: "MQTT publishes/subscribes outside the device's own topics",
      labelNames: ['action'],
      registers,
    });
    this.refusals = new Counter({
      name: 'thingloop_refusals_total',
      help: 'Connections, requests and packets refused before reaching the domain, by listener and reason',
      labelNames: ['listener', 'reason'],
      registers,
    });
    this.quotaRefusals = new Counter({
      name: 'thingloop_quota_refusals_total',
      help: "Requests and messages refused by a tenant's quota, by tenant and quota (devices, agents, messagesPerSecond, storedBytes)",
      labelNames: ['tenant', 'quota'],
      registers,
    });
    this.credentialRefusals = new Counter({
      name: 'thingloop_credential_refusals_total',
      help: 'API keys and session tokens refused, by reason (unknown_key, expired_session, wrong_password…)',
      labelNames: ['reason'],
      registers,
    });
    const audit = () => this.auditStats?.();
    new Gauge({
      name: 'thingloop_audit_entries_buffered',
      help: 'Audit entries recorded but not yet written',
      registers,
      collect() {
        this.set(audit()?.buffered ?? 0);
      },
    });
    new Counter({
      name: 'thingloop_audit_entries_dropped_total',
      help: 'Audit entries lost because the buffer was full (the trail has a hole)',
      registers,
      collect() {
        this.reset();
        this.inc(audit()?.dropped ?? 0);
      },
    });
    new Counter({
      name: 'thingloop_audit_write_failures_total',
      help: 'Audit batches the store refused',
      registers,
      collect() {
        this.reset();
        this.inc(audit()?.writeFailures ?? 0);
      },
    });
  }

  messageReceived(source: IngestSource): void {
    this.received.inc({ source });
  }
  messageAccepted(source: IngestSource, samples: number, values: number): void {
    this.accepted.inc({ source });
    this.samplesStored.inc(samples);
    this.valuesStored.inc(values);
  }
  valueRejected(reason: RejectionReason): void {
    this.rejected.inc({ reason });
  }
  batchCommitted(_samples: number, _rows: number, seconds: number): void {
    this.batchSeconds.observe(seconds);
  }
  setConnectedDevices(count: number): void {
    this.connected.set(count);
  }
  authFailed(protocol: 'mqtt' | 'http'): void {
    this.authFailures.inc({ protocol });
    this.refusals.inc({ listener: protocol, reason: 'auth_failed' });
  }
  refused(listener: RefusalListener, reason: RefusalReason): void {
    this.refusals.inc({ listener, reason });
  }
  /** A binding's own refusal reasons (a malformed frame, an unknown alias, an unreachable peer) are its to name. */
  bindingRefused(protocol: BindingProtocol, reason: string): void {
    this.refusals.inc({ listener: protocol, reason });
  }
  quotaRefused(tenant: string, quota: QuotaName): void {
    this.quotaRefusals.inc({ tenant, quota });
  }
  aclDenied(action: 'publish' | 'subscribe'): void {
    this.aclDenials.inc({ action });
  }
  credentialRefused(reason: CredentialRefusal): void {
    this.credentialRefusals.inc({ reason });
  }
  /** The audit trail's own counts, read at each scrape: a dropped entry is a hole in who-did-what. */
  watchAuditTrail(stats: () => AuditStats): void {
    this.auditStats = stats;
  }
}
