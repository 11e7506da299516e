/**
 * A device's events as the console lists them: newest first, one page at a time
 * (`GET /api/v1/devices/{id}/events?name=&limit=&cursor=`), refreshed by polling the newest page.
 */
import type { StoredDeviceEvent, ThingModelDocument } from '../api/types';
import { shorten } from './deviceErrors';

export const EVENTS_PAGE = 50;

/** The query for one page; with no time bounds "Load older" reaches whatever retention kept. */
export function eventsPath(deviceId: string, options: { name?: string; cursor?: string | null; limit?: number } = {}): string {
  const params = new URLSearchParams();
  if (options.name) params.set('name', options.name);
  params.set('limit', String(options.limit ?? EVENTS_PAGE));
  if (options.cursor) params.set('cursor', options.cursor);
  return `/api/v1/devices/${encodeURIComponent(deviceId)}/events?${params}`;
}

/** The event names the model defines, in the model's order. */
export function eventNames(model: Pick<ThingModelDocument, 'events'>): string[] {
  return Object.keys(model.events ?? {});
}

/** What the empty list says: where events come from, and which ones this model has. */
export function eventsHint(deviceId: string, names: string[]): string {
  if (names.length === 0) return 'This model defines no events, so this device has none to report.';
  return `Devices publish events on things/${deviceId}/events/{name}; this model defines: ${names.join(', ')}.`;
}

/** Event data as one short line of JSON; an event without data says so. */
export function formatEventData(data: StoredDeviceEvent['data']): string {
  if (data === null || data === undefined) return '';
  return shorten(data);
}

/** The list the panel shows: the events loaded so far, newest first, and the cursor to older ones. */
export interface EventList {
  items: StoredDeviceEvent[];
  /** The `next` of the oldest page loaded; null when nothing older is stored. */
  next: string | null;
}

const byNewest = (a: StoredDeviceEvent, b: StoredDeviceEvent) => b.id - a.id;

/** Appends an older page (from "Load older") below what is shown. */
export function appendOlder(current: EventList, older: EventList): EventList {
  const seen = new Set(current.items.map((e) => e.id));
  return { items: [...current.items, ...older.items.filter((e) => !seen.has(e.id))].sort(byNewest), next: older.next };
}

/**
 * Folds a freshly polled newest page into what is shown. Events newer than the shown ones go on
 * top and older pages loaded with "Load older" stay. When more arrived than one page holds, the
 * fresh page does not reach the shown events: the list restarts from the fresh page rather than
 * show a hole.
 */
export function mergeNewest(current: EventList, fresh: EventList): EventList {
  const newestShown = current.items[0]?.id;
  const oldestFresh = fresh.items.at(-1)?.id;
  if (newestShown === undefined || oldestFresh === undefined) return fresh;
  if (fresh.next !== null && oldestFresh > newestShown) return fresh;
  const seen = new Set(fresh.items.map((e) => e.id));
  const items = [...fresh.items, ...current.items.filter((e) => !seen.has(e.id))].sort(byNewest);
  // The cursor belongs to the oldest page shown: the older pages already loaded, if they go further back.
  const oldestShown = current.items.at(-1)?.id ?? oldestFresh;
  return { items, next: oldestShown < oldestFresh ? current.next : fresh.next };
}
