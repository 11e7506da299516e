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
  /** Registers the device (or takes over an existing one as the provisioner's policy allows); returns the token. */
  ensureDevice(spec: DeviceSpec): Promise<string>;
}

/**
 * What the simulator does with a device id the node already has. A token cannot be read back,
 * so using an existing device always means issuing it a new one, which disconnects whatever
 * runs it: that is never done without being asked.
 * - `refuse` (the default): nothing is registered; the conflicting ids are named.
 * - `reuse`: devices an earlier `thingloop sim` registered (marked with {@link SIM_MARK}) and of
 *   the same model get new tokens and keep their history; any other existing device is refused.
 * - `replace`: existing devices are deleted (their twins and queued actions with them) and registered anew.
 */
export type ExistingDevicePolicy = 'refuse' | 'reuse' | 'replace';

/** The attribute the simulator sets on the devices it registers, so `--reuse` knows its own. */
export const SIM_MARK = { attribute: 'provisionedBy', value: 'thingloop sim' } as const;

/** The node already has devices the simulator would use; nothing was taken over. */
export class ExistingDevicesError extends Error {
  constructor(
    message: string,
    readonly deviceIds: string[],
  ) {
    super(message);
    this.name = 'ExistingDevicesError';
  }
}

/** `a, b, c and 12 more`: a thousand ids would bury the advice. */
function namedIds(ids: string[], shown = 20): string {
  const head = ids.slice(0, shown).join(', ');
  return ids.length > shown ? `${head} and ${ids.length - shown} more` : head;
}

interface ExistingDevice {
  id: string;
  model: string;
  attributes?: Record<string, unknown>;
}

const isSimulators = (device: ExistingDevice) => device.attributes?.[SIM_MARK.attribute] === SIM_MARK.value;

export interface HttpProvisionerOptions {
  /** What to do with ids the node already has (default `refuse`). */
  existing?: ExistingDevicePolicy;
  /** Where taking over or replacing devices is announced (default: stderr). */
  say?: (line: string) => void;
}

/** Provisions through a node's REST API with the admin key. */
export class HttpProvisioner implements Provisioner {
  private readonly existing: ExistingDevicePolicy;
  private readonly say: (line: string) => void;
  /** Ids {@link prepare} found and may take over: reused ones get new tokens, replaced ones are registered anew. */
  private readonly cleared = new Set<string>();

  constructor(
    private readonly apiUrl: string,
    private readonly adminKey: string,
    options: HttpProvisionerOptions = {},
  ) {
    this.existing = options.existing ?? 'refuse';
    this.say = options.say ?? ((line) => process.stderr.write(`${line}\n`));
  }

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

