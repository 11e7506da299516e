import { once } from 'node:events';
import ModbusRTU from 'modbus-serial';

/**
 * A simulated PLC on Modbus TCP: `modbus-serial`'s ServerTCP (a library Thingloop did not write)
 * in front of register banks per unit id. Reads of addresses a unit does not have answer
 * IllegalDataAddress, as a real PLC does; writes reach `onWrite` so a plant can react.
 */

export type PlcEntity = 'Coil' | 'DiscreteInput' | 'InputRegister' | 'HoldingRegister';

export interface PlcUnit {
  coils: Map<number, boolean>;
  discreteInputs: Map<number, boolean>;
  inputRegisters: Map<number, number>;
  holdingRegisters: Map<number, number>;
}

export interface PlcWrite {
  unitId: number;
  entity: 'Coil' | 'HoldingRegister';
  address: number;
  value: number | boolean;
}

export interface PlcRequestCounts {
  reads: number;
  writes: number;
  byEntity: Record<PlcEntity, number>;
}

export interface ModbusPlcOptions {
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Called after a coil or register was written by a client. */
  onWrite?: (write: PlcWrite) => void;
}

const ILLEGAL_DATA_ADDRESS = 2;

class ModbusException extends Error {
  constructor(
    readonly modbusErrorCode: number,
    message: string,
  ) {
    super(message);
  }
}

const newUnit = (): PlcUnit => ({ coils: new Map(), discreteInputs: new Map(), inputRegisters: new Map(), holdingRegisters: new Map() });

/** The words of a value as a PLC stores it (big-endian bytes, high word first unless `lowWordFirst`). */
export function wordsOf(type: 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32', value: number, lowWordFirst = false): number[] {
  const bytes = Buffer.alloc(type === 'int16' || type === 'uint16' ? 2 : 4);
  if (type === 'int16') bytes.writeInt16BE(Math.round(value), 0);
  else if (type === 'uint16') bytes.writeUInt16BE(Math.round(value), 0);
  else if (type === 'int32') bytes.writeInt32BE(Math.round(value), 0);
  else if (type === 'uint32') bytes.writeUInt32BE(Math.round(value), 0);
  else bytes.writeFloatBE(value, 0);
  const words = bytes.length === 2 ? [bytes.readUInt16BE(0)] : [bytes.readUInt16BE(0), bytes.readUInt16BE(2)];
  return lowWordFirst ? words.reverse() : words;
}

export class ModbusPlc {
  readonly units = new Map<number, PlcUnit>();
  readonly requests: PlcRequestCounts = {
    reads: 0,
    writes: 0,
    byEntity: { Coil: 0, DiscreteInput: 0, InputRegister: 0, HoldingRegister: 0 },
  };

  private constructor(
    private readonly server: ModbusRTU.ServerTCP,
    readonly host: string,
    readonly port: number,
  ) {}

