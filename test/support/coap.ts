/**
 * CoAP devices for tests, on the `coap` package's client (a library we did not write): requests
 * with a device token, observations, and agents bound to their own loopback address so one
 * "device" can be braked while another is not.
 */
import { createSocket, type Socket } from 'node:dgram';
import { Agent, type IncomingMessage, type ObserveReadStream } from 'coap';

export const TOKEN_OPTION = '65003';

export interface CoapAnswer {
  code: string;
  body: unknown;
  text: string;
}

export interface CoapCall {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  pathname: string;
  /** Sent as option 65003 unless `tokenInQuery`. */
  token?: string;
  tokenInQuery?: boolean;
  query?: string;
  payload?: Buffer | string | unknown;
  contentFormat?: string;
  confirmable?: boolean;
  /** RFC 7959 Block1 size exponent (0–6: 16–1024 bytes per block). */
  block1Szx?: number;
}

const sockets = new WeakMap<Agent, Socket>();

/** An agent on its own UDP socket bound to `address` (any 127.x.y.z works on loopback). */
export async function coapAgent(address = '127.0.0.1'): Promise<Agent> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, address, () => resolve()));
  const agent = new Agent({ type: 'udp4', socket });
  sockets.set(agent, socket);
  return agent;
}

/** Aborts the agent's requests and closes its socket (an agent given a socket leaves it open and never reports closing). */
export async function closeAgent(agent: Agent): Promise<void> {
  agent.close();
  const socket = sockets.get(agent);
  sockets.delete(agent);
  if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
}

function bodyOf(payload: Buffer): { body: unknown; text: string } {
  const text = payload.toString('utf8');
  try {
    return { body: text === '' ? undefined : JSON.parse(text), text };
  } catch {
    return { body: undefined, text };
  }
}

function outgoing(agent: Agent, port: number, call: CoapCall) {
  const queries = [call.query, call.token !== undefined && call.tokenInQuery ? `t=${call.token}` : undefined].filter(
    (q) => q !== undefined,
  );
  const options: Record<string, Buffer | string> = {};
  if (call.token !== undefined && !call.tokenInQuery) options[TOKEN_OPTION] = Buffer.from(call.token);
  if (call.contentFormat) options['Content-Format'] = call.contentFormat;
  const req = agent.request({
    hostname: '127.0.0.1',
    port,
    method: call.method ?? 'GET',
    pathname: call.pathname,
    query: queries.join('&'),
    confirmable: call.confirmable ?? true,
    options,
  });
  if (call.block1Szx !== undefined) req.setOption('Block1', Buffer.of(call.block1Szx));
  const payload = call.payload;
  const bytes =
    payload === undefined
      ? undefined
      : Buffer.isBuffer(payload)
        ? payload
        : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload));
  return { req, bytes };
}

/** One request; resolves with the answer, rejects on the client's own timeout or error. */
export function coapRequest(agent: Agent, port: number, call: CoapCall): Promise<CoapAnswer> {
  return new Promise((resolve, reject) => {
    const { req, bytes } = outgoing(agent, port, call);
    req.on('response', (res: IncomingMessage) => resolve({ code: res.code, ...bodyOf(res.payload) }));
    req.on('error', reject);
    req.on('timeout', reject);
    req.end(bytes);
  });
}

/** Fires a request without waiting for (or expecting) an answer. */
export function coapSend(agent: Agent, port: number, call: CoapCall): void {
  const { req, bytes } = outgoing(agent, port, { confirmable: false, ...call });
  req.on('error', () => undefined);
  req.on('timeout', () => undefined);
  req.end(bytes);
}

export interface Observation {
  /** The first answer (the resource's state when observing began). */
  first: CoapAnswer;
  /** The next notification, or a rejection after `ms`. */
  next(ms?: number): Promise<unknown>;
  close(): void;
}

/** Observes a resource (GET with Observe 0): every notification is collected in order. */
export function coapObserve(agent: Agent, port: number, pathname: string, token: string): Promise<Observation> {
  const options: Record<string, Buffer> = { [TOKEN_OPTION]: Buffer.from(token) };
  return new Promise((resolve, reject) => {
    const req = agent.request({ hostname: '127.0.0.1', port, method: 'GET', pathname, observe: true, options });
    req.on('error', reject);
    req.on('timeout', reject);
    req.on('response', (stream: ObserveReadStream) => {
      const queued: unknown[] = [];
      const waiting: ((value: unknown) => void)[] = [];
      let first: CoapAnswer | undefined;
      stream.on('data', (chunk: Buffer) => {
        const { body, text } = bodyOf(chunk);
        if (!first) {
          first = { code: stream.code, body, text };
          resolve({
            first,
            next(ms = 5000) {
              const ready = queued.shift();
              if (ready !== undefined) return Promise.resolve(ready);
              return new Promise((resolveNext, rejectNext) => {
                const timer = setTimeout(() => {
                  waiting.splice(waiting.indexOf(settle), 1);
                  rejectNext(new Error(`no notification on ${pathname} within ${ms} ms`));
                }, ms);
                const settle = (value: unknown) => {
                  clearTimeout(timer);
                  resolveNext(value);
                };
                waiting.push(settle);
              });
            },
            close: () => stream.close(),
          });
          return;
        }
        const settle = waiting.shift();
        if (settle) settle(body);
        else queued.push(body);
      });
      // An error answer ends the observation before any data.
      stream.on('end', () => {
        if (!first)
          resolve({
            first: { code: stream.code, ...bodyOf(stream.payload) },
            next: () => Promise.reject(new Error('not observing')),
            close: () => undefined,
          });
      });
    });
    req.end();
  });
}
