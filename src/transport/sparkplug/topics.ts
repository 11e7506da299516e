/**
 * Sparkplug B v3.0 topic namespace: `spBv1.0/{group}/{type}/{edgeNode}[/{device}]` and
 * `spBv1.0/STATE/{hostId}`. The only place Sparkplug topic strings are built or taken apart.
 */

export const SPARKPLUG_NAMESPACE = 'spBv1.0';

export const EDGE_NODE_MESSAGES = ['NBIRTH', 'NDEATH', 'NDATA', 'NCMD'] as const;
export const DEVICE_MESSAGES = ['DBIRTH', 'DDEATH', 'DDATA', 'DCMD'] as const;
export type EdgeNodeMessageType = (typeof EDGE_NODE_MESSAGES)[number];
export type DeviceMessageType = (typeof DEVICE_MESSAGES)[number];
export type SparkplugMessageType = EdgeNodeMessageType | DeviceMessageType;

/** What a Sparkplug topic addresses. */
export type SparkplugTopic =
  | { kind: 'edge-node'; type: EdgeNodeMessageType; group: string; edgeNode: string }
  | { kind: 'device'; type: DeviceMessageType; group: string; edgeNode: string; device: string }
  | { kind: 'state'; hostId: string };

/** Sparkplug ids are UTF-8 strings without the MQTT separators and wildcards (spec 4.1.1). */
export function isSparkplugId(value: string): boolean {
  return value.length > 0 && !/[/+#]/.test(value);
}

function isEdgeNodeType(value: string): value is EdgeNodeMessageType {
  return (EDGE_NODE_MESSAGES as readonly string[]).includes(value);
}

function isDeviceType(value: string): value is DeviceMessageType {
  return (DEVICE_MESSAGES as readonly string[]).includes(value);
}

/** Parses a topic of the Sparkplug B namespace; undefined for anything else. */
export function parseSparkplugTopic(topic: string): SparkplugTopic | undefined {
  const parts = topic.split('/');
  if (parts[0] !== SPARKPLUG_NAMESPACE) return undefined;
  if (parts[1] === 'STATE') {
    const hostId = parts[2];
    return parts.length === 3 && hostId !== undefined && isSparkplugId(hostId) ? { kind: 'state', hostId } : undefined;
  }
  const [, group, type, edgeNode, device] = parts;
  if (group === undefined || type === undefined || edgeNode === undefined) return undefined;
  if (!isSparkplugId(group) || !isSparkplugId(edgeNode)) return undefined;
  if (parts.length === 4 && isEdgeNodeType(type)) return { kind: 'edge-node', type, group, edgeNode };
  if (parts.length === 5 && device !== undefined && isDeviceType(type) && isSparkplugId(device))
    return { kind: 'device', type, group, edgeNode, device };
  return undefined;
}

export const sparkplugTopics = {
  edgeNode: (type: EdgeNodeMessageType, group: string, edgeNode: string) => `${SPARKPLUG_NAMESPACE}/${group}/${type}/${edgeNode}`,
  device: (type: DeviceMessageType, group: string, edgeNode: string, device: string) =>
    `${SPARKPLUG_NAMESPACE}/${group}/${type}/${edgeNode}/${device}`,
  state: (hostId: string) => `${SPARKPLUG_NAMESPACE}/STATE/${hostId}`,
  /** Everything a host application hears: births, deaths, data and STATE (commands are filtered out on receipt). */
  all: `${SPARKPLUG_NAMESPACE}/#`,
};

/** The platform device ids of a Sparkplug edge node and of a device behind it. */
export const sparkplugDeviceIds = {
  edgeNode: (group: string, edgeNode: string) => `${group}:${edgeNode}`,
  device: (group: string, edgeNode: string, device: string) => `${group}:${edgeNode}:${device}`,
};
