import { describe, expect, it } from 'vitest';
import type { DeviceErrorReport } from '../api/types';
import { errorRows, shorten } from './deviceErrors';
import {
  describeFilters,
  devicesPath,
  filtersFromQuery,
  filtersToQuery,
  isFiltered,
  joinWords,
  NO_FILTERS,
  without,
} from './deviceFilters';
import { href, parseRoute } from './router';

describe('device list filters in the URL', () => {
  it('reads every filter and the cursor from the query', () => {
    const route = parseRoute(
      '/devices',
      '?q=pump&model=centrifugal-pump&edge=site-1&network=nbiot&protocol=modbus-tcp&status=asleep&after=pump-0050',
    );
    expect(route.name).toBe('devices');
    if (route.name !== 'devices') return;
    expect(filtersFromQuery(route.query)).toEqual({
      q: 'pump',
      model: 'centrifugal-pump',
      edge: 'site-1',
      network: 'nbiot',
      protocol: 'modbus-tcp',
      status: 'asleep',
      after: 'pump-0050',
    });
  });

  it('drops a network or status the API would refuse, and missing ones are empty', () => {
    expect(filtersFromQuery(new URLSearchParams('network=5g&status=sleeping&protocol=zigbee'))).toEqual({ ...NO_FILTERS, after: '' });
    expect(filtersFromQuery(new URLSearchParams(''))).toEqual({ ...NO_FILTERS, after: '' });
  });

  it('writes only the filters that are set, and round-trips through href.devices', () => {
    const filters = { ...NO_FILTERS, network: 'wifi', status: 'offline', q: ' tank ' };
    expect(filtersToQuery(filters)).toEqual({ q: 'tank', network: 'wifi', status: 'offline' });
    expect(href.devices(filtersToQuery(NO_FILTERS))).toBe('/devices');
    const link = href.devices(filtersToQuery(filters, 'tank-0009'));
    expect(link).toBe('/devices?q=tank&network=wifi&status=offline&after=tank-0009');
    const [path, search] = link.split('?') as [string, string];
    const back = parseRoute(path, `?${search}`);
    expect(back.name === 'devices' && filtersFromQuery(back.query)).toEqual({ ...filters, q: 'tank', after: 'tank-0009' });
  });

  it('asks the API to filter by model, edge, network, protocol and status, starting at the id prefix', () => {
    const filters = { q: 'pump', model: 'centrifugal-pump', edge: 'site 1', network: 'ethernet', protocol: 'opcua', status: 'online' };
    expect(devicesPath(filters, '', 50)).toBe(
      '/api/v1/devices?limit=50&model=centrifugal-pump&edge=site+1&network=ethernet&protocol=opcua&status=online&after=pumo%7E',
    );
    // A cursor wins over the prefix start.
    expect(devicesPath(filters, 'pump-0050', 50)).toContain('after=pump-0050');
    expect(devicesPath(NO_FILTERS, '', 10)).toBe('/api/v1/devices?limit=10');
  });

  it('says which filters to loosen', () => {
    const filters = { q: 'x', model: '', edge: 'site-1', network: 'nbiot', protocol: 'modbus-tcp', status: 'offline' };
    expect(isFiltered(filters)).toBe(true);
    expect(isFiltered(NO_FILTERS)).toBe(false);
    const described = describeFilters(filters, (id) => (id === 'site-1' ? 'North site' : undefined));
    expect(described.map((d) => d.key)).toEqual(['q', 'edge', 'network', 'protocol', 'status']);
    expect(joinWords(described.map((d) => d.text))).toBe(
      'ids starting with “x”, edge North site (site-1), network NB-IoT, protocol Modbus TCP and status offline',
    );
    expect(describeFilters({ ...NO_FILTERS, edge: 'gone' })[0]?.text).toBe('edge gone');
    expect(without(filters, 'network')).toEqual({ ...filters, network: '' });
    expect(joinWords([])).toBe('');
    expect(joinWords(['a', 'b'])).toBe('a and b');
  });
});

describe('errors the device sent', () => {
  const reports: DeviceErrorReport[] = [
    { ts: 100, source: 'twin', rejections: [{ reason: 'unknown_property', message: 'no such property', property: 'x' }] },
    {
      ts: 200,
      source: 'telemetry',
      rejections: [
        { reason: 'out_of_range', message: 'above 100', property: 'speed', value: 9999, sample: 0 },
        { reason: 'wrong_type', message: 'not a number', property: 'flow', value: 'fast' },
      ],
    },
  ];

  it('lists one row per refusal, newest report first', () => {
    const rows = errorRows(reports);
    expect(rows.map((r) => `${r.ts} ${r.source} ${r.reason} ${r.property} ${r.value}`)).toEqual([
      '200 telemetry out_of_range speed 9999',
      '200 telemetry wrong_type flow fast',
      '100 twin unknown_property x ',
    ]);
    expect(new Set(rows.map((r) => r.key)).size).toBe(3);
    expect(errorRows([])).toEqual([]);
  });

  it('shows sent values as short text', () => {
    expect(shorten(undefined)).toBe('');
    expect(shorten({ a: 1 })).toBe('{"a":1}');
    expect(shorten(null)).toBe('null');
    const long = shorten('y'.repeat(500));
    expect(long).toHaveLength(80);
    expect(long.endsWith('…')).toBe(true);
  });
});
