/**
 * Several tenants on one embedded broker (issue 12): devices keep `things/{id}/…`, the broker
 * resolves the tenant from the credentials, and nothing crosses from one tenant to another on any
 * topic pattern. Integrations log in with an API key (username `$key`). Also issue 13, defect 2:
 * a message the platform admin or an integration publishes on a device's topic is stored like
 * the device's own, or refused with the connection closed, never acknowledged and dropped.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { ADMIN_KEY, PUMP_MODEL, startTestNode, type TestNode } from './support/harness.js';

interface Received {
  topic: string;
  payload: string;
}

/** Every message a client hears, in order. */
class Recorder {
  readonly messages: Received[] = [];
  private waiters: { matches: (message: Received) => boolean; resolve: (message: Received) => void }[] = [];

  constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload) => {
      const message = { topic, payload: payload.toString() };
      this.messages.push(message);
      const ready = this.waiters.filter((waiter) => waiter.matches(message));
      this.waiters = this.waiters.filter((waiter) => !waiter.matches(message));
      for (const waiter of ready) waiter.resolve(message);
    });
  }

  /** The first message that `matches` (already heard, or the next one; a test that never gets it fails instead of hanging). */
  until(matches: (message: Received) => boolean, what = 'the expected message'): Promise<Received> {
    const seen = this.messages.find(matches);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`never heard ${what}; heard ${JSON.stringify(this.topics())}`)), 15_000);
      this.waiters.push({
        matches,
        resolve: (message) => {
          clearTimeout(timer);
          resolve(message);
        },
      });
    });
  }

  /** The first message on `topic`. */
  heard(topic: string): Promise<Received> {
    return this.until((message) => message.topic === topic, topic);
  }

  topics(): string[] {
    return this.messages.map((message) => message.topic);
  }
}

/** The topic patterns of the public scheme, as a device of `id` sees them. */
const PATTERNS = (id: string) => ({
  telemetry: `things/${id}/telemetry`,
  event: `things/${id}/events/overheat`,
  reported: `things/${id}/twin/reported`,
  desired: `things/${id}/twin/desired`,
  twinGet: `things/${id}/twin/get`,
  action: `things/${id}/actions/reset`,
  actionResult: `things/${id}/actions/reset/result`,
  errors: `things/${id}/errors`,
  alarms: `things/${id}/alarms`,
});

const SPARKPLUG_MODEL = { title: 'Sparkplug B edge node (until its birth)', properties: {} };

