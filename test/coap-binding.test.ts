/**
 * The CoAP binding against a real CoAP client (the `coap` package's `request`), with a real node's
 * registry for device tokens and a recording uplink standing in for the gateway: what the binding
 * hands up, when it answers, what it refuses and counts.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import type { Agent } from 'coap';
import { GuessingBrake } from '../src/access/index.js';
import type { DesiredState, DeviceMessage, DeviceUplink, MessageSource } from '../src/gateway/index.js';
import { createLogger } from '../src/observability/index.js';
import { type DeviceRecord, FleetDirectory } from '../src/registry/index.js';
import { ManualClock } from '../src/time/index.js';
import { CoapBinding } from '../src/transport/coap/index.js';
import { closeAgent, coapAgent, coapObserve, coapRequest, coapSend } from './support/coap.js';
import { startTestNode, type TestNode } from './support/harness.js';
import { until } from './support/wait.js';

interface Received {
  device: string;
  message: DeviceMessage;
  source: MessageSource;
}

/** The gateway's side of the contract, recorded; `gate` holds receive back (a store still writing). */
class RecordingUplink implements DeviceUplink {
  received: Received[] = [];
  refusals: string[] = [];
  errors: { device: string; message: string; reason: string | undefined }[] = [];
  gate: Promise<void> | undefined;
  react: ((device: DeviceRecord, message: DeviceMessage) => Promise<void>) | undefined;

  constructor(private readonly clock: ManualClock) {}

  async receive(device: DeviceRecord, message: DeviceMessage, source: MessageSource): Promise<void> {
    this.received.push({ device: device.id, message, source });
    if (this.gate && message.kind !== 'presence') await this.gate;
    await this.react?.(device, message);
  }
  reportError(device: DeviceRecord, message: string, reason?: string): void {
    this.errors.push({ device: device.id, message, reason });
  }
  refused(_protocol: string, reason: string): void {
    this.refusals.push(reason);
  }
  now(): number {
    return this.clock.now();
  }
  of(device: string, kind: DeviceMessage['kind']): DeviceMessage[] {
    return this.received.filter((r) => r.device === device && r.message.kind === kind).map((r) => r.message);
  }
  count(reason: string): number {
    return this.refusals.filter((r) => r === reason).length;
  }
}

const desired = (version: number, values: Record<string, number>): DesiredState => ({ version, desired: values, delta: values, ts: 0 });

