/**
 * The public MQTT topic scheme. Everything a device does lives under `things/{deviceId}/`;
 * these functions are the only place topic strings are built or taken apart.
 */

export const THINGS_ROOT = 'things';

export const thingTopics = {
  prefix: (deviceId: string) => `${THINGS_ROOT}/${deviceId}/`,
  telemetry: (deviceId: string) => `${THINGS_ROOT}/${deviceId}/telemetry`,
  event: (deviceId: string, name: string) => `${THINGS_ROOT}/${deviceId}/events/${name}`,
  twin: (deviceId: string, part: 'reported' | 'desired' | 'get') => `${THINGS_ROOT}/${deviceId}/twin/${part}`,
  action: (deviceId: string, name: string) => `${THINGS_ROOT}/${deviceId}/actions/${name}`,
  actionResult: (deviceId: string, name: string) => `${THINGS_ROOT}/${deviceId}/actions/${name}/result`,
  errors: (deviceId: string) => `${THINGS_ROOT}/${deviceId}/errors`,
  alarms: (deviceId: string) => `${THINGS_ROOT}/${deviceId}/alarms`,
};

/** What a device-originated topic means. */
export type DeviceTopic =
  | { kind: 'telemetry'; deviceId: string }
  | { kind: 'event'; deviceId: string; name: string }
  | { kind: 'twin-reported'; deviceId: string }
  | { kind: 'twin-get'; deviceId: string }
  | { kind: 'action-result'; deviceId: string; name: string };

/** Parses a topic a device may publish to; undefined for anything else. */
export function parseDeviceTopic(topic: string): DeviceTopic | undefined {
  const parts = topic.split('/');
  if (parts[0] !== THINGS_ROOT || parts.length < 3) return undefined;
  const deviceId = parts[1] as string;
  if (deviceId === '') return undefined;
  const [, , kind, a, b] = parts;
  switch (parts.length) {
    case 3:
      return kind === 'telemetry' ? { kind: 'telemetry', deviceId } : undefined;
    case 4:
      if (kind === 'events' && a) return { kind: 'event', deviceId, name: a };
      if (kind === 'twin' && a === 'reported') return { kind: 'twin-reported', deviceId };
      if (kind === 'twin' && a === 'get') return { kind: 'twin-get', deviceId };
      return undefined;
    case 5:
      return kind === 'actions' && a && b === 'result' ? { kind: 'action-result', deviceId, name: a } : undefined;
    default:
      return undefined;
  }
}

/** A platform-side topic an integration may publish on a device's behalf: its desired state or an action request. */
export type DownlinkTopic = { kind: 'desired'; deviceId: string } | { kind: 'action'; deviceId: string; name: string };

/** Parses `things/{id}/twin/desired` or `things/{id}/actions/{name}`; undefined for anything else. */
export function parseDownlinkTopic(topic: string): DownlinkTopic | undefined {
  const [root, deviceId, kind, a, ...rest] = topic.split('/');
  if (root !== THINGS_ROOT || !deviceId || !a || rest.length > 0) return undefined;
  if (kind === 'twin' && a === 'desired') return { kind: 'desired', deviceId };
  return kind === 'actions' ? { kind: 'action', deviceId, name: a } : undefined;
}

/** A device may publish only the device-side topics under its own prefix. */
export function devicePublishAllowed(deviceId: string, topic: string): DeviceTopic | undefined {
  const parsed = parseDeviceTopic(topic);
  return parsed && parsed.deviceId === deviceId ? parsed : undefined;
}

/** A device may subscribe to any filter under its own prefix (wildcards after it are fine). */
export function deviceSubscribeAllowed(deviceId: string, filter: string): boolean {
  return filter.startsWith(thingTopics.prefix(deviceId)) || filter === `${THINGS_ROOT}/${deviceId}/#`;
}

/** MQTT filter matching (`+` one level, `#` the rest). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}
