/**
 * MQTT transport: the embedded broker that devices connect to, as a device binding (sessions
 * become presence, device topics become gateway messages), and the public topic scheme. Later:
 * an external-broker client (MQTT 5, shared subscriptions) behind the same face.
 */

export { hearsDownlink, MqttBinding, type MqttBindingOptions, messageOf } from './binding.js';
export {
  ADMIN_USERNAME,
  DEFAULT_MQTT_LIMITS,
  type DeviceMessageHandler,
  EmbeddedMqttBroker,
  type MqttBrokerOptions,
  type MqttLimits,
  type MqttListener,
  type MqttTlsListener,
  type SessionObserver,
} from './broker.js';
export { type DeviceTopic, devicePublishAllowed, deviceSubscribeAllowed, parseDeviceTopic, thingTopics, topicMatches } from './topics.js';
