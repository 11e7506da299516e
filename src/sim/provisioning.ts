import type { ThingModelDocument } from './scenarios.js';

export interface DeviceSpec {
  id: string;
  model: string;
  name: string;
  attributes: Record<string, string | number | boolean>;
  network: { profile: string; reportInterval?: string };
  /** How the node reaches the device when it is not an SDK device on MQTT (a PLC's unit, an OPC UA server). */
  binding?: Record<string, string | number | boolean>;
}

/** How a simulator gets its models registered and its devices' tokens. */
export interface Provisioner {
  ensureModel(id: string, document: ThingModelDocument): Promise<void>;
  /** Registers the device, or issues a fresh token if it already exists; returns the token. */
  ensureDevice(spec: DeviceSpec): Promise<string>;
}

/** Provisions through a node's REST API with the admin key. */
export class HttpProvisioner implements Provisioner {
  constructor(
    private readonly apiUrl: string,
    private readonly adminKey: string,
  ) {}

  private async call(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await fetch(`${this.apiUrl.replace(/\/$/, '')}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${this.adminKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  }

  async ensureModel(id: string, document: ThingModelDocument): Promise<void> {
    const result = await this.call('PUT', `/models/${encodeURIComponent(id)}`, document);
    if (result.status >= 300) throw new Error(`registering model ${id} failed (${result.status}): ${String(result.body.message)}`);
  }

  async ensureDevice(spec: DeviceSpec): Promise<string> {
    // Only the registration fields: callers pass richer objects (a simulated device carries its
    // behaviour), and the API refuses unknown fields.
    const { id, model, name, attributes, network, binding } = spec;
    const created = await this.call('POST', '/devices', { id, model, name, attributes, network, ...(binding ? { binding } : {}) });
    if (created.status === 201) return created.body.token as string;
    if (created.status === 409) {
      const rotated = await this.call('POST', `/devices/${encodeURIComponent(spec.id)}/token`);
      if (rotated.status === 200) return rotated.body.token as string;
      throw new Error(`issuing a token for ${spec.id} failed (${rotated.status}): ${String(rotated.body.message)}`);
    }
    if (created.status === 401)
      throw new Error("the admin key was refused: pass the node's admin key with --admin-key or THINGLOOP_ADMIN_KEY");
    throw new Error(`registering ${spec.id} failed (${created.status}): ${String(created.body.message)}`);
  }
}
