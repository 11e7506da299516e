import { readFileSync } from 'node:fs';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { Counter } from 'prom-client';
import type { Logger, NodeMetrics } from '../observability/index.js';
import { serveHttps } from '../transport/http/index.js';
import type { MqttTlsListener } from '../transport/mqtt/index.js';
import { clientCertificateOf, ReloadingTlsContext, TlsFileError } from '../transport/tls/index.js';
import { StartupError } from './cloud-node.js';
import { howToSet, type NodeConfig } from './config.js';

/** The node's TLS: the reloading context its listeners share, and the MQTTS listener built on it. */
export interface NodeTls {
  context: ReloadingTlsContext;
  mqtt: MqttTlsListener;
  /**
   * Serves the API on HTTPS too; resolves with the bound port. Call before the plaintext listen:
   * it hooks its close (and the end of the certificate watch) into the app's own close.
   */
  serveHttps(app: FastifyInstance): Promise<number>;
  close(): Promise<void>;
}

/**
 * Opens the certificate files when TLS is configured (undefined when not). Refuses to start on a
 * half configuration, unreadable files, or `--plaintext false` without a certificate: a node that
 * silently listened on nothing, or in the clear, would be worse than one that does not start.
 */
export async function openNodeTls(config: NodeConfig, parts: { metrics: NodeMetrics; logger: Logger }): Promise<NodeTls | undefined> {
  const { tlsCert: cert, tlsKey: key, tlsCa: ca, tlsCrl: crl } = config;
  if (!cert || !key) {
    if (!config.plaintext) {
      throw new StartupError(
        `--plaintext false leaves no listener without a certificate: give ${howToSet('tlsCert')} and ${howToSet('tlsKey')} (thingloop certs dev --out DIR makes some to try), or keep plaintext on`,
      );
    }
    if (cert || key) throw new StartupError(`TLS needs both the certificate and its key: ${howToSet('tlsCert')} and ${howToSet('tlsKey')}`);
    // A CA alone is what an edge trusts the cloud with (cloudTrust); a revocation list alone revokes nothing.
    if (crl) throw new StartupError(`${howToSet('tlsCrl')} needs TLS on: give ${howToSet('tlsCert')} and ${howToSet('tlsKey')}`);
    return undefined;
  }
  const logger = parts.logger.child({ component: 'tls' });
  const reloads = new Counter({
    name: 'thingloop_tls_reloads_total',
    help: 'Certificate file changes: applied to new connections, or failed (the previous certificate stays in use)',
    labelNames: ['outcome'],
    registers: [parts.metrics.registry],
  });
  let context: ReloadingTlsContext;
  try {
    context = await ReloadingTlsContext.open(
      { cert, key, ...(ca ? { ca } : {}), ...(crl ? { crl } : {}) },
      {
        observer: {
          applied: (material) => {
            reloads.inc({ outcome: 'applied' });
            logger.info(material.summary, 'TLS certificate files reloaded: new connections use them');
          },
          failed: (error) => {
            reloads.inc({ outcome: 'failed' });
            logger.error({ err: error.message }, 'TLS certificate files changed but cannot be used: the previous certificate stays in use');
          },
        },
      },
    );
  } catch (error) {
    if (error instanceof TlsFileError) throw new StartupError(error.message);
    throw error;
  }
  reloads.inc({ outcome: 'applied' }, 0);
  reloads.inc({ outcome: 'failed' }, 0);
  logger.info(context.material.summary, ca ? 'TLS on: device client certificates from the CA are accepted on MQTTS' : 'TLS on');
  const tls = context;
  return {
    context,
    mqtt: {
      port: config.mqttsPort,
      host: config.mqttHost,
      createServer: () => {
        // A certificate is asked for, never required: token devices connect on the same port.
        // Verification failures are judged at login (refused with a reason and counted), not by the handshake.
        const server = createTlsServer({ ...tls.secureContextOptions, requestCert: ca !== undefined, rejectUnauthorized: false });
        tls.follow(server);
        return server;
      },
      clientCertificate: clientCertificateOf,
      closed: (server: TlsServer) => tls.release(server),
    },
    async serveHttps(app) {
      let close: () => Promise<void> = async () => undefined;
      app.addHook('onClose', async () => {
        await close();
        await tls.close();
      });
      let listener: Awaited<ReturnType<typeof serveHttps>>;
      try {
        listener = await serveHttps(app, {
          port: config.httpsPort,
          host: config.httpHost,
          tls,
          requestTimeoutMs: config.httpRequestTimeoutMs,
          handshakeFailed: () => parts.metrics.refused('https', 'tls_handshake_failed'),
        });
      } catch (error) {
        throw httpsPortError(error, config.httpsPort);
      }
      close = () => listener.close();
      return listener.port;
    },
    close: () => context.close(),
  };
}

/**
 * The CA an edge checks the cloud's certificate against: --cloud-ca, else --tls-ca (one dev CA
 * for both), else none (the system's CAs). Read at every connection attempt, so a renewed file
 * needs no restart.
 */
export function cloudTrust(config: NodeConfig): (() => string) | undefined {
  const file = config.cloudCa ?? config.tlsCa;
  if (!file) return undefined;
  return () => {
    try {
      return readFileSync(file, 'utf8');
    } catch (error) {
      throw new StartupError(`cannot read the cloud's CA ${file} (${howToSet('cloudCa')}): ${(error as Error).message}`);
    }
  };
}

function httpsPortError(error: unknown, port: number): Error {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE')
    return new StartupError(`HTTPS port ${port} is already in use: choose another with ${howToSet('httpsPort')} (0 picks a free port)`);
  if (code === 'EACCES')
    return new StartupError(`HTTPS port ${port} needs privileges: choose a port above 1023 with ${howToSet('httpsPort')}`);
  return error as Error;
}

/**
 * Which MQTT listener a failed broker start was about: the TLS port when the error names it (a
 * taken port says which), else the plaintext one. For the start-up message naming the flag to change.
 */
export function mqttListenerOf(error: unknown, config: NodeConfig): { what: string; port: number; key: 'mqttPort' | 'mqttsPort' } {
  const port = typeof error === 'object' && error !== null && 'port' in error ? error.port : undefined;
  const onTls = config.tlsCert !== undefined && port === config.mqttsPort && port !== config.mqttPort;
  return onTls ? { what: 'MQTTS', port: config.mqttsPort, key: 'mqttsPort' } : { what: 'MQTT', port: config.mqttPort, key: 'mqttPort' };
}
