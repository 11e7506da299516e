/**
 * The REST API end to end: a real node (HTTP server, MQTT broker, SQLite) on a manual clock,
 * driven only through HTTP and WebSocket, the way users and the console drive it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import ipaddr from 'ipaddr.js';
import WebSocket from 'ws';
import { ManualClock } from '../src/time/index.js';
import { ADMIN_KEY, type JsonObject, PUMP_MODEL, startTestNode, type TestNode } from './support/harness.js';

/** The node's clock: 2026-03-01T12:00:00Z, moved only by the tests. */
const NOW = Date.UTC(2026, 2, 1, 12, 0, 0);
const MINUTE = 60_000;

interface ModelVersionBody {
  id: string;
  version: number;
  createdAt: number;
  document: JsonObject;
}
interface ModelList {
  items: { id: string; title: string; latestVersion: number; updatedAt: number }[];
}
interface ErrorBody {
  error: string;
  message: string;
  details?: unknown;
}
interface Problem {
  path: string;
  message: string;
}
interface DeviceBody {
  id: string;
  name: string;
  model: string;
  modelVersion: number;
  code: string;
  ipv6: string;
  attributes: Record<string, string | number | boolean | null>;
  createdAt: number;
  updatedAt: number;
}
interface Registered {
  device: DeviceBody;
  token: string;
}
interface DevicePage {
  items: DeviceBody[];
  total: number;
  next: string | null;
}
interface RejectionBody {
  reason: string;
  message: string;
  property?: string;
  sample?: number;
}
interface IngestBody {
  acceptedSamples: number;
  acceptedValues: number;
  rejections: RejectionBody[];
  error?: string;
}
interface RawItem {
  property: string;
  ts: number;
  value: unknown;
}
interface RawPage {
  deviceId: string;
  from: number;
  to: number;
  items: RawItem[];
  next: string | null;
}
interface AggregateBody {
  deviceId: string;
  agg: string;
  bucketMs: number;
  series: { property: string; points: { ts: number; value: number | null; count: number }[] }[];
}
interface Latest {
  deviceId: string;
  values: Record<string, { value: unknown; ts: number }>;
}
interface OpenApi {
  openapi: string;
  paths: Record<string, Record<string, unknown>>;
}

const VALVE_V1 = {
  title: 'Valve',
  properties: { position: { type: 'number', minimum: 0, maximum: 100 } },
};
const VALVE_V2 = {
  title: 'Valve',
  properties: { position: { type: 'number', minimum: 0, maximum: 100 }, pressure: { type: 'number', unit: 'bar', minimum: 0 } },
};

function post(body: unknown, auth?: string | null) {
  return auth === undefined ? { method: 'POST', body } : { method: 'POST', body, auth };
}

