import { Socket } from 'node:net';
import Modbus, { type ModbusTCPClient } from 'jsmodbus';
import type { ModbusEntity } from './register-map.js';

/**
 * One TCP connection to a PLC or a Modbus gateway (host:port), shared by the unit ids behind it.
 * Requests go one at a time (many PLCs and serial gateways answer only one), each with a timeout;
 * the connection is dialled when a request needs it and dropped after a timeout or a frame it
 * cannot trust, so the next request starts on a clean stream.
 */

export type FaultKind = 'unreachable' | 'timeout' | 'exception' | 'malformed';

/** Exception codes of the Modbus application protocol (v1.1b3, section 7). */
export const EXCEPTION_NAMES: Record<number, string> = {
  1: 'IllegalFunction',
  2: 'IllegalDataAddress',
  3: 'IllegalDataValue',
  4: 'ServerDeviceFailure',
  5: 'Acknowledge',
  6: 'ServerDeviceBusy',
  8: 'MemoryParityError',
  10: 'GatewayPathUnavailable',
  11: 'GatewayTargetDeviceFailedToRespond',
};

export class ModbusFault extends Error {
  constructor(
    readonly kind: FaultKind,
    message: string,
    /** The exception code when the PLC answered with one. */
    readonly code?: number,
  ) {
    super(message);
  }

  /** A metrics reason: `modbus_illegal_data_address`, `timeout`, `unreachable`, `malformed_response`. */
  get reason(): string {
    if (this.kind === 'exception') {
      const name = EXCEPTION_NAMES[this.code ?? -1] ?? 'Exception';
      return `modbus_${name.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase()}`;
    }
    return this.kind === 'malformed' ? 'malformed_response' : this.kind;
  }
}

export interface ConnectionOptions {
  connectTimeoutMs: number;
  requestTimeoutMs: number;
}

export type ReadResult = { registers: Buffer; latencyMs: number } | { bits: boolean[]; latencyMs: number };

interface UserRequestErrorShape {
  err: string;
  message: string;
  response?: { body?: { code?: unknown } };
}

const isUserRequestError = (value: unknown): value is UserRequestErrorShape =>
  value !== null && typeof value === 'object' && typeof (value as { err?: unknown }).err === 'string';

