import { describe, expect, it } from 'vitest';
import type { StoredDeviceEvent } from '../api/types';
import { appendOlder, type EventList, eventNames, eventsHint, eventsPath, formatEventData, mergeNewest } from './deviceEvents';

const event = (id: number, name = 'motorState'): StoredDeviceEvent => ({
  id,
  deviceId: 'pump-1',
  name,
  ts: 1_000 + id,
  data: { running: id % 2 === 0 },
});
const list = (ids: number[], next: string | null): EventList => ({ items: ids.map((id) => event(id)), next });
const ids = (l: EventList) => l.items.map((e) => e.id);

describe('events query', () => {
  it('asks for the newest page of every stored event, or of one name, continuing at a cursor', () => {
    expect(eventsPath('pump-1')).toBe('/api/v1/devices/pump-1/events?limit=50');
    expect(eventsPath('site 1/pump', { name: 'motorState', cursor: '42', limit: 10 })).toBe(
      '/api/v1/devices/site%201%2Fpump/events?name=motorState&limit=10&cursor=42',
    );
    expect(eventsPath('pump-1', { name: '', cursor: null })).toBe('/api/v1/devices/pump-1/events?limit=50');
    expect(eventsPath('pump-1', { name: 'door&open' })).toContain('name=door%26open');
  });
});

describe('event names and the empty state', () => {
  it('takes the names from the model in its order, none without events', () => {
    expect(eventNames({ events: { motorState: {}, fault: { data: { type: 'string' } } } })).toEqual(['motorState', 'fault']);
    expect(eventNames({})).toEqual([]);
  });

  it('says where events come from and which the model defines', () => {
    expect(eventsHint('pump-1', ['motorState', 'fault'])).toBe(
      'Devices publish events on things/pump-1/events/{name}; this model defines: motorState, fault.',
    );
    expect(eventsHint('valve-1', [])).toMatch(/^This model defines no events/);
  });

  it('renders data as one line of JSON, cut when long, and nothing for an event without data', () => {
    expect(formatEventData({ running: true })).toBe('{"running":true}');
    expect(formatEventData('door open')).toBe('door open');
    expect(formatEventData(0)).toBe('0');
    expect(formatEventData(null)).toBe('');
    const long = formatEventData({ text: 'x'.repeat(200) });
    expect(long).toHaveLength(80);
    expect(long.endsWith('…')).toBe(true);
  });
});

describe('merging a polled page into the list', () => {
  it('puts new events on top and keeps the cursor of the first page', () => {
    const merged = mergeNewest(list([5, 4, 3], '3'), list([7, 6, 5], '5'));
    expect(ids(merged)).toEqual([7, 6, 5, 4, 3]);
    expect(merged.next).toBe('3');
  });

  it('keeps older pages loaded with "Load older" and their cursor', () => {
    const shown = appendOlder(list([10, 9, 8], '8'), list([7, 6, 5], '5'));
    expect(ids(shown)).toEqual([10, 9, 8, 7, 6, 5]);
    expect(shown.next).toBe('5');
    const merged = mergeNewest(shown, list([11, 10, 9], '9'));
    expect(ids(merged)).toEqual([11, 10, 9, 8, 7, 6, 5]);
    expect(merged.next).toBe('5');
  });

  it('changes nothing when nothing new arrived', () => {
    const shown = list([3, 2, 1], null);
    expect(mergeNewest(shown, list([3, 2, 1], null))).toEqual(shown);
  });

  it('starts over from the polled page when more arrived than a page holds, rather than show a hole', () => {
    const merged = mergeNewest(list([3, 2, 1], null), list([20, 19, 18], '18'));
    expect(ids(merged)).toEqual([20, 19, 18]);
    expect(merged.next).toBe('18');
  });

  it('takes the polled page when the list was empty, and an empty page when the events are gone', () => {
    expect(ids(mergeNewest(list([], null), list([2, 1], null)))).toEqual([2, 1]);
    expect(ids(mergeNewest(list([2, 1], null), list([], null)))).toEqual([]);
  });

  it('does not repeat an event that a poll already brought when an older page is appended', () => {
    const shown = appendOlder(list([9, 8, 7], '7'), list([7, 6], null));
    expect(ids(shown)).toEqual([9, 8, 7, 6]);
    expect(shown.next).toBeNull();
  });
});
