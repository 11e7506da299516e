/**
 * MQTT transport: the embedded broker that devices connect to, as a device binding (sessions
 * become presence, device topics become gateway messages), the public topic scheme, and where
 * each tenant's topics are mounted inside the one broker. Later:
 * an external-broker client (MQTT 5, shared subscriptions) behind the same face.
 */

export { hearsDownlink, MqttBinding, type MqttBindingOptions, messageOf } from './binding.js';
export {
  ADMIN_USERNAME,
  DEFAULT_MQTT_LIMITS,
  type DeviceMessageHandler,
  EmbeddedMqttBroker,
  KEY_USERNAME,
  type MqttBrokerOptions,
  type MqttFleet,
  type MqttLimits,
  type MqttListener,
  type MqttMember,
  type MqttTlsListener,
  type SessionObserver,
} from './broker.js';
export { mountTopic, TENANT_MOUNT_ROOT, tenantMount, unmountTopic } from './tenant-mount.js';
export {
  type DeviceTopic,
  type DownlinkTopic,
  devicePublishAllowed,
  deviceSubscribeAllowed,
  parseDeviceTopic,
  parseDownlinkTopic,
  thingTopics,
  topicMatches,
} from './topics.js';
