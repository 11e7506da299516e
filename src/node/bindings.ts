import type { GuessingBrake } from '../access/index.js';
import type { CodecRegistry, DeviceBinding, DeviceInbox } from '../gateway/index.js';
import type { ModelCatalog } from '../model/index.js';
import type { Logger, TransportMetrics } from '../observability/index.js';
import type { DeviceRegistry, FleetDirectory } from '../registry/index.js';
import { DEFAULT_TENANT } from '../tenancy/index.js';
import { CoapBinding } from '../transport/coap/index.js';
import { HttpBinding } from '../transport/http/index.js';
import { ModbusBinding } from '../transport/modbus/index.js';
import { MqttBinding, type MqttMember, type MqttTlsListener, tenantMount } from '../transport/mqtt/index.js';
import { OpcuaBinding } from '../transport/opcua/index.js';
import { HostCredential, SparkplugHost, type SparkplugHostOptions, sparkplugCodec } from '../transport/sparkplug/index.js';
import type { NodeConfig } from './config.js';

/** What the bindings are built from: the node's parts they talk to. */
export interface BindingParts {
  gateway: DeviceInbox;
  /** Where a binding with its own encoding registers its codec. */
  codecs: CodecRegistry;
  /** The default tenant's devices: Sparkplug's unless --sparkplug-tenant names another. */
  registry: DeviceRegistry;
  /** Every tenant's devices, for the listeners all tenants share (MQTT, CoAP). */
  fleet: FleetDirectory;
  /** Bindings that learn devices from the field (Sparkplug births) register their models. */
  models: ModelCatalog;
  /** A tenant's registry and models, once the node serves it (tenants open after the bindings start). */
  tenantParts(tenant: string): { registry: DeviceRegistry; models: ModelCatalog } | undefined;
  isAdminKey(secret: string): boolean;
  /** An integration's API key: its tenant and role (MQTT username `$key`). */
  identify(secret: string): Promise<MqttMember | undefined>;
  /** Shared by every listener that checks credentials: a guesser gains nothing by switching. */
  brake: GuessingBrake;
  /** MQTT over TLS, when the node has a certificate. */
  tls?: MqttTlsListener;
  metrics: TransportMetrics;
  logger: Logger;
  now(): number;
}

/** The bindings of a node: MQTT and HTTP by name (the node reads their ports and routes), and all of them for the gateway. */
export interface NodeBindings {
  mqtt: MqttBinding;
  http: HttpBinding;
  /** The CoAP listener (the node reports its port), unless CoAP is off. */
  coap: CoapBinding | undefined;
  /** Started in this order by the gateway, stopped in reverse. */
  all: DeviceBinding[];
}

/**
 * Where the Sparkplug host registers what births tell: the default tenant's parts, or another
 * tenant's looked up on every call (it opens after the bindings start, or is created later; a
 * birth before that is refused as registration_failed and counted).
 */
function sparkplugTenantParts(parts: BindingParts, tenant: string): Pick<SparkplugHostOptions, 'registry' | 'models'> {
  if (tenant === DEFAULT_TENANT) return { registry: parts.registry, models: parts.models };
  const scope = () => {
    const found = parts.tenantParts(tenant);
    if (!found) throw new Error(`tenant "${tenant}" (--sparkplug-tenant) is not served by this node`);
    return found;
  };
  return {
    registry: {
      find: (...args: Parameters<DeviceRegistry['find']>) => scope().registry.find(...args),
      register: (...args: Parameters<DeviceRegistry['register']>) => scope().registry.register(...args),
      patch: (...args: Parameters<DeviceRegistry['patch']>) => scope().registry.patch(...args),
    },
    models: { put: (...args: Parameters<ModelCatalog['put']>) => scope().models.put(...args) },
  };
}

/** The composition list of device bindings: one entry per protocol this node speaks. */
export function createBindings(config: NodeConfig, parts: BindingParts): NodeBindings {
  // The Sparkplug host application logs in on the embedded broker with an in-memory secret.
  const sparkplugLogin = new HostCredential();
  const mqtt = new MqttBinding({
    port: config.mqttPort,
    host: config.mqttHost,
    fleet: parts.fleet,
    isAdminKey: (secret) => parts.isAdminKey(secret) || sparkplugLogin.matches(secret),
    identify: (secret) => parts.identify(secret),
    brake: parts.brake,
    plaintext: config.plaintext,
    ...(parts.tls ? { tls: parts.tls } : {}),
    limits: {
      maxPayloadBytes: config.maxPayloadBytes,
      maxUnauthenticated: config.mqttMaxUnauthenticated,
      connectTimeoutMs: config.mqttConnectTimeoutMs,
    },
    metrics: parts.metrics,
    logger: parts.logger.child({ component: 'mqtt' }),
  });
  const http = new HttpBinding(parts.gateway, parts.now);
  parts.codecs.register(sparkplugCodec(parts.now));
  const sparkplug = config.sparkplug
    ? new SparkplugHost({
        hostId: config.sparkplugHostId,
        broker: () =>
          config.sparkplugBroker
            ? { url: config.sparkplugBroker }
            : config.plaintext
              ? sparkplugLogin.endpoint(config.mqttHost, mqtt.port)
              : sparkplugLogin.endpoint(config.mqttHost, mqtt.tlsPort ?? 0, true),
        tenant: config.sparkplugTenant,
        // On the embedded broker a non-default tenant's edge nodes publish inside its mount.
        topicPrefix: config.sparkplugBroker ? '' : tenantMount(config.sparkplugTenant),
        ...sparkplugTenantParts(parts, config.sparkplugTenant),
        logger: parts.logger.child({ component: 'sparkplug' }),
      })
    : undefined;
  const coap = config.coap
    ? new CoapBinding({
        port: config.coapPort,
        host: config.coapHost,
        fleet: parts.fleet,
        brake: parts.brake,
        limits: { maxPayloadBytes: config.maxPayloadBytes },
        logger: parts.logger.child({ component: 'coap' }),
      })
    : undefined;
  return {
    mqtt,
    http,
    coap,
    all: [
      mqtt,
      http,
      ...(coap ? [coap] : []),
      new ModbusBinding({
        defaultPollingMs: config.modbusPollMs,
        requestTimeoutMs: config.modbusTimeoutMs,
        logger: parts.logger.child({ component: 'modbus' }),
      }),
      new OpcuaBinding({
        dataDir: config.dataDir,
        requestTimeoutMs: config.opcuaTimeoutMs,
        trustUnknownServers: config.opcuaTrustUnknownServers,
        logger: parts.logger.child({ component: 'opcua' }),
      }),
      ...(sparkplug ? [sparkplug] : []),
      // One line per further protocol (Modbus TCP, OPC UA, CoAP, Sparkplug B).
    ],
  };
}
