import type { BindingHealth, DeviceBinding, DeviceMessage, DeviceUplink, DownlinkRequest } from '../../gateway/index.js';
import type { DeviceRecord } from '../../registry/index.js';
import { isQuotaRefusal } from '../../tenancy/index.js';
import { EmbeddedMqttBroker, type MqttBrokerOptions, type SessionObserver } from './broker.js';
import { type DeviceTopic, thingTopics, topicMatches } from './topics.js';

export type MqttBindingOptions = Omit<MqttBrokerOptions, 'handleDeviceMessage' | 'sessions' | 'noticeAclRefusal'>;

/** A device topic and its payload as the message every binding hands the gateway. */
export function messageOf(topic: DeviceTopic, payload: Buffer): DeviceMessage {
  switch (topic.kind) {
    case 'telemetry':
      return { kind: 'telemetry', payload: { bytes: payload } };
    case 'event':
      return { kind: 'event', name: topic.name, payload: { bytes: payload } };
    case 'twin-reported':
      return { kind: 'twin-reported', payload: { bytes: payload } };
    case 'twin-get':
      return { kind: 'twin-get' };
    case 'action-result':
      return { kind: 'action-result', action: topic.name, payload: { bytes: payload } };
  }
}

/** Ids repeat across tenants: the binding's per-device figures are kept by both. */
function keyOf(device: DeviceRecord): string {
  return `${device.tenant}/${device.id}`;
}

/** Whether a subscription lets the device hear its desired state or its actions. */
export function hearsDownlink(deviceId: string, filter: string): boolean {
  const desired = thingTopics.twin(deviceId, 'desired');
  const actions = thingTopics.action(deviceId, '');
  return topicMatches(filter, desired) || filter.startsWith(actions) || topicMatches(filter, `${actions}any`);
}

/**
 * MQTT as a device binding: the embedded broker's sessions become presence messages and its
 * device topics `DeviceMessage`s; desired state goes out retained on `things/{id}/twin/desired`,
 * actions on `things/{id}/actions/{name}`, error notices on `things/{id}/errors` (QoS 0), each in
 * the mount of the device's tenant. One binding serves every tenant's devices.
 */
export class MqttBinding implements DeviceBinding {
  readonly protocol = 'mqtt' as const;
  private live: EmbeddedMqttBroker | undefined;
  /** When each device's last message was handled, and how many error notices it was sent (by tenant and id). */
  private readonly lastGood = new Map<string, number>();
  private readonly errorCounts = new Map<string, number>();

  constructor(private readonly options: MqttBindingOptions) {}

  /** The running broker (alarms are published on it too). */
  get broker(): EmbeddedMqttBroker {
    if (!this.live) throw new Error('the MQTT broker is not running');
    return this.live;
  }

  get port(): number {
    return this.live?.port ?? 0;
  }

  /** The MQTT over TLS port; undefined when TLS is off. */
  get tlsPort(): number | undefined {
    return this.live?.tlsPort;
  }

  async start(uplink: DeviceUplink): Promise<void> {
    const presence = (device: DeviceRecord, state: 'online' | 'offline' | 'uplink' | 'listening') =>
      // Presence is applied synchronously by the gateway; only the wake it may start is async.
      uplink.receive(device, { kind: 'presence', state }, 'mqtt').catch(() => undefined);
    const sessions: SessionObserver = {
      opened: (device) => presence(device, 'online'),
      closed: (device) => presence(device, 'offline'),
      subscribed: (device, filters) => {
        if (filters.some((filter) => hearsDownlink(device.id, filter))) presence(device, 'listening');
      },
      uplink: (device) => presence(device, 'uplink'),
    };
    const broker = new EmbeddedMqttBroker({
      ...this.options,
      sessions,
      // Recorded in the device's error list and sent on things/{id}/errors like every other notice.
      noticeAclRefusal: async (device, message) => {
        await uplink.reportError(device, message, 'acl_denied');
      },
      handleDeviceMessage: async (device, topic, payload) => {
        try {
          await uplink.receive(device, messageOf(topic, payload), 'mqtt');
        } catch (error) {
          // Over a tenant's quota the message is dropped but acknowledged, as AWS IoT and EMQX
          // throttle: MQTT 3.1.1 has no negative PUBACK, and closing the connection would only
          // bring the same message back on reconnect. The refusal is counted and the device told
          // on things/{id}/errors.
          if (isQuotaRefusal(error)) return;
          throw error;
        }
        this.lastGood.set(keyOf(device), uplink.now());
      },
    });
    this.live = broker;
    await broker.start();
    this.options.fleet.events.on('removed', (device) => {
      this.lastGood.delete(keyOf(device));
      this.errorCounts.delete(keyOf(device));
      // An empty retained payload clears the retained desired state of the deleted device.
      broker
        .publish(thingTopics.twin(device.id, 'desired'), null, { tenant: device.tenant, retain: true })
        .catch((error: Error) => this.options.logger.error({ err: error.message }, 'cleaning up a deleted device failed'));
    });
  }

  async stop(): Promise<void> {
    await this.live?.stop();
  }

  reachable(device: DeviceRecord, request: DownlinkRequest): boolean {
    const broker = this.live;
    if (!broker) return false;
    switch (request.kind) {
      case 'invoke':
        return broker.isListening(device.tenant, device.id, thingTopics.action(device.id, request.action));
      case 'desired':
        return broker.isListening(device.tenant, device.id, thingTopics.twin(device.id, 'desired'));
      case 'errors':
        return broker.isConnected(device.tenant, device.id);
    }
  }

  async deliver(device: DeviceRecord, request: DownlinkRequest): Promise<void> {
    const broker = this.broker;
    switch (request.kind) {
      case 'desired':
        // Retained, so a device that connects later gets it.
        await broker.publish(thingTopics.twin(device.id, 'desired'), request.state, { tenant: device.tenant, retain: true });
        return;
      case 'invoke':
        await broker.publish(
          thingTopics.action(device.id, request.action),
          { id: request.id, input: request.input },
          { tenant: device.tenant },
        );
        return;
      case 'errors':
        this.errorCounts.set(keyOf(device), (this.errorCounts.get(keyOf(device)) ?? 0) + 1);
        await broker.publish(thingTopics.errors(device.id), request.notice, { tenant: device.tenant, qos: 0 });
        return;
    }
  }

  health(device: DeviceRecord): BindingHealth {
    return {
      protocol: 'mqtt',
      state: this.live?.isConnected(device.tenant, device.id) ? 'connected' : 'idle',
      lastGoodReadTs: this.lastGood.get(keyOf(device)) ?? null,
      errors: this.errorCounts.get(keyOf(device)) ?? 0,
      latencyMs: null,
    };
  }
}