  /**
   * Looks at every id before anything is registered, so a refusal leaves the node as it was.
   * Throws {@link ExistingDevicesError} naming the ids the policy does not allow taking over;
   * announces the ones it will take over.
   */
  async prepare(specs: readonly Pick<DeviceSpec, 'id' | 'model'>[]): Promise<void> {
    const found: { spec: Pick<DeviceSpec, 'id' | 'model'>; device: ExistingDevice }[] = [];
    // A few lookups at a time: a fleet of thousands is looked at in seconds without flooding the node.
    for (let start = 0; start < specs.length; start += 16) {
      const batch = specs.slice(start, start + 16);
      const devices = await Promise.all(batch.map((spec) => this.find(spec.id)));
      batch.forEach((spec, index) => {
        const device = devices[index];
        if (device) found.push({ spec, device });
      });
    }
    if (found.length === 0) return;
    const ids = found.map(({ spec }) => spec.id);
    if (this.existing === 'refuse')
      throw new ExistingDevicesError(
        `the node already has ${found.length} of the simulated devices: ${namedIds(ids)}. ` +
          'Using them would issue them new tokens and disconnect whatever runs them now. ' +
          '--reuse takes over devices an earlier thingloop sim registered; --replace deletes and re-creates them.',
        ids,
      );
    if (this.existing === 'reuse') {
      const foreign = found.filter(({ device }) => !isSimulators(device)).map(({ spec }) => spec.id);
      if (foreign.length > 0)
        throw new ExistingDevicesError(
          `--reuse takes over only devices thingloop sim registered (attribute ${SIM_MARK.attribute}: "${SIM_MARK.value}"); ` +
            `these were registered otherwise and may be running elsewhere: ${namedIds(foreign)}. ` +
            '--replace deletes and re-creates them, or run the simulator against another node.',
          foreign,
        );
      const otherModel = found.filter(({ spec, device }) => spec.model !== device.model);
      if (otherModel.length > 0)
        throw new ExistingDevicesError(
          `--reuse needs the same model, and these devices have another: ${namedIds(
            otherModel.map(({ spec, device }) => `${spec.id} (${device.model}, simulated as ${spec.model})`),
          )}. --replace deletes and re-creates them.`,
          otherModel.map(({ spec }) => spec.id),
        );
    }
    for (const id of ids) this.cleared.add(id);
    this.say(
      this.existing === 'reuse'
        ? `reusing ${ids.length} devices an earlier thingloop sim registered: issuing them new tokens, so anything still running them with the old ones is disconnected: ${namedIds(ids)}`
        : `replacing ${ids.length} existing devices: deleting them (their twins, queued actions and credentials) and registering them anew: ${namedIds(ids)}`,
    );
  }

  private async find(id: string): Promise<ExistingDevice | undefined> {
    const result = await this.call('GET', `/devices/${encodeURIComponent(id)}`);
    if (result.status === 404) return undefined;
    if (result.status === 401)
      throw new Error("the admin key was refused: pass the node's admin key with --admin-key or THINGLOOP_ADMIN_KEY");
    if (result.status !== 200) throw new Error(`looking up ${id} failed (${result.status}): ${String(result.body.message)}`);
    const { model, attributes } = result.body;
    return { id, model: String(model), ...(attributes && typeof attributes === 'object' ? { attributes: { ...attributes } } : {}) };
  }

  async ensureDevice(spec: DeviceSpec): Promise<string> {
    // Only the registration fields: callers pass richer objects (a simulated device carries its
    // behaviour), and the API refuses unknown fields.
    const { id, model, name, network, binding } = spec;
    const attributes = { ...spec.attributes, [SIM_MARK.attribute]: SIM_MARK.value };
    const registration = { id, model, name, attributes, network, ...(binding ? { binding } : {}) };
    let created = await this.call('POST', '/devices', registration);
    if (created.status === 409) {
      // An id prepare() did not clear (it was not called, or the device appeared since) is refused.
      if (!this.cleared.has(id)) await this.prepare([spec]);
      if (this.existing === 'replace') {
        const removed = await this.call('DELETE', `/devices/${encodeURIComponent(id)}`);
        if (removed.status !== 204 && removed.status !== 404)
          throw new Error(`deleting ${id} failed (${removed.status}): ${String(removed.body.message)}`);
        created = await this.call('POST', '/devices', registration);
      } else {
        // A PLC or OPC UA server of this run may listen on another port than the last one's.
        if (binding) {
          const patched = await this.call('PATCH', `/devices/${encodeURIComponent(id)}`, { binding });
          if (patched.status !== 200)
            throw new Error(`updating ${id}'s binding failed (${patched.status}): ${String(patched.body.message)}`);
        }
        const rotated = await this.call('POST', `/devices/${encodeURIComponent(id)}/token`);
        if (rotated.status === 200) return rotated.body.token as string;
        throw new Error(`issuing a token for ${id} failed (${rotated.status}): ${String(rotated.body.message)}`);
      }
    }
    if (created.status === 201) return created.body.token as string;
    if (created.status === 401)
      throw new Error("the admin key was refused: pass the node's admin key with --admin-key or THINGLOOP_ADMIN_KEY");
    throw new Error(`registering ${id} failed (${created.status}): ${String(created.body.message)}`);
  }
}
