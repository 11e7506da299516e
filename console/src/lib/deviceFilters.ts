/**
 * The device list's filters as the URL holds them (`/devices?q=…&model=…&edge=…&network=…&protocol=…&status=…&after=…`)
 * and as the API takes them (`GET /api/v1/devices?model=…&edge=…&network=…&protocol=…&status=…&after=…&limit=…`).
 */
import { afterForPrefix } from './search';

export const NETWORK_PROFILES = [
  { value: 'ethernet', label: 'Ethernet' },
  { value: 'wifi', label: 'Wi-Fi' },
  { value: 'cat1', label: 'LTE Cat 1' },
  { value: 'redcap', label: '5G RedCap' },
  { value: 'nbiot', label: 'NB-IoT' },
  { value: 'lpwan', label: 'LPWAN' },
] as const;

export const PRESENCE_STATUSES = ['online', 'asleep', 'offline', 'unknown'] as const;

/** How the node reaches a device (its binding protocol). */
export const BINDING_PROTOCOLS = [
  { value: 'mqtt', label: 'MQTT' },
  { value: 'http', label: 'HTTP' },
  { value: 'coap', label: 'CoAP' },
  { value: 'modbus-tcp', label: 'Modbus TCP' },
  { value: 'opcua', label: 'OPC UA' },
  { value: 'sparkplug-b', label: 'Sparkplug B' },
] as const;

export interface DeviceFilters {
  /** Id prefix. */
  q: string;
  model: string;
  edge: string;
  network: string;
  protocol: string;
  status: string;
}

export const NO_FILTERS: DeviceFilters = { q: '', model: '', edge: '', network: '', protocol: '', status: '' };

const KEYS = ['q', 'model', 'edge', 'network', 'protocol', 'status'] as const;
const NETWORK_VALUES: readonly string[] = NETWORK_PROFILES.map((p) => p.value);
const STATUS_VALUES: readonly string[] = PRESENCE_STATUSES;
const PROTOCOL_VALUES: readonly string[] = BINDING_PROTOCOLS.map((p) => p.value);

/** Reads the filters from the URL; a network, protocol or status the API would refuse is dropped. */
export function filtersFromQuery(query: URLSearchParams): DeviceFilters & { after: string } {
  const get = (key: string) => (query.get(key) ?? '').trim();
  const network = get('network');
  const status = get('status');
  const protocol = get('protocol');
  return {
    q: get('q'),
    model: get('model'),
    edge: get('edge'),
    network: NETWORK_VALUES.includes(network) ? network : '',
    protocol: PROTOCOL_VALUES.includes(protocol) ? protocol : '',
    status: STATUS_VALUES.includes(status) ? status : '',
    after: get('after'),
  };
}

/** The query for `href.devices`: only the filters that are set, in a stable order, then the cursor. */
export function filtersToQuery(filters: DeviceFilters, after?: string): Record<string, string> {
  const query: Record<string, string> = {};
  for (const key of KEYS) {
    const value = filters[key].trim();
    if (value) query[key] = value;
  }
  if (after) query.after = after;
  return query;
}

/** `GET /api/v1/devices` for one page: the server filters by model, edge, network, protocol and status; the id prefix starts the page. */
export function devicesPath(filters: DeviceFilters, after: string, limit: number): string {
  const params = new URLSearchParams({ limit: String(limit) });
  for (const key of ['model', 'edge', 'network', 'protocol', 'status'] as const) if (filters[key]) params.set(key, filters[key]);
  const start = after || afterForPrefix(filters.q);
  if (start) params.set('after', start);
  return `/api/v1/devices?${params}`;
}

export const isFiltered = (filters: DeviceFilters): boolean => KEYS.some((key) => filters[key] !== '');

export const networkLabel = (value: string): string => NETWORK_PROFILES.find((p) => p.value === value)?.label ?? value;

export const protocolLabel = (value: string): string => BINDING_PROTOCOLS.find((p) => p.value === value)?.label ?? value;

export type FilterKey = (typeof KEYS)[number];

/** Each active filter in words, to say which ones to loosen: `{ key: 'network', text: 'network NB-IoT' }`. */
export function describeFilters(filters: DeviceFilters, edgeName?: (id: string) => string | undefined): { key: FilterKey; text: string }[] {
  const parts: { key: FilterKey; text: string }[] = [];
  if (filters.q) parts.push({ key: 'q', text: `ids starting with “${filters.q}”` });
  if (filters.model) parts.push({ key: 'model', text: `model ${filters.model}` });
  if (filters.edge) {
    const name = edgeName?.(filters.edge);
    parts.push({ key: 'edge', text: `edge ${name && name !== filters.edge ? `${name} (${filters.edge})` : filters.edge}` });
  }
  if (filters.network) parts.push({ key: 'network', text: `network ${networkLabel(filters.network)}` });
  if (filters.protocol) parts.push({ key: 'protocol', text: `protocol ${protocolLabel(filters.protocol)}` });
  if (filters.status) parts.push({ key: 'status', text: `status ${filters.status}` });
  return parts;
}

/** The same filters with one of them cleared (and paging restarted by the caller). */
export const without = (filters: DeviceFilters, key: FilterKey): DeviceFilters => ({ ...filters, [key]: '' });

/** "a", "a and b", "a, b and c". */
export function joinWords(parts: string[]): string {
  if (parts.length <= 1) return parts[0] ?? '';
  return `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}`;
}