function counter(metrics: string, name: string, labels: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith(`${name}{`) && labels.split(',').every((label) => l.includes(label)));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('MQTT with several tenants', () => {
  let t: TestNode;
  /** Tenant admin keys, by tenant. */
  const admins: Record<string, string> = {};
  const tokens: Record<string, string> = {};
  const clients: MqttClient[] = [];

  const connect = async (username: string, password: string, options: mqtt.IClientOptions = {}) => {
    const client = await mqtt.connectAsync(t.node.mqttUrl, { username, password, protocolVersion: 4, reconnectPeriod: 0, ...options });
    clients.push(client);
    return client;
  };
  const api = <T = Record<string, unknown>>(
    key: string,
    path: string,
    init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
  ) => t.api<T>(path, { ...init, auth: key });

  async function createTenant(id: string): Promise<string> {
    const created = await t.api<{ adminKey: string }>('/api/v1/tenants', { method: 'POST', body: { id } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    admins[id] = created.body.adminKey;
    const model = await api(created.body.adminKey, '/api/v1/models/pump', { method: 'PUT', body: PUMP_MODEL });
    assert.ok(model.status < 300, JSON.stringify(model.body));
    return created.body.adminKey;
  }

  async function register(tenantKey: string, id: string, extra: Record<string, unknown> = {}): Promise<string> {
    const created = await api<{ token: string }>(tenantKey, '/api/v1/devices', { method: 'POST', body: { id, model: 'pump', ...extra } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    return created.body.token;
  }

  async function issueKey(tenantKey: string, role: string, name: string): Promise<string> {
    const issued = await api<{ key: string }>(tenantKey, '/api/v1/keys', { method: 'POST', body: { role, name } });
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    return issued.body.key;
  }

  async function telemetryOf(key: string, id: string, ts: number) {
    const stored = await api<{ items: { property: string; ts: number; value: unknown }[] }>(
      key,
      `/api/v1/devices/${id}/telemetry?from=${ts}&to=${ts + 1}`,
    );
    assert.equal(stored.status, 200, JSON.stringify(stored.body));
    return stored.body.items;
  }

  /** Resolves when the broker closes the client's connection (a refused publish). */
  const closed = (client: MqttClient) => new Promise<void>((resolve) => client.once('close', () => resolve()));

  before(async () => {
    t = await startTestNode();
    await createTenant('acme');
    await createTenant('globex');
    const acme = admins.acme as string;
    const globex = admins.globex as string;
    tokens['acme/pump-0001'] = await register(acme, 'pump-0001');
    tokens['globex/pump-0001'] = await register(globex, 'pump-0001');
    // Only acme has a meter-a: globex's credentials must not reach it by naming it.
    tokens['acme/meter-a'] = await register(acme, 'meter-a');
    tokens['default/pump-0001'] = (await t.registerDevice('pump-0001')).token;
  });

  after(async () => {
    await Promise.all(clients.map((client) => client.endAsync(true).catch(() => undefined)));
    await t.stop();
  });

  test('two tenants each with pump-0001 (same client id): each device hears only its own topics and its own downlinks', async () => {
    const acmePump = await connect('pump-0001', tokens['acme/pump-0001'] as string, { clientId: 'pump-0001' });
    const globexPump = await connect('pump-0001', tokens['globex/pump-0001'] as string, { clientId: 'pump-0001' });
    const acmeHeard = new Recorder(acmePump);
    const globexHeard = new Recorder(globexPump);
    await acmePump.subscribeAsync('things/pump-0001/#', { qos: 1 });
    await globexPump.subscribeAsync('things/pump-0001/#', { qos: 1 });
    assert.ok(acmePump.connected && globexPump.connected, 'the same client id in two tenants does not take over');

    const topics = PATTERNS('pump-0001');
    await acmePump.publishAsync(topics.telemetry, JSON.stringify({ speed: 10 }), { qos: 1 });
    await acmeHeard.heard(topics.telemetry);

    // Downlinks to acme's pump-0001 through the API: desired state and an action.
    const acme = admins.acme as string;
    const twin = await api<{ version: number }>(acme, '/api/v1/devices/pump-0001/twin');
    const patched = await api(acme, '/api/v1/devices/pump-0001/twin', {
      method: 'PATCH',
      body: { desired: { speed: 42 } },
      headers: { 'if-match': `"${twin.body.version}"` },
    });
    assert.ok(patched.status < 300, JSON.stringify(patched.body));
    const invoked = await api(acme, '/api/v1/devices/pump-0001/actions/reset', { method: 'POST', body: { input: { reason: 'test' } } });
    assert.ok(invoked.status < 300, JSON.stringify(invoked.body));
    assert.match((await acmeHeard.heard(topics.desired)).payload, /42/);
    assert.match((await acmeHeard.heard(topics.action)).payload, /test/);
    // An alarm of acme's pump-0001 is published in acme's mount.
    await t.node
      .tenant('acme')
      ?.alarms.raise({ agentId: 'test', deviceId: 'pump-0001', type: 'hot', severity: 'critical', message: 'hot' });
    await acmeHeard.heard(topics.alarms);

    // globex's pump-0001 hears its own telemetry (the sentinel) and nothing of acme's before it.
    await globexPump.publishAsync(topics.telemetry, JSON.stringify({ speed: 77 }), { qos: 1 });
    const own = await globexHeard.heard(topics.telemetry);
    assert.match(own.payload, /77/);
    assert.deepEqual(globexHeard.topics(), [topics.telemetry], 'nothing of acme reached globex');
    assert.ok(!acmeHeard.messages.some((message) => message.payload.includes('"speed":77')), "globex's telemetry did not reach acme");
  });

  test("retained desired state, persistent sessions and unsubscribes stay in the device's tenant", async () => {
    const desired = 'things/pump-0001/twin/desired';
    // acme's pump-0001 has retained desired state (the first test); globex's has none yet.
    const globexLate = await connect('pump-0001', tokens['globex/pump-0001'] as string);
    const globexHeard = new Recorder(globexLate);
    await globexLate.subscribeAsync(desired, { qos: 1 });
    const acmeLate = await connect('pump-0001', tokens['acme/pump-0001'] as string);
    const acmeHeard = new Recorder(acmeLate);
    await acmeLate.subscribeAsync(desired, { qos: 1 });
    assert.match((await acmeHeard.heard(desired)).payload, /"speed":42/, "acme's retained desired state");

    // A persistent session of globex's pump-0001 gets what the broker queued while it was away, in its own scheme.
    const integration = await connect('$key', await issueKey(admins.globex as string, 'integration', 'globex-commands'));
    const persistent = { clientId: 'globex-pump-persistent', clean: false };
    const first = await connect('pump-0001', tokens['globex/pump-0001'] as string, persistent);
    await first.subscribeAsync('things/pump-0001/actions/+', { qos: 1 });
    await first.endAsync();
    await integration.publishAsync('things/pump-0001/actions/reset', JSON.stringify({ id: 'q1', input: { reason: 'queued' } }), { qos: 1 });
    const again = await mqtt.connectAsync(t.node.mqttUrl, {
      username: 'pump-0001',
      password: tokens['globex/pump-0001'] as string,
      protocolVersion: 4,
      reconnectPeriod: 0,
      ...persistent,
      manualConnect: false,
    });
    clients.push(again);
    const againHeard = new Recorder(again);
    assert.match((await againHeard.heard('things/pump-0001/actions/reset')).payload, /queued/);

    // An unsubscribe applies to the mounted subscription: nothing more arrives on it.
    await again.unsubscribeAsync('things/pump-0001/actions/+');
    await again.subscribeAsync('things/pump-0001/telemetry', { qos: 1 });
    await integration.publishAsync('things/pump-0001/actions/reset', JSON.stringify({ id: 'q2', input: { reason: 'after' } }), { qos: 1 });
    await again.publishAsync('things/pump-0001/telemetry', JSON.stringify({ speed: 31 }), { qos: 1 });
    await againHeard.heard('things/pump-0001/telemetry');
    assert.ok(!againHeard.messages.some((m) => m.payload.includes('after')), 'no action after the unsubscribe');

    // globex's late subscriber heard none of acme's retained state (its own sentinel comes after).
    await globexLate.subscribeAsync('things/pump-0001/telemetry', { qos: 1 });
    await again.publishAsync('things/pump-0001/telemetry', JSON.stringify({ speed: 32 }), { qos: 1 });
    await globexHeard.until((m) => m.payload.includes('"speed":32'));
    assert.ok(!globexHeard.messages.some((m) => m.payload.includes('"speed":42')), "acme's retained state did not reach globex");
  });

  test('an integration of acme subscribing # or things/# hears every pattern of acme and nothing of globex or the default tenant', async () => {
    const acmeKey = await issueKey(admins.acme as string, 'integration', 'acme-feed');
    const globexKey = await issueKey(admins.globex as string, 'integration', 'globex-feed');
    const acmeFeed = await connect('$key', acmeKey);
    const acmeAll = await connect('$key', acmeKey);
    const globexFeed = await connect('$key', globexKey);
    const acmeHeard = new Recorder(acmeFeed);
    const acmeAllHeard = new Recorder(acmeAll);
    const globexHeard = new Recorder(globexFeed);
    await acmeFeed.subscribeAsync('things/#', { qos: 1 });
    await acmeAll.subscribeAsync('#', { qos: 1 });
    await globexFeed.subscribeAsync('#', { qos: 1 });
    // The platform admin reads acme's traffic through acme's mount, on the same messages.
    const platform = await connect('$admin', ADMIN_KEY);
    const platformHeard = new Recorder(platform);
    await platform.subscribeAsync('$tenant/acme/#', { qos: 1 });

    // acme's traffic on every pattern: its device's uplinks, the platform's downlinks, alarms.
    const topics = PATTERNS('pump-0001');
    const device = await connect('pump-0001', tokens['acme/pump-0001'] as string);
    await device.publishAsync(topics.telemetry, JSON.stringify({ speed: 11 }), { qos: 1 });
    await device.publishAsync(topics.event, JSON.stringify({ temperature: 99 }), { qos: 1 });
    await device.publishAsync(topics.reported, JSON.stringify({ speed: 11 }), { qos: 1 });
    await device.publishAsync(topics.twinGet, '', { qos: 1 });
    await device.publishAsync(topics.actionResult, JSON.stringify({ id: 'no-such-invocation', output: {} }), { qos: 1 });
    // Refused values: an error notice on things/pump-0001/errors.
    await device.publishAsync(topics.telemetry, JSON.stringify({ speed: 500 }), { qos: 1 });
    await acmeFeed.publishAsync(topics.desired, JSON.stringify({ speed: 5 }), { qos: 1 });
    await acmeFeed.publishAsync(topics.action, JSON.stringify({ id: 'x', input: {} }), { qos: 1 });
    await t.node.tenant('acme')?.alarms.raise({ agentId: 'test', deviceId: 'pump-0001', type: 'feed', severity: 'warning', message: 'm' });
    // A Sparkplug B edge node of acme.
    await api(admins.acme as string, '/api/v1/models/sparkplug-edge-node', { method: 'PUT', body: SPARKPLUG_MODEL });
    const edgeToken = (
      await api<{ token: string }>(admins.acme as string, '/api/v1/devices', {
        method: 'POST',
        body: { id: 'g1:e1', model: 'sparkplug-edge-node', binding: { protocol: 'sparkplug-b', group: 'g1', edgeNode: 'e1' } },
      })
    ).body.token;
    const edge = await connect('g1:e1', edgeToken);
    await edge.publishAsync('spBv1.0/g1/NDATA/e1', Buffer.from([0]), { qos: 1 });

    for (const topic of Object.values(topics)) {
      await acmeHeard.heard(topic);
      await acmeAllHeard.heard(topic);
      // Each subscriber gets its own view of the message: stripping acme's mount for acme's
      // integrations leaves it on the admin's copy.
      await platformHeard.heard(`$tenant/acme/${topic}`);
    }
    await acmeAllHeard.heard('spBv1.0/g1/NDATA/e1');

    // The default tenant's and globex's traffic, then globex's sentinel.
    const defaultPump = await connect('pump-0001', tokens['default/pump-0001'] as string);
    await defaultPump.publishAsync('things/pump-0001/telemetry', JSON.stringify({ speed: 12 }), { qos: 1 });
    const globexPump = await connect('pump-0001', tokens['globex/pump-0001'] as string);
    await globexPump.publishAsync('things/pump-0001/telemetry', JSON.stringify({ speed: 13 }), { qos: 1 });
    await globexHeard.heard('things/pump-0001/telemetry');
    await device.publishAsync(topics.telemetry, JSON.stringify({ speed: 14 }), { qos: 1 });
    await acmeAllHeard.until((m) => m.payload.includes('"speed":14'));

    assert.deepEqual(
      globexHeard.messages.map((m) => m.payload),
      [JSON.stringify({ speed: 13 })],
      "globex's integration heard only globex's pump-0001",
    );
    for (const heard of [acmeHeard, acmeAllHeard]) {
      assert.ok(
        !heard.messages.some((m) => m.payload.includes('"speed":12') || m.payload.includes('"speed":13')),
        'acme heard no other tenant',
      );
      assert.ok(
        heard.messages.every((m) => !m.topic.startsWith('$')),
        'an integration sees its topics without the mount',
      );
    }
  });

  test('every topic pattern: globex credentials against acme are refused (counted)', async () => {
    const globexKey = await issueKey(admins.globex as string, 'integration', 'globex-probe');
    const acme = PATTERNS('meter-a');
    const mountedAcme = Object.values(PATTERNS('pump-0001')).map((topic) => `$tenant/acme/${topic}`);
    let attempts = 0;
    let refused = 0;

    // Subscriptions naming acme's mount or the broker's own topics: refused (SUBACK 128).
    const subscriber = await connect('$key', globexKey);
    const globexDevice = await connect('pump-0001', tokens['globex/pump-0001'] as string);
    const filters = [...mountedAcme, '$tenant/acme/spBv1.0/#', '$tenant/acme/#', '$tenant/+/things/#', '$tenant/#', '$SYS/#'];
    for (const client of [subscriber, globexDevice]) {
      for (const filter of filters) {
        attempts++;
        // MQTT.js rejects a subscription the broker answers with 128 (refused).
        const granted = await client.subscribeAsync(filter, { qos: 1 }).catch((error: Error) => error);
        if (granted instanceof Error && /Unspecified error/.test(granted.message)) refused++;
        else assert.fail(`subscription to ${filter} was granted: ${JSON.stringify(granted)}`);
      }
    }

    // Publishes for acme's device (by its id, or through acme's mount): the connection is closed.
    const targets = [...Object.values(acme), ...mountedAcme, 'spBv1.0/g1/NDATA/e1', '$tenant/acme/spBv1.0/g1/NDATA/e1'];
    for (const [username, password] of [
      ['$key', globexKey],
      ['pump-0001', tokens['globex/pump-0001'] as string],
    ] as const) {
      for (const topic of targets) {
        attempts++;
        const client = await connect(username, password);
        // Refused: closed without a PUBACK (MQTT 3.1.1 has no negative one).
        const outcome = await Promise.race([
          closed(client).then(() => 'closed'),
          client.publishAsync(topic, JSON.stringify({ speed: 66, id: 'x' }), { qos: 1 }).then(() => 'acknowledged'),
        ]);
        if (outcome === 'closed') refused++;
        else assert.fail(`${username} published to ${topic}`);
      }
    }
    // Nothing of it landed in acme.
    const stored = await api<{ items: unknown[] }>(admins.acme as string, '/api/v1/devices/meter-a/telemetry');
    assert.deepEqual(stored.body.items, []);
    console.log(`cross-tenant MQTT attempts refused: ${refused} of ${attempts}`);
    assert.equal(refused, attempts);
    const metrics = (await t.api<string>('/metrics')).body;
    assert.ok(counter(metrics, 'thingloop_refusals_total', 'listener="mqtt",reason="forbidden"') >= targets.length);
  });

  test('defect 2: the platform admin and an integration with telemetry:write publish for a device: stored before PUBACK, refusals on errors', async () => {
    const ts = Date.now() - 1_000;
    const admin = await connect('$admin', ADMIN_KEY);
    await admin.publishAsync('things/pump-0001/telemetry', JSON.stringify({ ts, speed: 21 }), { qos: 1 });
    assert.deepEqual(await telemetryOf(ADMIN_KEY, 'pump-0001', ts), [{ property: 'speed', ts, value: 21 }]);

    // Another tenant's device, through that tenant's mount.
    await admin.publishAsync('$tenant/globex/things/pump-0001/telemetry', JSON.stringify({ ts, speed: 22 }), { qos: 1 });
    assert.deepEqual(await telemetryOf(admins.globex as string, 'pump-0001', ts), [{ property: 'speed', ts, value: 22 }]);

    // An integration of acme: its own device only, in its own tenant.
    const feedKey = await issueKey(admins.acme as string, 'integration', 'acme-writer');
    const feed = await connect('$key', feedKey);
    await feed.publishAsync('things/pump-0001/telemetry', JSON.stringify({ ts, speed: 23 }), { qos: 1 });
    assert.deepEqual(await telemetryOf(admins.acme as string, 'pump-0001', ts), [{ property: 'speed', ts, value: 23 }]);
    assert.deepEqual(await telemetryOf(admins.globex as string, 'pump-0001', ts), [{ property: 'speed', ts, value: 22 }]);

    // A refused value is answered on the device's errors topic, as for the device's own message.
    const device = await connect('pump-0001', tokens['acme/pump-0001'] as string);
    const heard = new Recorder(device);
    await device.subscribeAsync('things/pump-0001/errors', { qos: 1 });
    await feed.publishAsync('things/pump-0001/telemetry', JSON.stringify({ ts, speed: 500 }), { qos: 1 });
    assert.match((await heard.heard('things/pump-0001/errors')).payload, /out_of_range/);
  });

  test('defect 2: without the permission, or for no such device, the publish is refused: connection closed, counted', async () => {
    const before = counter((await t.api<string>('/metrics')).body, 'thingloop_refusals_total', 'listener="mqtt",reason="forbidden"');
    const viewerKey = await issueKey(admins.acme as string, 'viewer', 'acme-viewer');
    const viewer = await connect('$key', viewerKey);
    // A viewer may read.
    await viewer.subscribeAsync('things/#', { qos: 1 });
    const gone = closed(viewer);
    viewer.publish('things/pump-0001/telemetry', JSON.stringify({ speed: 1 }), { qos: 1 });
    await gone;

    const admin = await connect('$admin', ADMIN_KEY);
    const adminGone = closed(admin);
    admin.publish('things/no-such-pump/telemetry', JSON.stringify({ speed: 1 }), { qos: 1 });
    await adminGone;

    const after = counter((await t.api<string>('/metrics')).body, 'thingloop_refusals_total', 'listener="mqtt",reason="forbidden"');
    assert.equal(after - before, 2);
    await assert.rejects(connect('$key', 'tlk_not-a-key'), /bad API key|Bad username or password/i);
  });
  test("deleting acme's pump-0001 ends its session only; globex's pump-0001 keeps its session and its messages", async () => {
    const acmePump = await connect('pump-0001', tokens['acme/pump-0001'] as string, { clientId: 'pump-0001' });
    const globexPump = await connect('pump-0001', tokens['globex/pump-0001'] as string, { clientId: 'pump-0001' });
    const globexHeard = new Recorder(globexPump);
    await globexPump.subscribeAsync('things/pump-0001/telemetry', { qos: 1 });
    const acmeGone = closed(acmePump);
    const deleted = await api(admins.acme as string, '/api/v1/devices/pump-0001', { method: 'DELETE' });
    assert.equal(deleted.status, 204, JSON.stringify(deleted.body));
    await acmeGone;
    await globexPump.publishAsync('things/pump-0001/telemetry', JSON.stringify({ speed: 51 }), { qos: 1 });
    await globexHeard.until((m) => m.payload.includes('"speed":51'));
    assert.ok(globexPump.connected, "globex's pump-0001 kept its session");
    await assert.rejects(connect('pump-0001', tokens['acme/pump-0001'] as string));
  });
});