export class PlcConnection {
  private socket: Socket | undefined;
  private dialling: Promise<Socket> | undefined;
  private readonly clients = new Map<number, ModbusTCPClient>();
  /** Units asked for on this connection: their clients are made before a socket connects. */
  private readonly units = new Set<number>();
  /** Requests run one after another: the tail of the queue. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    readonly host: string,
    readonly port: number,
    private readonly options: ConnectionOptions,
  ) {}

  get connected(): boolean {
    return this.socket !== undefined && !this.socket.destroyed && this.socket.readyState === 'open';
  }

  read(unitId: number, entity: ModbusEntity, address: number, quantity: number): Promise<ReadResult> {
    return this.enqueue(unitId, async (client) => {
      const started = performance.now();
      if (entity === 'Coil' || entity === 'DiscreteInput') {
        const { response } = await (entity === 'Coil' ? client.readCoils(address, quantity) : client.readDiscreteInputs(address, quantity));
        const latencyMs = performance.now() - started;
        const bits = response.body.valuesAsArray;
        // A bit read answers whole bytes: fewer than asked for is a short frame.
        if (bits.length < quantity || bits.length > quantity + 7) {
          throw new ModbusFault('malformed', `asked for ${quantity} ${entity}s at ${address}, the answer holds ${bits.length} bits`);
        }
        return { bits: Array.from(bits.slice(0, quantity), (bit) => bit === true || bit === 1), latencyMs };
      }
      const { response } =
        entity === 'HoldingRegister'
          ? await client.readHoldingRegisters(address, quantity)
          : await client.readInputRegisters(address, quantity);
      const latencyMs = performance.now() - started;
      const registers = response.body.valuesAsBuffer;
      if (registers.length !== quantity * 2) {
        throw new ModbusFault('malformed', `asked for ${quantity} ${entity}s at ${address}, the answer holds ${registers.length} bytes`);
      }
      return { registers: Buffer.from(registers), latencyMs };
    });
  }

  writeCoil(unitId: number, address: number, value: boolean): Promise<void> {
    return this.enqueue(unitId, async (client) => {
      await client.writeSingleCoil(address, value);
    });
  }

  writeRegisters(unitId: number, address: number, words: number[]): Promise<void> {
    return this.enqueue(unitId, async (client) => {
      if (words.length === 1) await client.writeSingleRegister(address, words[0] as number);
      else await client.writeMultipleRegisters(address, words);
    });
  }

  close(): void {
    this.closed = true;
    this.drop();
  }

  private enqueue<T>(unitId: number, work: (client: ModbusTCPClient) => Promise<T>): Promise<T> {
    const run = async () => {
      if (this.closed) throw new ModbusFault('unreachable', 'the connection is closed');
      const socket = await this.dial();
      const client = this.clientFor(socket, unitId);
      const bytesBefore = socket.bytesRead;
      try {
        return await this.bounded(work(client));
      } catch (error) {
        throw this.fault(error, socket.bytesRead > bytesBefore);
      }
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** jsmodbus times requests out itself; this bound also covers a write that never drains. */
  private bounded<T>(work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new ModbusFault('timeout', `no answer within ${this.options.requestTimeoutMs} ms`)),
        this.options.requestTimeoutMs + 250,
      );
    });
    return Promise.race([work, limit]).finally(() => clearTimeout(timer));
  }

  private fault(error: unknown, answered: boolean): ModbusFault {
    if (error instanceof ModbusFault) {
      if (error.kind === 'timeout' || error.kind === 'malformed') this.drop();
      return error;
    }
    if (isUserRequestError(error)) {
      switch (error.err) {
        case 'ModbusException': {
          const code = Number(error.response?.body?.code);
          const name = EXCEPTION_NAMES[code] ?? `exception ${code}`;
          return new ModbusFault('exception', `${name} (exception code ${code})`, code);
        }
        case 'Timeout':
          this.drop();
          // Bytes came but never made a frame jsmodbus could parse: the stream is garbage, not silent.
          return answered
            ? new ModbusFault('malformed', 'the answer was not a Modbus frame')
            : new ModbusFault('timeout', `no answer within ${this.options.requestTimeoutMs} ms`);
        case 'Offline':
          this.drop();
          return new ModbusFault('unreachable', `${this.host}:${this.port}: ${error.message}`);
        default:
          this.drop();
          return new ModbusFault('malformed', `${error.err}: ${error.message}`);
      }
    }
    return new ModbusFault('malformed', error instanceof Error ? error.message : String(error));
  }

  private clientFor(socket: Socket, unitId: number): ModbusTCPClient {
    this.units.add(unitId);
    let client = this.clients.get(unitId);
    if (!client) {
      client = this.newClient(socket, unitId);
      // jsmodbus learns that its socket is open from the 'connect' event; a unit that joins a
      // connection already open has missed it, and replaying it only marks the clients online.
      if (client.connectionState === 'offline' && this.connected) socket.emit('connect');
    }
    return client;
  }

  private newClient(socket: Socket, unitId: number): ModbusTCPClient {
    const client = new Modbus.client.TCP(socket, unitId, this.options.requestTimeoutMs);
    this.clients.set(unitId, client);
    return client;
  }

  private dial(): Promise<Socket> {
    if (this.socket && this.connected) return Promise.resolve(this.socket);
    if (this.dialling) return this.dialling;
    this.drop();
    const socket = new Socket();
    let failure: Error | undefined;
    this.dialling = new Promise<Socket>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(
          new ModbusFault(
            'unreachable',
            `${this.host}:${this.port} did not accept a connection within ${this.options.connectTimeoutMs} ms`,
          ),
        );
      }, this.options.connectTimeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        this.socket = socket;
        resolve(socket);
      });
      socket.once('close', () => {
        clearTimeout(timer);
        if (this.socket === socket) {
          this.socket = undefined;
          this.clients.clear();
        }
        reject(new ModbusFault('unreachable', `${this.host}:${this.port}: ${failure?.message ?? 'the connection closed'}`));
      });
    }).finally(() => {
      this.dialling = undefined;
    });
    // 'close' follows every 'error'; the error only says why.
    socket.on('error', (error) => {
      failure = error;
    });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    this.clients.clear();
    for (const unitId of this.units) this.newClient(socket, unitId);
    socket.connect({ host: this.host, port: this.port });
    return this.dialling;
  }

  private drop(): void {
    const socket = this.socket;
    this.socket = undefined;
    this.clients.clear();
    socket?.destroy();
  }
}
