/**
 * The pure half of the Modbus binding: what a written value becomes in registers reads back as the
 * same value for every type, word and byte order, scale and offset; addresses in Modicon and
 * zero-based notation; coalescing stays within the protocol's limits.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  coalesce,
  decodeRegisters,
  encodeRegisters,
  protocolAddress,
  type RegisterPoint,
  type RegisterType,
} from '../src/transport/modbus/index.js';

const RANGES: Record<Exclude<RegisterType, 'bool'>, [number, number]> = {
  int16: [-32_768, 32_767],
  uint16: [0, 65_535],
  int32: [-2_147_483_648, 2_147_483_647],
  uint32: [0, 4_294_967_295],
  float32: [-1e6, 1e6],
};

const point = (type: RegisterType, extra: Partial<RegisterPoint> = {}): RegisterPoint => ({
  property: 'p',
  host: '127.0.0.1',
  port: 502,
  unitId: 1,
  entity: 'HoldingRegister',
  address: 0,
  quantity: type === 'int16' || type === 'uint16' ? 1 : 2,
  type,
  mostSignificantWord: true,
  mostSignificantByte: true,
  scale: 1,
  offset: 0,
  pollingMs: 1000,
  ...extra,
});

const wordsToBytes = (words: number[]) => {
  const bytes = Buffer.alloc(words.length * 2);
  words.forEach((word, i) => {
    bytes.writeUInt16BE(word, i * 2);
  });
  return bytes;
};

describe('modbus register map', () => {
  test('encode then decode gives the value back (every type, word and byte order, scale, offset)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<Exclude<RegisterType, 'bool'>>('int16', 'uint16', 'int32', 'uint32', 'float32'),
        fc.boolean(),
        fc.boolean(),
        fc.constantFrom(1, 0.1, 0.01, 10),
        fc.constantFrom(0, -40, 273.15),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (type, msw, msb, scale, offset, fraction) => {
          const [min, max] = RANGES[type];
          const raw = type === 'float32' ? min + (max - min) * fraction : Math.round(min + (max - min) * fraction);
          const value = raw * scale + offset;
          const shape = point(type, { mostSignificantWord: msw, mostSignificantByte: msb, scale, offset });
          const words = encodeRegisters(shape, value);
          assert.ok(Array.isArray(words), String(words));
          assert.equal(words.length, shape.quantity);
          const back = decodeRegisters(shape, wordsToBytes(words));
          const tolerance =
            type === 'float32'
              ? Math.abs(value) * 1e-6 + Math.abs(scale) * 1e-6 + 1e-6
              : Math.abs(value) * 1e-12 + Math.abs(scale) * 1e-6 + 1e-9;
          assert.ok(Math.abs(back - value) <= tolerance, `${type} ${value} came back as ${back}`);
        },
      ),
      { numRuns: 500 },
    );
  });

  test('values that do not fit the register are refused with the reason', () => {
    assert.match(String(encodeRegisters(point('int16'), 40_000)), /40000 is out of range for int16/);
    assert.match(String(encodeRegisters(point('uint16', { scale: 0.1 }), 7000)), /out of range for uint16 after scale 0.1/);
    assert.match(String(encodeRegisters(point('uint32'), -1)), /out of range/);
    assert.match(String(encodeRegisters(point('float32'), 'hot')), /is not a number/);
  });

  test('addresses: Modicon numbers per entity, one-based by default, zero-based on request', () => {
    assert.equal(protocolAddress(40001, 'HoldingRegister', false), 0);
    assert.equal(protocolAddress(400010, 'HoldingRegister', false), 9);
    assert.equal(protocolAddress(30005, 'InputRegister', false), 4);
    assert.equal(protocolAddress(10001, 'DiscreteInput', false), 0);
    assert.equal(protocolAddress(1, 'Coil', false), 0);
    assert.equal(protocolAddress(5, 'HoldingRegister', false), 4);
    assert.equal(protocolAddress(40001, 'HoldingRegister', true), 40001);
    assert.match(String(protocolAddress(0, 'HoldingRegister', false)), /counts from 1/);
    assert.match(String(protocolAddress(70_000, 'HoldingRegister', true)), /beyond 65535/);
  });

  test('coalescing: gaps up to the limit join, entities and units never mix, blocks stay within 125 registers', () => {
    const at = (address: number, extra: Partial<RegisterPoint> = {}) => point('uint16', { property: `p${address}`, address, ...extra });
    const blocks = coalesce([at(0), at(1), at(17), at(40), at(2, { entity: 'InputRegister' }), at(3, { unitId: 2 })]);
    assert.deepEqual(
      blocks.map((block) => [block.unitId, block.entity, block.address, block.quantity]),
      [
        [1, 'HoldingRegister', 0, 18],
        [1, 'HoldingRegister', 40, 1],
        [1, 'InputRegister', 2, 1],
        [2, 'HoldingRegister', 3, 1],
      ],
    );
    const many = coalesce(Array.from({ length: 300 }, (_, i) => at(i)));
    assert.ok(many.every((block) => block.quantity <= 125));
    assert.equal(
      many.reduce((sum, block) => sum + block.points.length, 0),
      300,
    );
    assert.equal(many.length, 3);
  });
});
