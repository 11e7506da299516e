import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type DeviceRecord, resolveNetworkProfile } from '../src/registry/index.js';
import { sparkplugForwardAllowed, sparkplugPublishAllowed, sparkplugSubscribeAllowed } from '../src/transport/mqtt/sparkplug-acl.js';

function device(binding: DeviceRecord['binding']): DeviceRecord {
  return {
    id: 'plant1:gw1',
    tenant: 'default',
    uid: 1,
    name: 'gw1',
    model: 'm',
    modelVersion: 1,
    code: 'c',
    ipv6: '::1',
    attributes: {},
    network: resolveNetworkProfile(),
    binding,
    createdAt: 0,
    updatedAt: 0,
  };
}

const gw1 = device({ protocol: 'sparkplug-b', group: 'plant1', edgeNode: 'gw1' });

describe('Sparkplug B ACL on the embedded broker', () => {
  test('an edge node publishes its own births, deaths and data, nothing of another group or edge node', () => {
    for (const topic of [
      'spBv1.0/plant1/NBIRTH/gw1',
      'spBv1.0/plant1/NDEATH/gw1',
      'spBv1.0/plant1/NDATA/gw1',
      'spBv1.0/plant1/DBIRTH/gw1/pump1',
      'spBv1.0/plant1/DDEATH/gw1/pump1',
      'spBv1.0/plant1/DDATA/gw1/pump1',
    ]) {
      assert.equal(sparkplugPublishAllowed(gw1, topic), true, topic);
    }
    for (const topic of [
      'spBv1.0/plant2/NDATA/gw1',
      'spBv1.0/plant1/NDATA/gw2',
      'spBv1.0/plant1/DDATA/gw2/pump1',
      'spBv1.0/plant1/NCMD/gw1',
      'spBv1.0/plant1/DCMD/gw1/pump1',
      'spBv1.0/STATE/gw1',
      'spBv1.0/plant1/NDATA/gw1/extra',
      'spBv1.0/plant1/DDATA/gw1',
      'spBv1.0/plant1/DDATA/gw1/pump1/x',
      'spBv1.0/plant1/DDATA/gw1/',
      'spBv2.0/plant1/NDATA/gw1',
    ]) {
      assert.equal(sparkplugPublishAllowed(gw1, topic), false, topic);
    }
  });

  test('it hears its own commands and STATE only', () => {
    for (const filter of [
      'spBv1.0/plant1/NCMD/gw1',
      'spBv1.0/plant1/DCMD/gw1/+',
      'spBv1.0/plant1/DCMD/gw1/pump1',
      'spBv1.0/STATE/+',
      'spBv1.0/STATE/scada',
    ]) {
      assert.equal(sparkplugSubscribeAllowed(gw1, filter), true, filter);
    }
    for (const filter of [
      'spBv1.0/#',
      'spBv1.0/plant1/#',
      'spBv1.0/plant1/NCMD/+',
      'spBv1.0/plant1/DCMD/gw2/+',
      'spBv1.0/plant1/DCMD/gw1/#',
      'spBv1.0/+/NCMD/gw1',
      'spBv1.0/plant1/NDATA/gw1',
    ]) {
      assert.equal(sparkplugSubscribeAllowed(gw1, filter), false, filter);
    }
    assert.equal(sparkplugForwardAllowed(gw1, 'spBv1.0/plant1/DCMD/gw1/pump1'), true);
    assert.equal(sparkplugForwardAllowed(gw1, 'spBv1.0/STATE/scada'), true);
    assert.equal(sparkplugForwardAllowed(gw1, 'spBv1.0/plant1/NCMD/gw2'), false);
    assert.equal(sparkplugForwardAllowed(gw1, 'spBv1.0/plant1/NDATA/gw1'), false);
  });

  test('devices of other protocols, and devices behind an edge node, get nothing', () => {
    const mqttDevice = device({ protocol: 'mqtt' });
    const behind = device({ protocol: 'sparkplug-b', group: 'plant1', edgeNode: 'gw1', device: 'pump1' });
    for (const d of [mqttDevice, behind]) {
      assert.equal(sparkplugPublishAllowed(d, 'spBv1.0/plant1/NDATA/gw1'), false);
      assert.equal(sparkplugSubscribeAllowed(d, 'spBv1.0/STATE/+'), false);
      assert.equal(sparkplugForwardAllowed(d, 'spBv1.0/STATE/scada'), false);
    }
  });
});