describe('CoAP binding', () => {
  let t: TestNode;
  let binding: CoapBinding;
  let uplink: RecordingUplink;
  let port: number;
  const clock = new ManualClock(Date.parse('2026-12-02T12:00:00Z'));
  const agents: Agent[] = [];
  const tokens: Record<string, string> = {};
  const records: Record<string, DeviceRecord> = {};

  const agent = async (address = '127.0.0.1') => {
    const created = await coapAgent(address);
    agents.push(created);
    return created;
  };

  before(async () => {
    t = await startTestNode();
    for (const [id, network] of [
      ['tank-1', { profile: 'ethernet' }],
      ['tank-2', { profile: 'nbiot' }],
      ['tank-3', { profile: 'ethernet' }],
    ] as const) {
      const { token } = await t.registerDevice(id, 'pump', { network });
      tokens[id] = token;
      // The record as the store stamps it (with its tenant), as the gateway hands it to bindings.
      const device = await t.node.registry.find(id);
      assert.ok(device);
      records[id] = device;
    }
    uplink = new RecordingUplink(clock);
    const fleet = new FleetDirectory();
    fleet.add('default', t.node.registry);
    binding = new CoapBinding({
      port: 0,
      host: '127.0.0.1',
      fleet,
      // Five failures, then an address waits (the clock does not move: it stays braked).
      brake: new GuessingBrake({ burst: 5, refillPerSecond: 0.1, now: () => clock.now() }),
      limits: { maxPayloadBytes: 64 * 1024, fetchWaitMs: 50 },
      logger: createLogger({ level: 'silent' }),
    });
    await binding.start(uplink);
    port = binding.port;
  });

  after(async () => {
    await Promise.all(agents.map(closeAgent));
    await binding.stop();
    await t.stop();
  });

  it('answers 2.04 to telemetry only once the gateway has it durable', async () => {
    const device = await agent();
    let release: () => void = () => undefined;
    uplink.gate = new Promise((resolve) => {
      release = resolve;
    });
    let answered = false;
    const pending = coapRequest(device, port, {
      method: 'POST',
      pathname: '/things/tank-1/telemetry',
      token: tokens['tank-1'],
      contentFormat: 'application/json',
      payload: { temperature: 21.5, speed: 40 },
    }).then((answer) => {
      answered = true;
      return answer;
    });
    await until('the telemetry handed up', () => (uplink.of('tank-1', 'telemetry').length > 0 ? true : undefined));
    assert.equal(answered, false, 'answered before the message was durable');
    release();
    uplink.gate = undefined;
    const answer = await pending;
    assert.equal(answer.code, '2.04');
    const [telemetry] = uplink.of('tank-1', 'telemetry');
    assert.deepEqual(telemetry, { kind: 'telemetry', payload: { body: { temperature: 21.5, speed: 40 } } });
    assert.ok(uplink.received.every((r) => r.source === 'coap'));
    assert.ok(uplink.of('tank-1', 'presence').length > 0, 'every uplink is presence');
    const health = binding.health(records['tank-1']!);
    assert.equal(health.protocol, 'coap');
    assert.equal(health.state, 'connected');
    assert.equal(health.lastGoodReadTs, clock.now());
  });

  it('takes the token as ?t= for stacks that cannot set options, and hands events and twin reports up', async () => {
    const device = await agent();
    const event = await coapRequest(device, port, {
      method: 'POST',
      pathname: '/things/tank-1/events/overheat',
      token: tokens['tank-1'],
      tokenInQuery: true,
      payload: { temperature: 120 },
    });
    assert.equal(event.code, '2.04');
    assert.deepEqual(uplink.of('tank-1', 'event').at(-1), { kind: 'event', name: 'overheat', payload: { body: { temperature: 120 } } });
    const reported = await coapRequest(device, port, {
      method: 'POST',
      pathname: '/things/tank-1/twin/reported',
      token: tokens['tank-1'],
      payload: { speed: 40 },
    });
    assert.equal(reported.code, '2.04');
    assert.deepEqual(uplink.of('tank-1', 'twin-reported').at(-1), { kind: 'twin-reported', payload: { body: { speed: 40 } } });
    // Another content format is handed over as bytes for the gateway's codec.
    const cbor = await coapRequest(device, port, {
      method: 'POST',
      pathname: '/things/tank-1/telemetry',
      token: tokens['tank-1'],
      contentFormat: 'application/cbor',
      payload: Buffer.of(0xa1, 0x61, 0x61, 0x01),
    });
    assert.equal(cbor.code, '2.04');
    assert.deepEqual(uplink.of('tank-1', 'telemetry').at(-1), {
      kind: 'telemetry',
      payload: { bytes: Buffer.of(0xa1, 0x61, 0x61, 0x01), contentType: 'application/cbor' },
    });
  });

  it('refuses malformed payloads with 4.00 and a reason on the device errors, and counts datagrams that are not CoAP', async () => {
    const device = await agent();
    const before = uplink.of('tank-3', 'telemetry').length;
    const answer = await coapRequest(device, port, {
      method: 'POST',
      pathname: '/things/tank-3/telemetry',
      token: tokens['tank-3'],
      payload: '{"temperature": 2',
    });
    assert.equal(answer.code, '4.00');
    assert.equal((answer.body as { error: string }).error, 'malformed_json');
    const scalar = await coapRequest(device, port, {
      method: 'POST',
      pathname: '/things/tank-3/telemetry',
      token: tokens['tank-3'],
      payload: '42',
    });
    assert.equal(scalar.code, '4.00');
    assert.equal((scalar.body as { error: string }).error, 'not_an_object');
    assert.equal(uplink.of('tank-3', 'telemetry').length, before, 'nothing malformed is handed up');
    assert.deepEqual(
      uplink.errors.filter((e) => e.device === 'tank-3').map((e) => e.reason),
      ['malformed_json', 'not_an_object'],
    );
    assert.equal(binding.health(records['tank-3']!).errors, 2);

    const counted = uplink.count('malformed_packet');
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.send(Buffer.from([0xff, 0x00, 0x13]), port, '127.0.0.1', () => resolve()));
    socket.close();
    await until('the garbage datagram counted', () => (uplink.count('malformed_packet') > counted ? true : undefined));
    // The listener still serves.
    const after = await coapRequest(device, port, {
      method: 'POST',
      pathname: '/things/tank-3/telemetry',
      token: tokens['tank-3'],
      payload: { temperature: 3 },
    });
    assert.equal(after.code, '2.04');
  });

  it('answers 4.01 to wrong tokens, unknown devices and missing tokens, 4.04 to unknown paths, and counts each', async () => {
    const device = await agent('127.0.0.4');
    const wrong = await coapRequest(device, port, {
      method: 'POST',
      pathname: '/things/tank-1/telemetry',
      token: 'tld_wrong',
      payload: { speed: 1 },
    });
    assert.equal(wrong.code, '4.01');
    assert.equal(uplink.count('bad_token'), 1);
    const unknown = await coapRequest(device, port, {
      method: 'POST',
      pathname: '/things/nobody/telemetry',
      token: 'tld_wrong',
      payload: { speed: 1 },
    });
    assert.equal(unknown.code, '4.01');
    assert.equal(uplink.count('unknown_device'), 1);
    const none = await coapRequest(device, port, { method: 'POST', pathname: '/things/tank-1/telemetry', payload: { speed: 1 } });
    assert.equal(none.code, '4.01');
    assert.equal(uplink.count('no_token'), 1);
    const nowhere = await coapRequest(device, port, { method: 'GET', pathname: '/status', token: tokens['tank-1'] });
    assert.equal(nowhere.code, '4.04');
    const wrongMethod = await coapRequest(device, port, { method: 'GET', pathname: '/things/tank-1/telemetry', token: tokens['tank-1'] });
    assert.equal(wrongMethod.code, '4.05');
    assert.equal(uplink.count('not_found'), 1);
    assert.equal(uplink.count('method_not_allowed'), 1);
    assert.ok(!uplink.received.some((r) => r.device === 'nobody'));
  });

  it('notifies an observer of twin/desired on every desired change', async () => {
    const device = await agent();
    let version = 3;
    uplink.react = async (record, message) => {
      if (record.id === 'tank-1' && message.kind === 'twin-get')
        await binding.deliver(record, { kind: 'desired', state: desired(version, { speed: 55 }) });
    };
    assert.equal(binding.reachable(records['tank-1']!, { kind: 'desired', state: desired(1, {}) }), false);
    const observation = await coapObserve(device, port, '/things/tank-1/twin/desired', tokens['tank-1']!);
    assert.equal(observation.first.code, '2.05');
    assert.deepEqual((observation.first.body as DesiredState).desired, { speed: 55 });
    assert.equal(binding.reachable(records['tank-1']!, { kind: 'desired', state: desired(1, {}) }), true);
    version = 4;
    await binding.deliver(records['tank-1']!, { kind: 'desired', state: desired(4, { speed: 70 }) });
    const next = (await observation.next()) as DesiredState;
    assert.equal(next.version, 4);
    assert.deepEqual(next.desired, { speed: 70 });
    // A plain GET gets the current state the same way.
    const plain = await coapRequest(device, port, { pathname: '/things/tank-1/twin/desired', token: tokens['tank-1'] });
    assert.equal(plain.code, '2.05');
    assert.equal((plain.body as DesiredState).version, 4);
    observation.close();
    uplink.react = undefined;
  });

  it('holds invocations for a sleepy device until it talks, and hands them over in the same exchange window', async () => {
    const sleepy = records['tank-2']!;
    const invoke = { kind: 'invoke' as const, id: 'inv-1', action: 'reset', input: { reason: 'test' }, timeoutMs: 60_000 };
    assert.equal(binding.reachable(sleepy, invoke), false, 'asleep: the gateway must queue');
    // What the gateway does when a sleepy device's uplink arrives: deliver what is queued and reachable now.
    uplink.react = async (record, message) => {
      if (record.id === 'tank-2' && message.kind === 'presence' && message.state === 'uplink' && binding.reachable(record, invoke)) {
        await binding.deliver(record, invoke);
      }
    };
    const device = await agent();
    const sent = await coapRequest(device, port, {
      method: 'POST',
      pathname: '/things/tank-2/telemetry',
      token: tokens['tank-2'],
      payload: { temperature: 8 },
    });
    assert.equal(sent.code, '2.04');
    assert.deepEqual(uplink.of('tank-2', 'presence')[0], { kind: 'presence', state: 'uplink' });
    uplink.react = undefined;
    const fetched = await coapRequest(device, port, { pathname: '/things/tank-2/actions', token: tokens['tank-2'] });
    assert.equal(fetched.code, '2.05');
    assert.deepEqual(
      (fetched.body as { id: string; action: string; input: unknown }[]).map(({ id, action, input }) => ({ id, action, input })),
      [{ id: 'inv-1', action: 'reset', input: { reason: 'test' } }],
    );
    const result = await coapRequest(device, port, {
      method: 'POST',
      pathname: '/things/tank-2/actions/reset/result',
      token: tokens['tank-2'],
      payload: { id: 'inv-1', output: null },
    });
    assert.equal(result.code, '2.04');
    assert.deepEqual(uplink.of('tank-2', 'action-result').at(-1), {
      kind: 'action-result',
      action: 'reset',
      payload: { body: { id: 'inv-1', output: null } },
    });
    const again = await coapRequest(device, port, { pathname: '/things/tank-2/actions', token: tokens['tank-2'] });
    assert.deepEqual(again.body, [], 'an answered invocation is not handed out again');
    // The window closes: later invocations wait for the next uplink again.
    clock.advance(10 * 60_000);
    assert.equal(binding.reachable(sleepy, invoke), false);
  });

  it('pushes invocations to a device that observes things/{id}/actions', async () => {
    const device = await agent();
    const observation = await coapObserve(device, port, '/things/tank-3/actions', tokens['tank-3']!);
    assert.deepEqual(observation.first.body, []);
    const invoke = { kind: 'invoke' as const, id: 'inv-2', action: 'reset', input: undefined, timeoutMs: 30_000 };
    assert.equal(binding.reachable(records['tank-3']!, invoke), true);
    await binding.deliver(records['tank-3']!, invoke);
    const list = (await observation.next()) as { id: string; input: unknown }[];
    assert.deepEqual(
      list.map(({ id, input }) => ({ id, input })),
      [{ id: 'inv-2', input: null }],
    );
    observation.close();
  });

  it('receives a telemetry batch larger than one block whole (block-wise, RFC 7959), and refuses one over the payload limit with 4.13', async () => {
    const device = await agent();
    const start = clock.now() - 600_000;
    const batch = Array.from({ length: 400 }, (_, i) => ({ ts: start + i * 1000, temperature: 20 + (i % 10), speed: i % 100 }));
    const bytes = Buffer.from(JSON.stringify(batch));
    assert.ok(bytes.length > 8 * 1024, `the batch spans many blocks (${bytes.length} bytes)`);
    const answer = await coapRequest(device, port, {
      method: 'POST',
      pathname: '/things/tank-1/telemetry',
      token: tokens['tank-1'],
      payload: bytes,
      block1Szx: 6,
    });
    assert.equal(answer.code, '2.04');
    const last = uplink.of('tank-1', 'telemetry').at(-1);
    assert.ok(last && last.kind === 'telemetry' && 'body' in last.payload);
    assert.deepEqual(last.payload.body, batch);

    const huge = Buffer.from(JSON.stringify(Array.from({ length: 3000 }, (_, i) => ({ ts: start + i, temperature: 20 }))));
    assert.ok(huge.length > 64 * 1024);
    const refused = await coapRequest(device, port, {
      method: 'POST',
      pathname: '/things/tank-1/telemetry',
      token: tokens['tank-1'],
      payload: huge,
      block1Szx: 6,
    });
    assert.equal(refused.code, '4.13');
    assert.ok(uplink.count('payload_too_large') >= 1);
    // An upload from a stranger is refused at its first block.
    const stranger = await agent('127.0.0.5');
    const refusedStranger = await coapRequest(stranger, port, {
      method: 'POST',
      pathname: '/things/tank-1/telemetry',
      token: 'tld_wrong',
      payload: bytes,
      block1Szx: 6,
    });
    assert.equal(refusedStranger.code, '4.01');
  });

  it('brakes a flood from an unknown client and keeps serving other devices', async () => {
    const flooder = await agent('127.0.0.3');
    const good = await agent('127.0.0.2');
    const failuresBefore = uplink.count('unknown_device');
    const brakedBefore = uplink.count('rate_limited');
    // The client library keeps at most 256 requests in flight per agent.
    const flood = 250;
    for (let i = 0; i < flood; i++)
      coapSend(flooder, port, { method: 'POST', pathname: `/things/intruder-${i}/telemetry`, token: 'tld_guess', payload: { speed: 1 } });
    // UDP may lose a few datagrams on a loaded machine: wait until the count stops growing.
    const reached = () => uplink.count('rate_limited') - brakedBefore + uplink.count('unknown_device') - failuresBefore;
    let last = -1;
    await until(
      'the flood handled',
      async () => {
        const now = reached();
        if (now >= flood || (now > 0 && now === last)) return true;
        last = now;
        await new Promise((resolve) => setTimeout(resolve, 200));
        return undefined;
      },
      20_000,
    );
    const checked = uplink.count('unknown_device') - failuresBefore;
    const braked = uplink.count('rate_limited') - brakedBefore;
    assert.ok(checked < flood / 10, `only about the brake's burst reaches the credential check (${checked} of ${flood})`);
    assert.ok(braked >= flood / 2, `the rest is dropped unread and counted (${braked} of ${flood})`);
    const answer = await coapRequest(good, port, {
      method: 'POST',
      pathname: '/things/tank-1/telemetry',
      token: tokens['tank-1'],
      payload: { speed: 12 },
    });
    assert.equal(answer.code, '2.04');
  });
});
