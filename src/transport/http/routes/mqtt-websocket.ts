import type { FastifyInstance } from 'fastify';
import { createWebSocketStream } from 'ws';
import type { HttpApiContext } from '../context.js';

/**
 * MQTT over WebSocket (`ws://…/mqtt`, `wss://…/mqtt` on the HTTPS port): the upgraded connection
 * becomes a byte stream for the embedded broker, which admits, guards and logs it in like a TCP
 * client. Public at the HTTP level: the login happens in the MQTT CONNECT.
 */
export async function mqttWebSocketRoutes(app: FastifyInstance, { context }: { context: HttpApiContext }): Promise<void> {
  const broker = context.mqttOverWebSocket;
  if (!broker) return;
  app.route({
    method: 'GET',
    url: '/mqtt',
    config: { access: 'public' },
    schema: {
      summary: 'WebSocket: MQTT 3.1.1 over WebSocket (subprotocol "mqtt"), logging in with the device id and token as on the MQTT port',
      tags: ['devices'],
      hide: true,
    },
    handler: async (_request, reply) =>
      reply
        .code(426)
        .header('upgrade', 'websocket')
        .send({ error: 'invalid', message: 'MQTT over WebSocket: connect with an Upgrade: websocket request (subprotocol mqtt)' }),
    wsHandler: (socket, request) => {
      // Binary frames both ways; the broker reads the stream as it reads a TCP socket.
      const stream = createWebSocketStream(socket);
      stream.on('error', () => stream.destroy());
      broker(stream, request.socket.remoteAddress);
    },
  });
}
