/**
 * Alarm webhooks and server-side request forgery: a webhook must not reach loopback, private,
 * link-local (cloud metadata), unique-local, unspecified or other reserved addresses unless the
 * platform admin allows their range, whether the URL names the address or a host that resolves
 * to it; refusals are counted; redirects are not followed. Real local HTTP receivers listen on
 * the loopback addresses the forbidden URLs point at and must receive nothing.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Alarm } from '../src/agents/index.js';
import { type AddressRange, forbiddenRange, parseAddressRange, postSigned } from '../src/transport/webhook/index.js';
import { startTestNode } from './support/harness.js';
import { until } from './support/wait.js';

/** A real receiver: counts what reaches it, answers with `status` (and `location`, for redirects). */
class Receiver {
  readonly bodies: string[] = [];
  status = 200;
  location: string | undefined;
  private readonly server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      this.bodies.push(Buffer.concat(chunks).toString('utf8'));
      response.writeHead(this.status, this.location ? { location: this.location } : {}).end();
    });
  });
  port = 0;

  async start(host: string): Promise<this> {
    this.server.listen(0, host);
    await once(this.server, 'listening');
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** The refusal counter a node passes in, reduced to what the webhook reports. */
class Refusals {
  count = 0;
  refused(listener: 'webhook', reason: 'forbidden_target'): void {
    assert.equal(listener, 'webhook');
    assert.equal(reason, 'forbidden_target');
    this.count++;
  }
}

const deliver = (url: string, refusals: Refusals, allow: AddressRange[] = []) =>
  postSigned({ url, secret: 's', attempts: 2, backoffMs: 1, timeoutMs: 5_000, allow, refusals }, { event: 'raised' });

describe('forbiddenRange', () => {
  test('loopback, private, link-local, unique-local, unspecified, multicast and reserved are forbidden; public unicast is not', () => {
    const forbidden = {
      '127.0.0.1': 'loopback',
      '127.8.9.10': 'loopback',
      '10.1.2.3': 'private',
      '172.16.0.1': 'private',
      '192.168.1.1': 'private',
      '169.254.169.254': 'linkLocal',
      '100.64.0.1': 'carrierGradeNat',
      '0.0.0.0': 'unspecified',
      '224.0.0.1': 'multicast',
      '255.255.255.255': 'broadcast',
      '192.0.2.1': 'reserved',
      '240.0.0.1': 'reserved',
      '::1': 'loopback',
      '::': 'unspecified',
      'fe80::1': 'linkLocal',
      'fd00::1': 'uniqueLocal',
      'fc00::1': 'uniqueLocal',
      'ff02::1': 'multicast',
      // IPv6 forms that carry an IPv4 address are judged by it or refused outright.
      '::ffff:127.0.0.1': 'loopback',
      '::ffff:10.0.0.1': 'private',
      '64:ff9b::a9fe:a9fe': 'rfc6052',
      '2002:7f00:1::': '6to4',
      '::7f00:1': 'reserved',
      '2001:db8::1': 'reserved',
    };
    for (const [address, range] of Object.entries(forbidden)) assert.equal(forbiddenRange(address), range, address);
    for (const address of ['8.8.8.8', '93.184.215.14', '2606:4700:4700::1111', '2a00:1450:4001::200e']) {
      assert.equal(forbiddenRange(address), undefined, address);
    }
  });

  test('an allowed range opens exactly that range', () => {
    const allow = ['10.20.0.0/16', '127.0.0.1', 'fd00::/8'].map(parseAddressRange);
    assert.equal(forbiddenRange('10.20.3.4', allow), undefined);
    assert.equal(forbiddenRange('10.21.0.1', allow), 'private');
    assert.equal(forbiddenRange('127.0.0.1', allow), undefined);
    assert.equal(forbiddenRange('::ffff:127.0.0.1', allow), undefined, 'a mapped address is the IPv4 address');
    assert.equal(forbiddenRange('127.0.0.2', allow), 'loopback');
    assert.equal(forbiddenRange('fd12::1', allow), undefined);
    assert.equal(forbiddenRange('::1', allow), 'loopback');
    assert.throws(() => parseAddressRange('10.0.0.0/33'), /not an address or a CIDR range/);
    assert.throws(() => parseAddressRange('intranet'), /not an address or a CIDR range/);
  });
});

describe('postSigned refuses forbidden targets', () => {
  let v4: Receiver;
  let v6: Receiver;
  before(async () => {
    v4 = await new Receiver().start('127.0.0.1');
    v6 = await new Receiver().start('::1');
  });
  after(async () => {
    await v4.stop();
    await v6.stop();
  });

  test('loopback by address, by name, mapped, decimal and unspecified; private and metadata addresses: refused, counted, nothing received', async () => {
    const urls = [
      `http://127.0.0.1:${v4.port}/hook`,
      `http://localhost:${v4.port}/hook`,
      `http://[::1]:${v6.port}/hook`,
      `http://[::ffff:127.0.0.1]:${v4.port}/hook`,
      `http://2130706433:${v4.port}/hook`,
      // On Linux a connection to 0.0.0.0 reaches the local host.
      `http://0.0.0.0:${v4.port}/hook`,
      'http://10.1.2.3:8080/hook',
      'http://169.254.169.254/latest/meta-data/',
      'http://[fd00::1]/hook',
    ];
    for (const url of urls) {
      const refusals = new Refusals();
      const outcome = await deliver(url, refusals);
      assert.equal(outcome.status, 'failed', url);
      assert.equal(outcome.attempts, 1, `${url}: a forbidden target is not retried`);
      assert.match(outcome.error ?? '', /^forbidden target: /, url);
      assert.equal(refusals.count, 1, `${url}: the refusal is counted`);
    }
    assert.deepEqual(v4.bodies, [], 'nothing reached the IPv4 loopback receiver');
    assert.deepEqual(v6.bodies, [], 'nothing reached the IPv6 loopback receiver');
  });

  test('with the range allowed the same targets are delivered, and only that range is opened', async () => {
    const refusals = new Refusals();
    const allowV4 = [parseAddressRange('127.0.0.1')];
    assert.equal((await deliver(`http://127.0.0.1:${v4.port}/hook`, refusals, allowV4)).status, 'delivered');
    assert.equal((await deliver(`http://localhost:${v4.port}/hook`, refusals, allowV4)).status, 'delivered');
    assert.equal(v4.bodies.length, 2);
    const v6Outcome = await deliver(`http://[::1]:${v6.port}/hook`, refusals, allowV4);
    assert.match(v6Outcome.error ?? '', /^forbidden target: /, '::1 is not in 127.0.0.1/32');
    assert.equal(refusals.count, 1);
    assert.equal((await deliver(`http://[::1]:${v6.port}/hook`, refusals, [parseAddressRange('::1/128')])).status, 'delivered');
    assert.equal(v6.bodies.length, 1);
  });

  test('a redirect is not followed, not even to an allowed address', async () => {
    const target = await new Receiver().start('127.0.0.1');
    const redirecting = await new Receiver().start('127.0.0.1');
    redirecting.status = 307;
    redirecting.location = `http://127.0.0.1:${target.port}/elsewhere`;
    try {
      const outcome = await deliver(`http://127.0.0.1:${redirecting.port}/hook`, new Refusals(), [parseAddressRange('127.0.0.1')]);
      assert.deepEqual(outcome, { status: 'failed', attempts: 1, error: 'HTTP 307 (redirects are not followed)' });
      assert.equal(redirecting.bodies.length, 1);
      assert.deepEqual(target.bodies, [], 'the redirect target received nothing');
    } finally {
      await target.stop();
      await redirecting.stop();
    }
  });
});

describe('the alarm webhook of a node', () => {
  interface MetricsText {
    status: number;
    body: string;
  }
  const refusalsOf = (metrics: MetricsText) =>
    Number(/thingloop_refusals_total\{listener="webhook",reason="forbidden_target"\} (\d+)/.exec(metrics.body)?.[1] ?? 0);

  const webhookOutcome = (alarms: { get(id: string): Promise<Alarm> }, id: string) =>
    until(`the webhook outcome of ${id}`, async () => (await alarms.get(id)).notifications.find((n) => n.sink === 'webhook'));

  test('a loopback webhook is refused and counted in thingloop_refusals_total; allowed by --webhook-allow it is delivered', async () => {
    const receiver = await new Receiver().start('127.0.0.1');
    const url = `http://127.0.0.1:${receiver.port}/alarms`;
    const closed = await startTestNode({ alarmWebhook: url });
    try {
      const alarm = await closed.node.alarms.raise({ agentId: 'ssrf', deviceId: 'ssrf-1', type: 't', severity: 'minor', message: 'm' });
      const outcome = await webhookOutcome(closed.node.alarms, alarm.id);
      assert.equal(outcome.status, 'failed');
      assert.match(outcome.error ?? '', /^forbidden target: 127\.0\.0\.1:\d+ is 127\.0\.0\.1 \(loopback\)$/);
      assert.equal(refusalsOf(await closed.api<string>('/metrics')), 1);
      assert.deepEqual(receiver.bodies, []);
    } finally {
      await closed.stop();
    }

    const open = await startTestNode({ alarmWebhook: url, webhookAllow: ['127.0.0.1/32'] });
    try {
      const alarm = await open.node.alarms.raise({ agentId: 'ssrf', deviceId: 'ssrf-2', type: 't', severity: 'minor', message: 'm' });
      assert.equal((await webhookOutcome(open.node.alarms, alarm.id)).status, 'delivered');
      assert.equal(receiver.bodies.length, 1);
      assert.equal(refusalsOf(await open.api<string>('/metrics')), 0);
    } finally {
      await open.stop();
      await receiver.stop();
    }
  });
});
