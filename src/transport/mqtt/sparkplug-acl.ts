import type { DeviceRecord } from '../../registry/index.js';
import { topicMatches } from './topics.js';

/**
 * What a Sparkplug B edge node may do on the embedded broker. It logs in as the device
 * `{group}:{edgeNode}` (binding `{"protocol": "sparkplug-b", "group", "edgeNode"}`) and speaks only
 * for its own group and edge node: it publishes its births, deaths and data (NDEATH is its will),
 * hears its own NCMD/DCMD, and reads host applications' STATE. The host application reads what
 * it publishes as a subscriber; the broker hands none of it to the device message handler.
 */

const NAMESPACE = 'spBv1.0';
const NODE_TYPES = new Set(['NBIRTH', 'NDEATH', 'NDATA']);
const DEVICE_TYPES = new Set(['DBIRTH', 'DDEATH', 'DDATA']);

/** The group and edge node a device speaks for, when it is a Sparkplug B edge node. */
function edgeNodeOf(device: DeviceRecord): { group: string; edgeNode: string } | undefined {
  const { binding } = device;
  if (binding.protocol !== 'sparkplug-b' || binding.device !== undefined) return undefined;
  const { group, edgeNode } = binding;
  return typeof group === 'string' && typeof edgeNode === 'string' ? { group, edgeNode } : undefined;
}

/** A Sparkplug id as one topic level: non-empty, no separator or wildcards. */
const isLevel = (value: string | undefined): value is string => value !== undefined && value !== '' && !/[/+#]/.test(value);

/** `spBv1.0/{group}/{NBIRTH|NDEATH|NDATA}/{edgeNode}` or `spBv1.0/{group}/{DBIRTH|DDEATH|DDATA}/{edgeNode}/{device}`, its own. */
export function sparkplugPublishAllowed(device: DeviceRecord, topic: string): boolean {
  const own = edgeNodeOf(device);
  if (!own) return false;
  const [namespace, group, type, edgeNode, child, ...rest] = topic.split('/');
  if (namespace !== NAMESPACE || group !== own.group || edgeNode !== own.edgeNode || type === undefined || rest.length > 0) return false;
  if (NODE_TYPES.has(type)) return child === undefined;
  return DEVICE_TYPES.has(type) && isLevel(child);
}

/** The filters an edge node may subscribe to: its commands and host applications' STATE. */
function allowedFilters(own: { group: string; edgeNode: string }): string[] {
  return [`${NAMESPACE}/${own.group}/NCMD/${own.edgeNode}`, `${NAMESPACE}/${own.group}/DCMD/${own.edgeNode}/+`, `${NAMESPACE}/STATE/+`];
}

/** Its own NCMD, its DCMD (all devices or one) and STATE (all hosts or one). */
export function sparkplugSubscribeAllowed(device: DeviceRecord, filter: string): boolean {
  const own = edgeNodeOf(device);
  if (!own) return false;
  return allowedFilters(own).some((allowed) => {
    if (filter === allowed) return true;
    // A narrower filter: a concrete device or host in place of the last `+`.
    if (!allowed.endsWith('/+')) return false;
    const last = filter.slice(allowed.length - 1);
    return filter.startsWith(allowed.slice(0, -1)) && isLevel(last);
  });
}

/** Whether a message may reach the edge node's session (commands for it, STATE). */
export function sparkplugForwardAllowed(device: DeviceRecord, topic: string): boolean {
  const own = edgeNodeOf(device);
  return own !== undefined && allowedFilters(own).some((filter) => topicMatches(filter, topic));
}