describe('HTTP API', () => {
  let t: TestNode;
  const clock = new ManualClock(NOW);

  before(async () => {
    t = await startTestNode({}, clock);
    const pump = await t.api('/api/v1/models/pump', { method: 'PUT', body: PUMP_MODEL });
    assert.equal(pump.status, 201);
  });
  after(() => t.stop());

  describe('thing models', () => {
    test('PUT creates v1, an identical PUT returns it unchanged, a changed PUT creates v2', async () => {
      const first = await t.api<ModelVersionBody>('/api/v1/models/sensor', { method: 'PUT', body: VALVE_V1 });
      assert.equal(first.status, 201);
      assert.equal(first.body.id, 'sensor');
      assert.equal(first.body.version, 1);
      assert.equal(first.body.createdAt, NOW);
      assert.deepEqual(first.body.document, VALVE_V1);

      clock.advance(1000);
      // Same meaning, different key order: still the same document.
      const reordered = { properties: { position: { maximum: 100, minimum: 0, type: 'number' } }, title: 'Valve' };
      const same = await t.api<ModelVersionBody>('/api/v1/models/sensor', { method: 'PUT', body: reordered });
      assert.equal(same.status, 200);
      assert.equal(same.body.version, 1);
      assert.equal(same.body.createdAt, NOW);

      const changed = await t.api<ModelVersionBody>('/api/v1/models/sensor', { method: 'PUT', body: VALVE_V2 });
      assert.equal(changed.status, 201);
      assert.equal(changed.body.version, 2);
      assert.equal(changed.body.createdAt, NOW + 1000);

      const latest = await t.api<ModelVersionBody>('/api/v1/models/sensor');
      assert.equal(latest.status, 200);
      assert.equal(latest.body.version, 2);
      assert.deepEqual(latest.body.document, VALVE_V2);

      const v1 = await t.api<ModelVersionBody>('/api/v1/models/sensor?version=1');
      assert.equal(v1.status, 200);
      assert.equal(v1.body.version, 1);
      assert.deepEqual(v1.body.document, VALVE_V1);

      const versions = await t.api<{ items: ModelVersionBody[] }>('/api/v1/models/sensor/versions');
      assert.equal(versions.status, 200);
      assert.deepEqual(
        versions.body.items.map((v) => [v.version, v.createdAt]),
        [
          [1, NOW],
          [2, NOW + 1000],
        ],
      );

      const list = await t.api<ModelList>('/api/v1/models');
      assert.equal(list.status, 200);
      const sensor = list.body.items.find((m) => m.id === 'sensor');
      assert.deepEqual(sensor, { id: 'sensor', title: 'Valve', latestVersion: 2, updatedAt: NOW + 1000 });
      assert.ok(list.body.items.some((m) => m.id === 'pump' && m.title === 'Centrifugal pump' && m.latestVersion === 1));
    });

    test('unknown models, versions and version lists are 404', async () => {
      for (const path of ['/api/v1/models/nope', '/api/v1/models/nope/versions', '/api/v1/models/pump?version=9']) {
        const response = await t.api<ErrorBody>(path);
        assert.equal(response.status, 404, path);
        assert.equal(response.body.error, 'not_found', path);
      }
    });

    test('an invalid model is refused with every problem listed, and nothing is stored', async () => {
      const document = {
        properties: {
          speed: { type: 'float' },
          level: { type: 'number', minimum: 10, maximum: 1 },
          'bad name': { type: 'string' },
          ts: { type: 'integer' },
        },
      };
      const refused = await t.api<ErrorBody>('/api/v1/models/broken', { method: 'PUT', body: document });
      assert.equal(refused.status, 400);
      assert.equal(refused.body.error, 'invalid');
      const problems = refused.body.details as Problem[];
      const expected: [string, RegExp][] = [
        ['/', /title/],
        ['/properties/speed/type', /must be one of/],
        ['/properties/level', /minimum \(10\) is greater than maximum \(1\)/],
        ['/properties/bad name', /name must match/],
        ['/properties/ts', /reserved/],
      ];
      for (const [path, message] of expected) {
        assert.ok(
          problems.some((p) => p.path === path && message.test(p.message)),
          `expected a problem at ${path} matching ${message}; got ${JSON.stringify(problems)}`,
        );
      }
      assert.equal(problems.length, expected.length, JSON.stringify(problems));
      assert.match(refused.body.message, /5 problem/);
      assert.equal((await t.api('/api/v1/models/broken')).status, 404);
    });

    test('a model that is not an object, or a bad model id, is refused', async () => {
      const notObject = await t.api<ErrorBody>('/api/v1/models/listy', { method: 'PUT', body: [1, 2] });
      assert.equal(notObject.status, 400);
      const badId = await t.api<ErrorBody>('/api/v1/models/bad%20id', { method: 'PUT', body: VALVE_V1 });
      assert.equal(badId.status, 400);
      assert.match(badId.body.message, /model id/);
    });
  });

  describe('devices', () => {
    const inPrefix = (address: string) => ipaddr.IPv6.parse(address).match(ipaddr.IPv6.parseCIDR('fd74:6c70:1f00:1::/64'));

    test('POST with an id returns the device and its token once', async () => {
      const created = await t.api<Registered>('/api/v1/devices', post({ id: 'pump-a', model: 'pump', name: 'Pump A' }));
      assert.equal(created.status, 201);
      assert.match(created.body.token, /^tld_[A-Za-z0-9_-]{43}$/);
      const { device } = created.body;
      assert.equal(device.id, 'pump-a');
      assert.equal(device.name, 'Pump A');
      assert.equal(device.model, 'pump');
      assert.equal(device.modelVersion, 1);
      assert.equal(device.code, '88.100.1/pump-a');
      assert.ok(inPrefix(device.ipv6), `${device.ipv6} is inside the default /64`);
      assert.equal(device.createdAt, clock.now());

      const read = await t.api<DeviceBody & { token?: string }>('/api/v1/devices/pump-a');
      assert.equal(read.status, 200);
      assert.deepEqual(read.body, device);
      assert.equal(read.body.token, undefined, 'the token is never shown again');
    });

    test('POST without an id generates one; addresses are distinct per device', async () => {
      const created = await t.api<Registered>('/api/v1/devices', post({ model: 'pump' }));
      assert.equal(created.status, 201);
      const { device } = created.body;
      assert.match(device.id, /^dev-[0-9a-f]{12}$/);
      assert.equal(device.code, `88.100.1/${device.id}`);
      assert.equal(device.name, device.id);
      assert.ok(inPrefix(device.ipv6));

      const others = await Promise.all(['addr-1', 'addr-2', 'addr-3'].map((id) => t.registerDevice(id)));
      const addresses = new Set([device.ipv6, ...others.map((o) => o.device.ipv6)]);
      assert.equal(addresses.size, 4, 'every device has its own IPv6 address');
      for (const address of addresses) assert.ok(inPrefix(address), address);
    });

    test('a duplicate id is 409, a bad id or unknown field 400, an unknown model 404', async () => {
      await t.registerDevice('dup-1');
      const duplicate = await t.api<ErrorBody>('/api/v1/devices', post({ id: 'dup-1', model: 'pump' }));
      assert.equal(duplicate.status, 409);
      assert.equal(duplicate.body.error, 'conflict');

      for (const id of ['a/b', 'a#b', 'a+b', 'has space', '-leading', '', 'x'.repeat(129)]) {
        const refused = await t.api<ErrorBody>('/api/v1/devices', post({ id, model: 'pump' }));
        assert.equal(refused.status, 400, `id ${JSON.stringify(id)}`);
        assert.equal(refused.body.error, 'invalid');
      }

      const unknownModel = await t.api<ErrorBody>('/api/v1/devices', post({ id: 'orphan', model: 'no-such-model' }));
      assert.equal(unknownModel.status, 404);
      const unknownVersion = await t.api<ErrorBody>('/api/v1/devices', post({ id: 'orphan', model: 'pump', modelVersion: 7 }));
      assert.equal(unknownVersion.status, 404);

      const extra = await t.api<ErrorBody>('/api/v1/devices', post({ id: 'extra', model: 'pump', colour: 'red' }));
      assert.equal(extra.status, 400);
      assert.match(extra.body.message, /additional|colour/);

      assert.equal((await t.api('/api/v1/devices/orphan')).status, 404);
      assert.equal((await t.api('/api/v1/devices/extra')).status, 404);
    });

    test('the list is ordered by id, paginated with after=next, filtered by model with a total', async () => {
      await t.api('/api/v1/models/meter', { method: 'PUT', body: { title: 'Meter', properties: { energy: { type: 'number' } } } });
      const ids = ['m-07', 'm-03', 'm-01', 'm-06', 'm-02', 'm-05', 'm-04'];
      for (const id of ids) await t.registerDevice(id, 'meter');

      const seen: string[] = [];
      let after: string | null = null;
      let pages = 0;
      do {
        const query: string = `/api/v1/devices?model=meter&limit=3${after ? `&after=${encodeURIComponent(after)}` : ''}`;
        const page = await t.api<DevicePage>(query);
        assert.equal(page.status, 200);
        assert.equal(page.body.total, 7);
        assert.ok(page.body.items.every((d) => d.model === 'meter'));
        seen.push(...page.body.items.map((d) => d.id));
        after = page.body.next;
        pages++;
        assert.ok(pages <= 5, 'pagination terminates');
      } while (after !== null);
      assert.deepEqual(seen, [...ids].sort());
      assert.equal(pages, 3);

      const all = await t.api<DevicePage>('/api/v1/devices?limit=1000');
      assert.equal(all.body.next, null);
      assert.equal(all.body.total, all.body.items.length);
      const allIds = all.body.items.map((d) => d.id);
      assert.deepEqual(allIds, [...allIds].sort());
      assert.ok(allIds.includes('pump-a') && allIds.includes('m-04'));

      const none = await t.api<DevicePage>('/api/v1/devices?model=no-such-model');
      assert.deepEqual(none.body, { items: [], total: 0, next: null });
      assert.equal((await t.api('/api/v1/devices?limit=0')).status, 400);
    });

    test('PATCH renames and merges attributes (null removes one)', async () => {
      const registered = await t.registerDevice('attr-1', 'pump', { attributes: { site: 'north', floor: 2, spare: true } });
      // Attribute values keep their JSON type: a number stays a number, a boolean a boolean.
      assert.deepEqual(registered.device.attributes, { site: 'north', floor: 2, spare: true });
      clock.advance(5000);
      const patched = await t.api<DeviceBody>('/api/v1/devices/attr-1', {
        method: 'PATCH',
        body: { name: 'Boiler feed pump', attributes: { floor: null, line: 'L1', spare: false } },
      });
      assert.equal(patched.status, 200);
      assert.equal(patched.body.name, 'Boiler feed pump');
      assert.deepEqual(patched.body.attributes, { site: 'north', line: 'L1', spare: false });
      assert.equal(patched.body.updatedAt, clock.now());
      assert.ok(patched.body.createdAt < patched.body.updatedAt);

      const read = await t.api<DeviceBody>('/api/v1/devices/attr-1');
      assert.deepEqual(read.body, patched.body);

      const unknownField = await t.api('/api/v1/devices/attr-1', { method: 'PATCH', body: { colour: 'red' } });
      assert.equal(unknownField.status, 400);
      const unknownDevice = await t.api('/api/v1/devices/nobody', { method: 'PATCH', body: { name: 'x' } });
      assert.equal(unknownDevice.status, 404);
    });

    test('a device keeps its model version until migrated, and validation follows the migration', async () => {
      assert.equal((await t.api('/api/v1/models/valve', { method: 'PUT', body: VALVE_V1 })).status, 201);
      const { token } = await t.registerDevice('valve-1', 'valve');
      const explicitV1 = await t.registerDevice('valve-3', 'valve');
      assert.equal((await t.api('/api/v1/models/valve', { method: 'PUT', body: VALVE_V2 })).status, 201);

      const before = await t.api<DeviceBody>('/api/v1/devices/valve-1');
      assert.equal(before.body.modelVersion, 1, 'a new model version does not move existing devices');
      const newcomer = await t.registerDevice('valve-2', 'valve');
      assert.equal(newcomer.device.modelVersion, 2, 'new devices get the latest version');
      const pinned = await t.api<Registered>('/api/v1/devices', post({ id: 'valve-4', model: 'valve', modelVersion: 1 }));
      assert.equal(pinned.body.device.modelVersion, 1);

      const refused = await t.api<IngestBody>('/api/v1/devices/valve-1/telemetry', post({ position: 10, pressure: 2.5 }, token));
      assert.equal(refused.status, 200);
      assert.deepEqual(
        refused.body.rejections.map((r) => [r.property, r.reason]),
        [['pressure', 'unknown_property']],
      );
      assert.equal((await t.api('/api/v1/devices/valve-1/telemetry?property=pressure')).status, 400);

      assert.equal((await t.api('/api/v1/devices/valve-1', { method: 'PATCH', body: { modelVersion: 9 } })).status, 404);
      const migrated = await t.api<DeviceBody>('/api/v1/devices/valve-1', { method: 'PATCH', body: { modelVersion: 2 } });
      assert.equal(migrated.status, 200);
      assert.equal(migrated.body.modelVersion, 2);

      clock.advance(1000);
      const accepted = await t.api<IngestBody>('/api/v1/devices/valve-1/telemetry', post({ position: 11, pressure: 2.5 }, token));
      assert.equal(accepted.status, 200);
      assert.deepEqual(accepted.body.rejections, []);
      assert.equal(accepted.body.acceptedValues, 2);
      const stored = await t.api<RawPage>('/api/v1/devices/valve-1/telemetry?property=pressure');
      assert.deepEqual(stored.body.items, [{ property: 'pressure', ts: clock.now(), value: 2.5 }]);

      // Migrating with `model` alone moves to that model's latest version.
      const toLatest = await t.api<DeviceBody>('/api/v1/devices/valve-3', { method: 'PATCH', body: { model: 'valve' } });
      assert.equal(explicitV1.device.modelVersion, 1);
      assert.equal(toLatest.body.modelVersion, 2);
    });

    test('DELETE is 204, then the device is gone', async () => {
      await t.registerDevice('doomed');
      const deleted = await t.api('/api/v1/devices/doomed', { method: 'DELETE' });
      assert.equal(deleted.status, 204);
      assert.equal((await t.api('/api/v1/devices/doomed')).status, 404);
      assert.equal((await t.api('/api/v1/devices/doomed', { method: 'DELETE' })).status, 404);
      assert.equal((await t.api('/api/v1/resolve/88.100.1/doomed')).status, 404);
    });

    test('POST /devices/{id}/token rotates: the old token is refused, the new one works', async () => {
      const { token: old } = await t.registerDevice('rotor');
      assert.equal((await t.api('/api/v1/devices/rotor/telemetry', post({ speed: 1 }, old))).status, 200);
      const rotated = await t.api<Registered>('/api/v1/devices/rotor/token', { method: 'POST' });
      assert.equal(rotated.status, 200);
      assert.equal(rotated.body.device.id, 'rotor');
      assert.notEqual(rotated.body.token, old);
      const refused = await t.api<ErrorBody>('/api/v1/devices/rotor/telemetry', post({ speed: 2 }, old));
      assert.equal(refused.status, 401);
      assert.equal(refused.body.error, 'unauthorized');
      assert.equal((await t.api('/api/v1/devices/rotor/telemetry', post({ speed: 3 }, rotated.body.token))).status, 200);
      assert.equal((await t.api('/api/v1/devices/nobody/token', { method: 'POST' })).status, 404);
    });
  });

  describe('device filters and recent errors', () => {
    test('the device list filters by network profile and by presence status, with totals', async () => {
      await t.registerDevice('flt-eth', 'pump');
      await t.registerDevice('flt-nb', 'pump', { network: { profile: 'nbiot', reportInterval: '1h' } });
      const { token } = await t.registerDevice('flt-live', 'pump');
      const nb = await t.api<DevicePage>('/api/v1/devices?network=nbiot&limit=1000');
      assert.deepEqual(
        nb.body.items.map((d) => d.id),
        ['flt-nb'],
      );
      assert.equal(nb.body.total, 1);
      const client = await t.connectDevice('flt-live', token);
      try {
        const online = await t.api<DevicePage>('/api/v1/devices?status=online&limit=1000');
        assert.ok(online.body.items.some((d) => d.id === 'flt-live'));
        assert.ok(!online.body.items.some((d) => d.id === 'flt-eth'), 'never connected is not online');
        const unknown = await t.api<DevicePage>('/api/v1/devices?status=unknown&network=nbiot&limit=1000');
        assert.deepEqual(
          unknown.body.items.map((d) => d.id),
          ['flt-nb'],
        );
        // Pages of a status filter join up: every device once, in id order.
        const ids: string[] = [];
        let after = '';
        do {
          const page = await t.api<DevicePage>(`/api/v1/devices?status=unknown&limit=2${after ? `&after=${after}` : ''}`);
          ids.push(...page.body.items.map((d) => d.id));
          after = page.body.next ?? '';
        } while (after);
        const all = await t.api<DevicePage>('/api/v1/devices?status=unknown&limit=1000');
        assert.deepEqual(
          ids,
          all.body.items.map((d) => d.id),
        );
        assert.equal(new Set(ids).size, ids.length);
      } finally {
        await client.endAsync(true);
      }
      const bad = await t.api('/api/v1/devices?status=dozing');
      assert.equal(bad.status, 400);
    });

    test('GET /devices/{id}/errors lists what the device sent that was refused, newest first', async () => {
      const { token } = await t.registerDevice('err-1', 'pump');
      const empty = await t.api<{ items: unknown[] }>('/api/v1/devices/err-1/errors');
      assert.deepEqual(empty.body.items, []);
      await t.api('/api/v1/devices/err-1/telemetry', post({ speed: 500 }, token));
      await t.api('/api/v1/devices/err-1/telemetry', post({ colour: 'red', speed: 5 }, token));
      const errors = await t.api<{ items: { source: string; rejections: RejectionBody[] }[] }>('/api/v1/devices/err-1/errors');
      assert.deepEqual(
        errors.body.items.map((e) => e.rejections.map((r) => [r.property, r.reason])),
        [[['colour', 'unknown_property']], [['speed', 'out_of_range']]],
      );
      assert.equal(errors.body.items[0]?.source, 'telemetry');
      assert.equal((await t.api('/api/v1/devices/nobody/errors')).status, 404);
      // Deleted and registered again under the same id: the new device starts with no refusals.
      assert.equal((await t.api('/api/v1/devices/err-1', { method: 'DELETE' })).status, 204);
      await t.registerDevice('err-1', 'pump');
      assert.deepEqual((await t.api<{ items: unknown[] }>('/api/v1/devices/err-1/errors')).body.items, []);
    });
  });

  describe('resolve', () => {
    let device: DeviceBody;
    before(async () => {
      ({ device } = await t.registerDevice('resolvable'));
    });

    test('an identification code resolves to its device', async () => {
      const found = await t.api<DeviceBody>('/api/v1/resolve/88.100.1/resolvable');
      assert.equal(found.status, 200);
      assert.deepEqual(found.body, device);
    });

    test('an IPv6 address resolves in any valid spelling', async () => {
      const parts = ipaddr.IPv6.parse(device.ipv6).parts;
      const expanded = parts.map((p) => p.toString(16).padStart(4, '0')).join(':');
      assert.notEqual(expanded, device.ipv6);
      for (const spelling of [device.ipv6, device.ipv6.toUpperCase(), expanded, expanded.toUpperCase()]) {
        const found = await t.api<DeviceBody>(`/api/v1/resolve/${spelling}`);
        assert.equal(found.status, 200, spelling);
        assert.equal(found.body.id, 'resolvable', spelling);
      }
    });

    test('unknown codes and addresses are 404', async () => {
      for (const what of ['88.100.1/nobody', '88.100.2/resolvable', 'fd74:6c70:1f00:1::dead', 'resolvable', 'not an address']) {
        const response = await t.api<ErrorBody>(`/api/v1/resolve/${encodeURIComponent(what).replaceAll('%2F', '/')}`);
        assert.equal(response.status, 404, what);
        assert.equal(response.body.error, 'not_found', what);
      }
    });
  });

  describe('authentication', () => {
    let token: string;
    before(async () => {
      ({ token } = await t.registerDevice('auth-1'));
      await t.registerDevice('auth-2');
    });

    /** Every operation the OpenAPI document lists, with its path parameters filled in. */
    async function operations(): Promise<{ method: string; path: string }[]> {
      const spec = await t.api<OpenApi>('/api/v1/openapi.json');
      const fill: Record<string, string> = {
        id: 'auth-1',
        modelId: 'pump',
        action: 'reset',
        invocationId: 'inv-1',
        ref: '88.100.1/auth-1',
      };
      return (
        Object.entries(spec.body.paths)
          // The stream only answers WebSocket upgrades; its key check is tested below.
          .filter(([path]) => !path.endsWith('/stream'))
          .flatMap(([path, methods]) =>
            Object.entries(methods)
              // Operations the document marks as open to all (`security: []`): signing in, the OIDC round trip.
              .filter(
                ([, operation]) =>
                  !Array.isArray((operation as { security?: unknown }).security) ||
                  (operation as { security: unknown[] }).security.length > 0,
              )
              .map(([method]) => ({
                method: method.toUpperCase(),
                path: path.replace(/\{([^}]+)\}/g, (_, name: string) => fill[name] ?? 'x'),
              })),
          )
      );
    }

    test('every /api/v1 operation is 401 without a key and with a wrong key', async () => {
      const all = await operations();
      const listed = all.map((o) => `${o.method} ${o.path}`);
      for (const known of [
        'PUT /api/v1/models/pump',
        'GET /api/v1/models',
        'POST /api/v1/devices',
        'PATCH /api/v1/devices/auth-1',
        'DELETE /api/v1/devices/auth-1',
        'POST /api/v1/devices/auth-1/token',
        'GET /api/v1/resolve/88.100.1/auth-1',
        'POST /api/v1/devices/auth-1/telemetry',
        'GET /api/v1/devices/auth-1/telemetry',
        'GET /api/v1/devices/auth-1/latest',
      ]) {
        assert.ok(listed.includes(known), `${known} is among the operations checked`);
      }
      for (const { method, path } of all) {
        for (const auth of [null, 'wrong-key']) {
          const response = await t.api<ErrorBody>(path, { method, auth, ...(method === 'GET' || method === 'DELETE' ? {} : { body: {} }) });
          assert.equal(response.status, 401, `${method} ${path} with ${auth ?? 'no key'}`);
          assert.equal(response.body.error, 'unauthorized', `${method} ${path}`);
        }
      }
      assert.equal((await t.api('/api/v1/devices/auth-1')).status, 200, 'nothing was deleted');
      const metrics = await t.api<string>('/metrics');
      assert.match(metrics.body, /thingloop_auth_failures_total\{protocol="http"\} [1-9]/);
    });

    test('a device token cannot call admin endpoints', async () => {
      const admin: [string, string, unknown?][] = [
        ['GET', '/api/v1/models'],
        ['PUT', '/api/v1/models/pump', PUMP_MODEL],
        ['GET', '/api/v1/devices'],
        ['POST', '/api/v1/devices', { id: 'sneaky', model: 'pump' }],
        ['GET', '/api/v1/devices/auth-1'],
        ['PATCH', '/api/v1/devices/auth-1', { name: 'mine now' }],
        ['POST', '/api/v1/devices/auth-1/token'],
        ['DELETE', '/api/v1/devices/auth-1'],
        ['GET', '/api/v1/devices/auth-1/telemetry'],
        ['GET', '/api/v1/devices/auth-1/latest'],
        ['GET', '/api/v1/resolve/88.100.1/auth-1'],
        ['GET', '/api/v1/node'],
      ];
      for (const [method, path, body] of admin) {
        const response = await t.api(path, { method, auth: token, ...(body === undefined ? {} : { body }) });
        assert.equal(response.status, 401, `${method} ${path}`);
      }
      const device = await t.api<DeviceBody>('/api/v1/devices/auth-1');
      assert.equal(device.body.name, 'auth-1');
      assert.equal((await t.api('/api/v1/devices/sneaky')).status, 404);
    });

    test('a device token may post telemetry only for its own id', async () => {
      const own = await t.api<IngestBody>('/api/v1/devices/auth-1/telemetry', post({ speed: 12 }, token));
      assert.equal(own.status, 200);
      const other = await t.api<ErrorBody>('/api/v1/devices/auth-2/telemetry', post({ speed: 13 }, token));
      assert.equal(other.status, 401);
      const unknown = await t.api<ErrorBody>('/api/v1/devices/nobody/telemetry', post({ speed: 14 }, token));
      assert.equal(unknown.status, 401);
      const latest = await t.api<Latest>('/api/v1/devices/auth-2/latest');
      assert.deepEqual(latest.body.values, {}, 'nothing was stored for auth-2');
      // The admin key may report for any device.
      assert.equal((await t.api('/api/v1/devices/auth-2/telemetry', post({ speed: 15 }))).status, 200);
      assert.equal((await t.api('/api/v1/devices/nobody/telemetry', post({ speed: 15 }))).status, 404);
    });
  });

  describe('HTTP telemetry', () => {
    let token: string;
    before(async () => {
      ({ token } = await t.registerDevice('tel-1'));
    });

    test('a partly valid sample is stored in part: 200 with the rejections', async () => {
      const response = await t.api<IngestBody>(
        '/api/v1/devices/tel-1/telemetry',
        post({ speed: 55.5, temperature: 'hot', colour: 'red', starts: 3 }, token),
      );
      assert.equal(response.status, 200);
      assert.equal(response.body.acceptedSamples, 1);
      assert.equal(response.body.acceptedValues, 2);
      assert.deepEqual(
        response.body.rejections.map((r) => [r.property, r.reason]),
        [
          ['temperature', 'wrong_type'],
          ['colour', 'unknown_property'],
        ],
      );
      assert.ok(response.body.rejections.every((r) => r.message.length > 0));
      const latest = await t.api<Latest>('/api/v1/devices/tel-1/latest');
      assert.deepEqual(latest.body.values, { speed: { value: 55.5, ts: clock.now() }, starts: { value: 3, ts: clock.now() } });
    });

    test('nothing valid is 400 with the rejections', async () => {
      const response = await t.api<IngestBody>('/api/v1/devices/tel-1/telemetry', post({ speed: 500, mode: 'turbo' }, token));
      assert.equal(response.status, 400);
      assert.equal(response.body.acceptedSamples, 0);
      assert.equal(response.body.error, 'invalid');
      assert.deepEqual(
        response.body.rejections.map((r) => [r.property, r.reason]),
        [
          ['speed', 'out_of_range'],
          ['mode', 'not_in_enum'],
        ],
      );
    });

    test('malformed JSON is 400 with reason malformed_json; an oversized body is payload_too_large', async () => {
      const malformed = await t.api<IngestBody>('/api/v1/devices/tel-1/telemetry', { method: 'POST', raw: '{"speed": ', auth: token });
      assert.equal(malformed.status, 400);
      assert.deepEqual(
        malformed.body.rejections.map((r) => r.reason),
        ['malformed_json'],
      );
      const huge = JSON.stringify({ speed: 1, pad: 'x'.repeat(t.config.maxPayloadBytes) });
      const tooLarge = await t.api<IngestBody>('/api/v1/devices/tel-1/telemetry', { method: 'POST', raw: huge, auth: token });
      assert.equal(tooLarge.status, 400);
      assert.deepEqual(
        tooLarge.body.rejections.map((r) => r.reason),
        ['payload_too_large'],
      );
      const metrics = await t.api<string>('/metrics');
      assert.match(metrics.body, /thingloop_values_rejected_total\{reason="malformed_json"\} [1-9]/);
    });

    test('a batch keeps each sample timestamp (epoch ms or ISO) and refuses only bad samples', async () => {
      const base = NOW - 10 * MINUTE;
      const batch = [
        { ts: base, vibration: 1.25 },
        { ts: new Date(base + 1000).toISOString(), vibration: 2.5, running: true },
        { ts: '2026-03-01 11:50:02', vibration: 3 },
        { ts: base + 3000, vibration: -1 },
      ];
      const response = await t.api<IngestBody>('/api/v1/devices/tel-1/telemetry', post(batch, token));
      assert.equal(response.status, 200);
      assert.equal(response.body.acceptedSamples, 2);
      assert.equal(response.body.acceptedValues, 3);
      assert.deepEqual(
        response.body.rejections.map((r) => [r.sample, r.reason, r.property]),
        [
          [2, 'bad_timestamp', undefined],
          [3, 'out_of_range', 'vibration'],
        ],
      );
      const stored = await t.api<RawPage>(`/api/v1/devices/tel-1/telemetry?from=${base}&to=${base + MINUTE}`);
      // (The order of properties within one timestamp is the business of the pagination test.)
      const byTime = [...stored.body.items].sort((a, b) => a.ts - b.ts || a.property.localeCompare(b.property));
      assert.deepEqual(byTime, [
        { property: 'vibration', ts: base, value: 1.25 },
        { property: 'running', ts: base + 1000, value: true },
        { property: 'vibration', ts: base + 1000, value: 2.5 },
      ]);
    });
  });

  describe('telemetry queries', () => {
    // Minute-aligned so buckets of 1m can be computed by hand.
    const base = Date.UTC(2026, 1, 28, 0, 0, 0);
    const at = (seconds: number) => base + seconds * 1000;
    const iso = (ms: number) => new Date(ms).toISOString();

    before(async () => {
      await t.registerDevice('q-1');
      const samples = [
        // The first sample creates the vibration series before speed: storage order must not leak.
        { ts: at(0), vibration: 1.5, speed: 10, temperature: 20, running: true },
        { ts: at(20), speed: 20, mode: 'auto' },
        { ts: at(40), speed: 30 },
        { ts: at(60), speed: 5, vibration: 2.5 },
        { ts: at(110), speed: 7 },
        { ts: at(180), speed: 100, starts: 4 },
      ];
      const response = await t.api<IngestBody>('/api/v1/devices/q-1/telemetry', post(samples));
      assert.equal(response.status, 200);
      assert.deepEqual(response.body.rejections, []);
    });

    const query = <T = RawPage>(params: string) => t.api<T>(`/api/v1/devices/q-1/telemetry?${params}`);

    test('raw values filtered by property, in time order', async () => {
      const speed = await query(`property=speed&from=${base}&to=${at(300)}`);
      assert.equal(speed.status, 200);
      assert.equal(speed.body.deviceId, 'q-1');
      assert.deepEqual(
        speed.body.items.map((i) => [i.ts, i.value]),
        [
          [at(0), 10],
          [at(20), 20],
          [at(40), 30],
          [at(60), 5],
          [at(110), 7],
          [at(180), 100],
        ],
      );
      assert.ok(speed.body.items.every((i) => i.property === 'speed'));
      assert.equal(speed.body.next, null);

      const two = await query(`property=mode,running&from=${base}&to=${at(300)}`);
      assert.deepEqual(two.body.items, [
        { property: 'running', ts: at(0), value: true },
        { property: 'mode', ts: at(20), value: 'auto' },
      ]);
      const repeated = await query(`property=mode&property=running&from=${base}&to=${at(300)}`);
      assert.deepEqual(repeated.body.items, two.body.items);
    });

    test('from is inclusive, to exclusive, as epoch ms or ISO 8601', async () => {
      const epoch = await query(`property=speed&from=${at(20)}&to=${at(60)}`);
      assert.deepEqual(
        epoch.body.items.map((i) => i.value),
        [20, 30],
      );
      assert.equal(epoch.body.from, at(20));
      assert.equal(epoch.body.to, at(60));
      const isoRange = await query(`property=speed&from=${encodeURIComponent(iso(at(20)))}&to=${encodeURIComponent(iso(at(60)))}`);
      assert.deepEqual(isoRange.body.items, epoch.body.items);
      assert.equal(isoRange.body.from, at(20));

      // Defaults: the 24 hours up to now (the manual clock), which base (over 36 hours ago) is not in.
      const defaults = await query('property=starts');
      assert.equal(defaults.body.to, clock.now() + 1);
      assert.equal(defaults.body.from, clock.now() + 1 - 86_400_000);
      assert.deepEqual(defaults.body.items, []);
      const relative = await query('property=starts&from=-2d');
      assert.equal(relative.body.from, clock.now() - 2 * 86_400_000);
      assert.deepEqual(relative.body.items, [{ property: 'starts', ts: at(180), value: 4 }]);
      const relativeTo = await query('property=starts&from=-2d&to=-1d');
      assert.equal(relativeTo.body.to, clock.now() - 86_400_000);
      assert.deepEqual(relativeTo.body.items, [{ property: 'starts', ts: at(180), value: 4 }]);

      const backwards = await query<ErrorBody>(`from=${at(60)}&to=${at(20)}`);
      assert.equal(backwards.status, 400);
      const garbage = await query<ErrorBody>('from=yesterday');
      assert.equal(garbage.status, 400);
      assert.match(garbage.body.message, /"from"/);
    });

    test('pages of `limit` joined with cursor=next return every point once, in (ts, property) order', async () => {
      const range = `from=${base}&to=${at(300)}`;
      const whole = await query(`${range}&limit=10000`);
      assert.equal(whole.body.items.length, 12);
      assert.equal(whole.body.next, null);
      const sorted = [...whole.body.items].sort((a, b) => a.ts - b.ts || (a.property < b.property ? -1 : a.property > b.property ? 1 : 0));
      assert.deepEqual(whole.body.items, sorted, 'ordered by ts, then property name');

      for (const limit of [1, 3, 5, 12]) {
        const collected: RawItem[] = [];
        let cursor: string | null = null;
        const sizes: number[] = [];
        do {
          const page: { status: number; body: RawPage } = await query(`${range}&limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
          assert.equal(page.status, 200);
          collected.push(...page.body.items);
          sizes.push(page.body.items.length);
          cursor = page.body.next;
          assert.ok(sizes.length <= 20, 'pagination terminates');
        } while (cursor !== null);
        assert.deepEqual(collected, whole.body.items, `limit ${limit}`);
        // Every page but the last is full; at most one (empty) page follows the last full one.
        assert.ok(
          sizes.slice(0, -1).every((size) => size === limit),
          `limit ${limit}: page sizes ${sizes}`,
        );
        assert.ok(sizes.length <= Math.floor(12 / limit) + 1, `limit ${limit}: page sizes ${sizes}`);
      }

      const badCursor = await query<ErrorBody>(`${range}&cursor=not-a-cursor`);
      assert.equal(badCursor.status, 400);
      assert.match(badCursor.body.message, /cursor/);
      assert.equal((await query(`${range}&limit=0`)).status, 400);
      assert.equal((await query(`${range}&limit=10001`)).status, 400);
    });

    test('an unknown property is 400 naming the valid ones', async () => {
      const response = await query<ErrorBody>('property=colour');
      assert.equal(response.status, 400);
      assert.match(response.body.message, /colour/);
      for (const name of ['speed', 'temperature', 'vibration', 'running', 'mode', 'starts'])
        assert.match(response.body.message, new RegExp(name));
    });

    test('aggregates over 1m buckets match hand-computed values', async () => {
      const expected: Record<string, [number, number | null, number][]> = {
        // [bucket start, value, count] for speed: 10,20,30 | 5,7 | (empty) | 100
        avg: [
          [base, 20, 3],
          [base + MINUTE, 6, 2],
          [base + 3 * MINUTE, 100, 1],
        ],
        min: [
          [base, 10, 3],
          [base + MINUTE, 5, 2],
          [base + 3 * MINUTE, 100, 1],
        ],
        max: [
          [base, 30, 3],
          [base + MINUTE, 7, 2],
          [base + 3 * MINUTE, 100, 1],
        ],
        count: [
          [base, 3, 3],
          [base + MINUTE, 2, 2],
          [base + 3 * MINUTE, 1, 1],
        ],
        sum: [
          [base, 60, 3],
          [base + MINUTE, 12, 2],
          [base + 3 * MINUTE, 100, 1],
        ],
        first: [
          [base, 10, 3],
          [base + MINUTE, 5, 2],
          [base + 3 * MINUTE, 100, 1],
        ],
        last: [
          [base, 30, 3],
          [base + MINUTE, 7, 2],
          [base + 3 * MINUTE, 100, 1],
        ],
      };
      for (const [fn, points] of Object.entries(expected)) {
        const response = await query<AggregateBody>(`property=speed&agg=${fn}&bucket=1m&from=${base}&to=${at(240)}`);
        assert.equal(response.status, 200, fn);
        assert.equal(response.body.agg, fn);
        assert.equal(response.body.bucketMs, MINUTE);
        assert.deepEqual(
          response.body.series.map((s) => s.property),
          ['speed'],
        );
        assert.deepEqual(
          response.body.series[0]?.points.map((p) => [p.ts, p.value, p.count]),
          points,
          fn,
        );
      }
    });

    test('buckets align to multiples of the bucket, not to `from`; all numeric properties by default', async () => {
      const response = await query<AggregateBody>(`agg=max&bucket=1m&from=${at(30)}&to=${at(240)}`);
      assert.equal(response.status, 200);
      const byProperty = Object.fromEntries(response.body.series.map((s) => [s.property, s.points.map((p) => [p.ts, p.value, p.count])]));
      assert.deepEqual(Object.keys(byProperty).sort(), ['speed', 'starts', 'temperature', 'vibration']);
      assert.deepEqual(byProperty.speed, [
        [base, 30, 1],
        [base + MINUTE, 7, 2],
        [base + 3 * MINUTE, 100, 1],
      ]);
      assert.deepEqual(byProperty.vibration, [[base + MINUTE, 2.5, 1]]);
      assert.deepEqual(byProperty.temperature, []);

      const hourly = await query<AggregateBody>(`property=speed&agg=avg&bucket=1h&from=${at(30)}&to=${at(240)}`);
      assert.deepEqual(hourly.body.series[0]?.points, [{ ts: base, value: (30 + 5 + 7 + 100) / 4, count: 4 }]);
    });

    test('too many buckets, a non-numeric property, a bad function or bucket are 400', async () => {
      const tooMany = await query<ErrorBody>(`agg=avg&bucket=1s&from=${base}&to=${base + 86_400_000}`);
      assert.equal(tooMany.status, 400);
      assert.match(tooMany.body.message, /buckets/);
      const notNumeric = await query<ErrorBody>(`property=mode&agg=avg&from=${base}&to=${at(300)}`);
      assert.equal(notNumeric.status, 400);
      assert.match(notNumeric.body.message, /mode/);
      const counted = await query<AggregateBody>(`property=mode&agg=count&from=${base}&to=${at(300)}`);
      assert.equal(counted.status, 200);
      assert.deepEqual(counted.body.series[0]?.points, [{ ts: base, value: 1, count: 1 }]);
      assert.equal((await query(`agg=median&from=${base}&to=${at(300)}`)).status, 400);
      assert.equal((await query(`agg=avg&bucket=soon&from=${base}&to=${at(300)}`)).status, 400);
    });

    test('/latest has the last value of every property with its time', async () => {
      const latest = await t.api<Latest>('/api/v1/devices/q-1/latest');
      assert.equal(latest.status, 200);
      assert.deepEqual(latest.body, {
        deviceId: 'q-1',
        values: {
          mode: { value: 'auto', ts: at(20) },
          running: { value: true, ts: at(0) },
          speed: { value: 100, ts: at(180) },
          starts: { value: 4, ts: at(180) },
          temperature: { value: 20, ts: at(0) },
          vibration: { value: 2.5, ts: at(60) },
        },
      });
      assert.equal((await t.api('/api/v1/devices/nobody/latest')).status, 404);
      assert.equal((await t.api('/api/v1/devices/nobody/telemetry')).status, 404);
    });
  });

  describe('live stream (WebSocket)', () => {
    let token: string;
    before(async () => {
      ({ token } = await t.registerDevice('live-1'));
      await t.registerDevice('live-2');
    });

    const streamUrl = (id: string) => `${t.node.httpUrl.replace('http', 'ws')}/api/v1/devices/${id}/stream`;

    /** Collects the messages of a socket and lets a test await the next one. */
    function open(url: string, key?: string) {
      const socket = new WebSocket(url, key === undefined ? {} : { headers: { authorization: `Bearer ${key}` } });
      const refused = new Promise<number>((resolve) =>
        socket.on('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0)),
      );
      const queue: JsonObject[] = [];
      const waiting: ((message: JsonObject) => void)[] = [];
      socket.on('message', (data: WebSocket.RawData) => {
        const message = JSON.parse(data.toString()) as JsonObject;
        const waiter = waiting.shift();
        if (waiter) waiter(message);
        else queue.push(message);
      });
      const closed = new Promise<{ code: number; reason: string }>((resolve) =>
        socket.on('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })),
      );
      const next = () => {
        const queued = queue.shift();
        return queued ? Promise.resolve(queued) : new Promise<JsonObject>((resolve) => waiting.push(resolve));
      };
      return { socket, next, closed, refused };
    }

    test('the admin key receives accepted telemetry of that device as {deviceId, ts, values}', async () => {
      const stream = open(streamUrl('live-1'), ADMIN_KEY);
      try {
        assert.deepEqual(await stream.next(), { subscribed: 'live-1' });
        // Another device's telemetry and refused values are not streamed.
        assert.equal((await t.api('/api/v1/devices/live-2/telemetry', post({ speed: 1 }))).status, 200);
        assert.equal((await t.api('/api/v1/devices/live-1/telemetry', post({ speed: 999 }, token))).status, 400);
        const ts = clock.now() - 5000;
        const posted = await t.api('/api/v1/devices/live-1/telemetry', post([{ ts, speed: 42, colour: 'red' }, { running: true }], token));
        assert.equal(posted.status, 200);
        assert.deepEqual(await stream.next(), { deviceId: 'live-1', ts, values: { speed: 42 } });
        assert.deepEqual(await stream.next(), { deviceId: 'live-1', ts: clock.now(), values: { running: true } });
      } finally {
        stream.socket.close();
        await stream.closed;
      }
    });

    test('a wrong key, a token of another device, or a key in the query string is refused with 401 before the upgrade', async () => {
      for (const key of ['wrong-key', token]) {
        const stream = open(streamUrl('live-2'), key);
        assert.equal(await stream.refused, 401, key === token ? "another device's token" : 'wrong key');
      }
      const inQuery = open(`${streamUrl('live-2')}?key=${encodeURIComponent(ADMIN_KEY)}`);
      assert.equal(await inQuery.refused, 401, 'the admin key in ?key= is not accepted');
    });

    test('a browser opens the stream with a single-use ticket, never with its key in the URL', async () => {
      const issued = await t.api<{ ticket: string; expiresAt: number }>('/api/v1/stream-tickets', { method: 'POST' });
      assert.equal(issued.status, 201);
      assert.ok(issued.body.expiresAt > clock.now());
      const stream = open(`${streamUrl('live-1')}?ticket=${issued.body.ticket}`);
      try {
        assert.deepEqual(await stream.next(), { subscribed: 'live-1' });
      } finally {
        stream.socket.close();
        await stream.closed;
      }
      const again = open(`${streamUrl('live-1')}?ticket=${issued.body.ticket}`);
      assert.equal(await again.refused, 401, 'a ticket opens one socket only');
      assert.equal((await t.api('/api/v1/stream-tickets', { method: 'POST', auth: token })).status, 401, 'a device token gets no ticket');
    });

    // The timeout only stops a hang (the socket never closing) from stalling the suite.
    test('an unknown device is closed with 4404', { timeout: 5000 }, async () => {
      const stream = open(streamUrl('nobody'), ADMIN_KEY);
      const { code } = await stream.closed;
      assert.equal(code, 4404);
    });
  });

  describe('operations', () => {
    test('OpenAPI 3 document lists the /api/v1 paths; it needs a key unless the node makes it public', async () => {
      assert.equal((await t.api('/api/v1/openapi.json', { auth: null })).status, 401);
      const spec = await t.api<OpenApi>('/api/v1/openapi.json');
      assert.equal(spec.status, 200);
      assert.match(spec.body.openapi, /^3\.\d+\.\d+$/);
      const expected: Record<string, string[]> = {
        '/api/v1/models': ['get'],
        '/api/v1/models/{modelId}': ['get', 'put'],
        '/api/v1/models/{modelId}/versions': ['get'],
        '/api/v1/devices': ['get', 'post'],
        '/api/v1/devices/{id}': ['delete', 'get', 'patch'],
        '/api/v1/devices/{id}/token': ['post'],
        '/api/v1/devices/{id}/telemetry': ['get', 'post'],
        '/api/v1/devices/{id}/latest': ['get'],
        '/api/v1/devices/{id}/stream': ['get'],
      };
      for (const [path, methods] of Object.entries(expected)) {
        const listed = spec.body.paths[path];
        assert.ok(listed, `${path} is documented`);
        for (const method of methods) assert.ok(method in listed, `${method.toUpperCase()} ${path} is documented`);
      }
      assert.ok(
        Object.keys(spec.body.paths).some((p) => p.startsWith('/api/v1/resolve/')),
        'resolve is documented',
      );
    });

    test('/healthz and /readyz with checks need no key; /metrics in Prometheus text needs one', async () => {
      const health = await t.api<JsonObject>('/healthz', { auth: null });
      assert.equal(health.status, 200);
      assert.deepEqual(health.body, { status: 'ok' });

      const ready = await t.api<{ status: string; checks: Record<string, boolean> }>('/readyz', { auth: null });
      assert.equal(ready.status, 200);
      assert.equal(ready.body.status, 'ready');
      assert.ok(Object.keys(ready.body.checks).length >= 2);
      assert.ok(Object.values(ready.body.checks).every((ok) => ok === true));
      assert.equal(ready.body.checks.database, true);

      assert.equal((await t.api('/metrics', { auth: null })).status, 401);
      const before = await t.api<string>('/metrics');
      const received = (text: string) => Number(/thingloop_messages_received_total\{source="http"\} (\d+)/.exec(text)?.[1] ?? 'NaN');
      const { token } = await t.registerDevice('metered');
      assert.equal((await t.api('/api/v1/devices/metered/telemetry', post({ speed: 3 }, token))).status, 200);
      const metrics = await t.api<string>('/metrics');
      assert.equal(metrics.status, 200);
      assert.equal(typeof metrics.body, 'string');
      assert.match(metrics.body, /# TYPE thingloop_messages_received_total counter/);
      assert.equal(received(metrics.body), received(before.body) + 1);
      for (const name of ['thingloop_messages_accepted_total', 'thingloop_values_stored_total', 'thingloop_values_rejected_total']) {
        assert.match(metrics.body, new RegExp(`# TYPE ${name} counter`));
      }
      assert.match(metrics.body, /thingloop_ingest_queue_depth \d+/);
    });
  });
});
