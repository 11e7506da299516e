import { createServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import type { FastifyInstance } from 'fastify';

/** The node's TLS context as the HTTPS server follows it (a `ReloadingTlsContext`). */
export interface FollowedTlsContext {
  readonly secureContextOptions: SecureContextOptions;
  follow(server: { setSecureContext(options: SecureContextOptions): void }): void;
  release(server: { setSecureContext(options: SecureContextOptions): void }): void;
}

export interface HttpsListenerOptions {
  port: number;
  host: string;
  tls: FollowedTlsContext;
  /** The same deadline the plaintext server has for a whole request. */
  requestTimeoutMs: number;
  /** A failed handshake (plain HTTP to the TLS port, an old protocol, a client that does not trust us). */
  handshakeFailed(): void;
}

/** A running HTTPS listener of the API. */
export interface HttpsListener {
  port: number;
  close(): Promise<void>;
}

/**
 * Serves the same fastify app over HTTPS: a second server whose requests go through the app's
 * router (`app.routing`) and whose upgrades go to the app's own server, where @fastify/websocket
 * dispatches them. Routes, access checks, hooks and WebSockets are therefore the same on both;
 * client errors get the app's own answer. The certificate follows the node's reloads.
 */
export async function serveHttps(app: FastifyInstance, options: HttpsListenerOptions): Promise<HttpsListener> {
  await app.ready();
  const server: Server = createServer(
    {
      ...options.tls.secureContextOptions,
      requestTimeout: options.requestTimeoutMs,
      headersTimeout: Math.min(60_000, options.requestTimeoutMs),
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(options.requestTimeoutMs / 2))),
    },
    (request, response) => app.routing(request, response),
  );
  server.on('upgrade', (request, socket, head) => app.server.emit('upgrade', request, socket, head));
  server.on('clientError', (error, socket) => app.server.emit('clientError', error, socket));
  server.on('tlsClientError', (_error, socket: Socket) => {
    options.handshakeFailed();
    socket.destroy();
  });
  options.tls.follow(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    port,
    async close() {
      options.tls.release(server);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // Requests still running get the time the app's own close gives them; then the rest goes.
      const forced = setTimeout(() => server.closeAllConnections(), 5_000);
      forced.unref();
      await closed;
      clearTimeout(forced);
    },
  };
}