  static async start(options: ModbusPlcOptions = {}): Promise<ModbusPlc> {
    const host = options.host ?? '127.0.0.1';
    let plc: ModbusPlc | undefined;
    const unitOf = (unitId: number) => plc?.unit(unitId) ?? newUnit();
    const count = (entity: PlcEntity, length: number) => {
      if (!plc) return;
      plc.requests.reads++;
      plc.requests.byEntity[entity] += length > 0 ? 1 : 0;
    };
    const readWords = (bank: Map<number, number>, entity: PlcEntity, address: number, length: number): number[] => {
      const words: number[] = [];
      for (let i = 0; i < length; i++) {
        const word = bank.get(address + i);
        if (word === undefined) throw new ModbusException(ILLEGAL_DATA_ADDRESS, `no ${entity} ${address + i}`);
        words.push(word);
      }
      return words;
    };
    const readBit = (bank: Map<number, boolean>, entity: PlcEntity, address: number): boolean => {
      const bit = bank.get(address);
      if (bit === undefined) throw new ModbusException(ILLEGAL_DATA_ADDRESS, `no ${entity} ${address}`);
      return bit;
    };
    const written = (write: PlcWrite) => {
      if (plc) plc.requests.writes++;
      options.onWrite?.(write);
    };
    // Bit reads come one bit at a time through the vector; a read is counted at its first bit.
    const vector: ModbusRTU.IServiceVector = {
      getCoil: (address: number, unitId: number) => readBit(unitOf(unitId).coils, 'Coil', address),
      getDiscreteInput: (address: number, unitId: number) => readBit(unitOf(unitId).discreteInputs, 'DiscreteInput', address),
      getInputRegister: (address: number, unitId: number) => {
        count('InputRegister', 1);
        return readWords(unitOf(unitId).inputRegisters, 'InputRegister', address, 1)[0] as number;
      },
      getHoldingRegister: (address: number, unitId: number) => {
        count('HoldingRegister', 1);
        return readWords(unitOf(unitId).holdingRegisters, 'HoldingRegister', address, 1)[0] as number;
      },
      getMultipleInputRegisters: (address: number, length: number, unitId: number) => {
        count('InputRegister', length);
        return readWords(unitOf(unitId).inputRegisters, 'InputRegister', address, length);
      },
      getMultipleHoldingRegisters: (address: number, length: number, unitId: number) => {
        count('HoldingRegister', length);
        return readWords(unitOf(unitId).holdingRegisters, 'HoldingRegister', address, length);
      },
      setCoil: (address: number, value: boolean, unitId: number) => {
        const unit = unitOf(unitId);
        if (!unit.coils.has(address)) throw new ModbusException(ILLEGAL_DATA_ADDRESS, `no Coil ${address}`);
        unit.coils.set(address, value);
        written({ unitId, entity: 'Coil', address, value });
      },
      setRegister: (address: number, value: number, unitId: number) => {
        const unit = unitOf(unitId);
        if (!unit.holdingRegisters.has(address)) throw new ModbusException(ILLEGAL_DATA_ADDRESS, `no HoldingRegister ${address}`);
        unit.holdingRegisters.set(address, value);
        written({ unitId, entity: 'HoldingRegister', address, value });
      },
    };
    // ServerTCP reads `port || 502`: the string "0" gets past that and still asks for a free port.
    const server = new ModbusRTU.ServerTCP(vector, { host, port: options.port ? options.port : ('0' as unknown as number), unitID: 255 });
    server.on('socketError', () => {});
    server.on('error', () => {});
    const listener = listenerOf(server);
    if (!listener.listening) {
      await Promise.race([
        once(server, 'initialized'),
        once(server, 'serverError').then(([error]) => {
          throw error instanceof Error ? error : new Error(String(error));
        }),
      ]);
    }
    const address = listener.address();
    const port = address !== null && typeof address === 'object' ? address.port : (options.port ?? 0);
    plc = new ModbusPlc(server, host, port);
    return plc;
  }

  unit(unitId: number): PlcUnit {
    let unit = this.units.get(unitId);
    if (!unit) {
      unit = newUnit();
      this.units.set(unitId, unit);
    }
    return unit;
  }

  /** Stores a typed value from `address` on (big-endian words, high word first unless `lowWordFirst`). */
  setValue(
    unitId: number,
    entity: 'InputRegister' | 'HoldingRegister',
    address: number,
    type: 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32',
    value: number,
    lowWordFirst = false,
  ): void {
    const bank = entity === 'InputRegister' ? this.unit(unitId).inputRegisters : this.unit(unitId).holdingRegisters;
    wordsOf(type, value, lowWordFirst).forEach((word, i) => {
      bank.set(address + i, word);
    });
  }

  /** Open client connections. */
  get clients(): number {
    return this.server.socks.size;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

interface Listener {
  listening: boolean;
  address(): ReturnType<import('node:net').Server['address']>;
}

/** ServerTCP keeps its net.Server private; the bound port (asked as 0) is only known from it. */
function listenerOf(server: ModbusRTU.ServerTCP): Listener {
  const record: object = server;
  if ('_server' in record && record._server !== null && typeof record._server === 'object' && 'address' in record._server) {
    return record._server as Listener;
  }
  throw new Error('modbus-serial ServerTCP no longer keeps its net.Server in _server');
}
