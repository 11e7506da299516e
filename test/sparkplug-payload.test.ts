/**
 * Sparkplug B payload reading and model derivation, on payloads encoded by the Eclipse Tahu
 * library (`sparkplug-payload`) and, where the library cannot make them, by its protobuf schema.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import proto from 'sparkplug-payload/lib/sparkplugPayloadProto.js';
import { CodecRegistry } from '../src/gateway/index.js';
import { findModelProblems } from '../src/model/index.js';
import {
  decodeSparkplugPayload,
  encodeCommandPayload,
  modelIdFor,
  readBirth,
  readMetrics,
  SPARKPLUG_CONTENT_TYPE,
  SparkplugDataType,
  sparkplugCodec,
  writeOf,
} from '../src/transport/sparkplug/index.js';
import { sparkplug } from './support/sparkplug.js';

const Payload = proto.org.eclipse.tahu.protobuf.Payload;

describe('Sparkplug B payloads and births', () => {
  test('integers of every width keep their sign; 64-bit values beyond 2^53 are refused, not rounded', () => {
    const bytes = sparkplug.encodePayload({
      timestamp: 1_767_225_600_000,
      seq: 200,
      metrics: [
        { name: 'i8', type: 'Int8', value: -5 },
        { name: 'i16', type: 'Int16', value: -300 },
        { name: 'i32', type: 'Int32', value: -70000 },
        { name: 'u32', type: 'UInt32', value: 4_000_000_000 },
        { name: 'i64', type: 'Int64', value: -9_007_199_254_740_991 },
        { name: 'big', type: 'UInt64', value: '18446744073709551615' as never },
        { name: 'f', type: 'Float', value: 1.5 },
        { name: 'txt', type: 'String', value: 'ok' },
        { name: 'nothing', type: 'Double', value: null },
      ],
    });
    const payload = decodeSparkplugPayload(bytes);
    assert.equal(payload.seq, 200);
    assert.equal(payload.timestamp, 1_767_225_600_000);
    const { certificate, problems } = readBirth({ group: 'g', edgeNode: 'e' }, payload);
    assert.deepEqual(problems, []);
    const read = readMetrics(certificate, payload, 0);
    assert.deepEqual(read.samples, [
      { ts: 1_767_225_600_000, i8: -5, i16: -300, i32: -70000, u32: 4_000_000_000, i64: -9_007_199_254_740_991, f: 1.5, txt: 'ok' },
    ]);
    assert.equal(read.problems.length, 1);
    assert.match(read.problems[0]?.message ?? '', /"big".*UInt64/);
  });

  test('an Int8 written zero-extended (251) by another edge node still reads -5', () => {
    const bytes = Payload.encode(
      Payload.create({ metrics: [Payload.Metric.create({ name: 'x', datatype: SparkplugDataType.Int8, intValue: 251 })] }),
    ).finish();
    const payload = decodeSparkplugPayload(bytes);
    const { certificate } = readBirth({ group: 'g', edgeNode: 'e' }, payload);
    assert.equal(readMetrics(certificate, payload, 1_767_225_600_000).samples[0]?.x, -5);
  });

  test('metric names become unique affordance names; the derived model is a valid thing model', () => {
    const payload = decodeSparkplugPayload(
      sparkplug.encodePayload({
        metrics: [
          { name: 'Inputs/A', type: 'Boolean', value: true },
          { name: 'Inputs A', type: 'Boolean', value: true },
          { name: 'ts', type: 'Int32', value: 1 },
          { name: '3phase/V', type: 'Float', value: 230 },
          { name: 'bdSeq', type: 'Int64', value: 0 },
          { name: 'Node Control/Rebirth', type: 'Boolean', value: false },
          { name: 'Node Control/Scan Rate', type: 'Int32', value: 1000 },
          { name: 'Blob', type: 'Bytes', value: new Uint8Array([1]) },
        ],
      }),
    );
    const { certificate } = readBirth({ group: 'g', edgeNode: 'e' }, payload);
    assert.deepEqual(Object.keys(certificate.model.properties ?? {}).sort(), [
      'Inputs_A',
      'Inputs_A_2',
      'Node_Control_Scan_Rate',
      'm_3phase_V',
      'ts_metric',
    ]);
    assert.deepEqual(Object.keys(certificate.model.actions ?? {}), ['Node_Control_Rebirth']);
    assert.deepEqual(findModelProblems(certificate.model), []);
    // The same metrics in another order: the same names, the same document.
    const reversed = readBirth({ group: 'g', edgeNode: 'e' }, { ...payload, metrics: [...payload.metrics].reverse() });
    assert.deepEqual(reversed.certificate.model, certificate.model);
  });

  test('birth problems: no name, no datatype, a repeated name or alias', () => {
    const bytes = Payload.encode(
      Payload.create({
        metrics: [
          Payload.Metric.create({ alias: 1, datatype: SparkplugDataType.Int32, intValue: 1 }),
          Payload.Metric.create({ name: 'untyped', intValue: 1 }),
          Payload.Metric.create({ name: 'a', alias: 2, datatype: SparkplugDataType.Int32, intValue: 1 }),
          Payload.Metric.create({ name: 'b', alias: 2, datatype: SparkplugDataType.Int32, intValue: 1 }),
          Payload.Metric.create({ name: 'a', datatype: SparkplugDataType.Int32, intValue: 1 }),
        ],
      }),
    ).finish();
    const { certificate, problems } = readBirth({ group: 'g', edgeNode: 'e' }, decodeSparkplugPayload(bytes));
    assert.equal(problems.length, 4);
    assert.deepEqual([...certificate.byName.keys()].sort(), ['a', 'b']);
    assert.equal(certificate.byAlias.get(2)?.name, 'a');
  });

  test('model ids are URL-safe and bounded', () => {
    assert.equal(modelIdFor({ group: 'Plant 1', edgeNode: 'gw:1', device: 'pump#1' }), 'sparkplug.Plant_1.gw_1.pump_1');
    const long = modelIdFor({ group: 'g'.repeat(100), edgeNode: 'e'.repeat(100) });
    assert.ok(long.length <= 128);
    assert.notEqual(long, modelIdFor({ group: 'g'.repeat(100), edgeNode: `${'e'.repeat(99)}f` }));
  });

  test('writes take the birth datatype and its range; commands decode with the Tahu library', () => {
    const definition = { name: 'Setpoint', alias: 11, datatype: SparkplugDataType.UInt8 };
    assert.deepEqual(writeOf(definition, 200), { name: 'Setpoint', alias: 11, datatype: SparkplugDataType.UInt8, value: 200 });
    assert.ok('problem' in writeOf(definition, 256));
    assert.ok('problem' in writeOf(definition, 1.5));
    assert.ok('problem' in writeOf(definition, 'x'));
    assert.ok('problem' in writeOf({ name: 'On', datatype: SparkplugDataType.Boolean }, 1));
    const write = writeOf({ name: 'Offset', datatype: SparkplugDataType.Int32 }, -12);
    assert.ok(!('problem' in write));
    const decoded = sparkplug.decodePayload(encodeCommandPayload([write], 1_767_225_600_000));
    assert.equal(decoded.metrics?.[0]?.name, 'Offset');
    assert.equal(decoded.metrics?.[0]?.type, 'Int32');
    assert.equal(decoded.metrics?.[0]?.value, -12);
  });

  test('bytes that are not a Sparkplug payload throw (the host counts and drops them)', () => {
    assert.throws(() => decodeSparkplugPayload(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f])));
  });

  test('the Sparkplug codec: a payload with named metrics is a telemetry body; other bytes are malformed_payload', () => {
    const codecs = new CodecRegistry();
    codecs.register(sparkplugCodec(() => 1_767_225_600_000));
    const bytes = Buffer.from(
      sparkplug.encodePayload({
        timestamp: 1_767_225_601_000,
        metrics: [
          { name: 'Flow/PV', type: 'Double', value: 3.25 },
          { name: 'Running', type: 'Boolean', value: true },
          { name: 'Later', type: 'Int32', value: 7, timestamp: 1_767_225_602_000 } as never,
        ],
      }),
    );
    assert.deepEqual(codecs.decode(bytes, `${SPARKPLUG_CONTENT_TYPE}; charset=binary`), {
      body: [
        { ts: 1_767_225_601_000, Flow_PV: 3.25, Running: true },
        { ts: 1_767_225_602_000, Later: 7 },
      ],
    });
    const refused = codecs.decode(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]), SPARKPLUG_CONTENT_TYPE);
    assert.ok('reason' in refused && refused.reason === 'malformed_payload');
  });
});
