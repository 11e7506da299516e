import type { CommandService } from '../commands/index.js';
import { parseActionResult } from '../commands/index.js';
import type { DeviceErrorReport, IngestPipeline, Rejection } from '../ingest/index.js';
import type { ModelCatalog } from '../model/index.js';
import type { Logger } from '../observability/index.js';
import type { DeviceRecord, PresenceBook } from '../registry/index.js';
import type { DeviceTopic, EmbeddedMqttBroker, SessionObserver } from '../transport/mqtt/index.js';
import { thingTopics, topicMatches } from '../transport/mqtt/index.js';
import type { TwinService, TwinView } from '../twin/index.js';

export interface DeviceLinkParts {
  broker: () => EmbeddedMqttBroker;
  ingest: IngestPipeline;
  twins: TwinService;
  commands: CommandService;
  presence: PresenceBook;
  models: ModelCatalog;
  logger: Logger;
  now(): number;
}

const RECENT_ERRORS_KEPT = 50;

/** The payload devices get on `things/{id}/twin/desired` (retained, so a reconnect gets it). */
function desiredMessage(twin: TwinView, now: number) {
  return { version: twin.version, desired: twin.desired, delta: twin.delta, ts: now };
}

/**
 * Links device sessions and messages to the domain: telemetry to ingest, twin reports to the
 * twin, action results to commands; subscriptions and uplinks wake queued deliveries.
 */
export function createDeviceLinks(parts: DeviceLinkParts) {
  const { ingest, twins, commands, presence, logger } = parts;

  // The last refusals per device, for operators (GET /devices/{id}/errors); devices get them on MQTT.
  const recent = new Map<string, DeviceErrorReport[]>();
  const remember = (deviceId: string, source: DeviceErrorReport['source'], rejections: Rejection[]) => {
    const list = recent.get(deviceId) ?? [];
    list.unshift({ ts: parts.now(), source, rejections });
    if (list.length > RECENT_ERRORS_KEPT) list.length = RECENT_ERRORS_KEPT;
    recent.set(deviceId, list);
  };
  const reportErrors = (deviceId: string, source: DeviceErrorReport['source'], rejections: Rejection[]) => {
    remember(deviceId, source, rejections);
    return parts
      .broker()
      .publish(thingTopics.errors(deviceId), { ts: parts.now(), source, rejections }, { qos: 0 })
      .catch((error: Error) => logger.warn({ err: error.message }, 'could not publish to the errors topic'));
  };

  const publishDesired = async (device: DeviceRecord, twin?: TwinView) => {
    const view = twin ?? (await twins.get(device));
    await parts.broker().publish(thingTopics.twin(device.id, 'desired'), desiredMessage(view, parts.now()), { retain: true });
  };

  async function twinReported(device: DeviceRecord, payload: Buffer): Promise<void> {
    const { values, rejections } = await ingest.checkTwinReport(device, payload);
    if (Object.keys(values).length > 0) await twins.report(device, values, parts.now(), 'device');
    if (rejections.length > 0) await reportErrors(device.id, 'twin', rejections);
  }

  async function actionResult(device: DeviceRecord, action: string, payload: Buffer): Promise<void> {
    const parsed = ingest.readJson(payload);
    if (!('body' in parsed)) {
      await reportErrors(device.id, 'action', [parsed]);
      return;
    }
    const result = parseActionResult(parsed.body);
    if (typeof result === 'string') {
      await reportErrors(device.id, 'action', [{ reason: 'invalid_value', message: result }]);
      return;
    }
    const problem = await commands.result(device, action, result);
    if (problem) await reportErrors(device.id, 'action', [{ reason: 'invalid_value', message: problem }]);
  }

  async function handleDeviceMessage(device: DeviceRecord, topic: DeviceTopic, payload: Buffer): Promise<void> {
    switch (topic.kind) {
      case 'telemetry':
        await ingest.acceptTelemetry(device, payload, 'mqtt');
        return;
      case 'twin-reported':
        await twinReported(device, payload);
        return;
      case 'twin-get':
        await publishDesired(device);
        return;
      case 'action-result':
        await actionResult(device, topic.name, payload);
        return;
      case 'event':
        // Stored (and on an edge queued for the cloud) before the PUBACK; subscribers of the
        // topic still receive the message from the broker.
        await ingest.acceptEvent(device, topic.name, payload, 'mqtt');
        return;
    }
  }

  /** The device can hear downlink again: deliver what waited for it. */
  async function wake(device: DeviceRecord): Promise<void> {
    const broker = parts.broker();
    const desiredTopic = thingTopics.twin(device.id, 'desired');
    if (broker.isListening(device.id, desiredTopic)) {
      const twin = await twins.get(device);
      // The retained message already reached a fresh subscriber; an uplink from a device that
      // kept its session needs the desired state sent again.
      if (twin.pendingDelivery.length > 0) await publishDesired(device, twin);
      await twins.delivered(device);
    }
    await commands.deviceAwake(device);
  }

  const wakeLogged = (device: DeviceRecord) =>
    wake(device).catch((error: Error) => logger.error({ device: device.id, err: error.message }, 'delivery on wake failed'));

  const sessions: SessionObserver = {
    opened: (device) => presence.opened(device.id, parts.now()),
    closed: (device) => presence.closed(device.id, parts.now()),
    subscribed: (device, filters) => {
      const desired = thingTopics.twin(device.id, 'desired');
      const actions = thingTopics.action(device.id, '');
      const hearsDownlink = (filter: string) =>
        topicMatches(filter, desired) || filter.startsWith(actions) || topicMatches(filter, `${actions}any`);
      if (filters.some(hearsDownlink)) wakeLogged(device);
    },
    uplink: (device) => {
      presence.uplink(device.id, parts.now());
      if (device.network.sleepy) wakeLogged(device);
    },
  };

  return {
    handleDeviceMessage,
    sessions,
    publishDesired,
    reportErrors,
    recentErrors: (deviceId: string) => recent.get(deviceId) ?? [],
    /** The device was deleted: a device registered later under the same id starts clean. */
    forget: (deviceId: string) => recent.delete(deviceId),
  };
}
