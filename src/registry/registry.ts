import { randomBytes } from 'node:crypto';
import { hashSecret, newSecret, secretMatches } from '../access/index.js';
import { EventBus } from '../bus/index.js';
import { conflict, invalid, notFound } from '../errors/index.js';
import type { ModelCatalog } from '../model/index.js';
import { type DeviceBindingInput, resolveBinding } from './binding.js';
import {
  type AttributeValue,
  DEVICE_ID_PATTERN,
  type DeviceFilter,
  type DeviceRecord,
  type DeviceRepository,
  MAX_ATTRIBUTES,
} from './device.js';
import { type NetworkProfileInput, resolveNetworkProfile } from './network.js';

export interface DeviceRegistration {
  id?: string;
  name?: string;
  model: string;
  modelVersion?: number;
  attributes?: Record<string, AttributeValue>;
  network?: NetworkProfileInput;
  /** Serve the device from this edge node. */
  edge?: string;
  /** How the device is reached; `{"protocol": "mqtt"}` when absent. Checked, every problem listed. */
  binding?: DeviceBindingInput;
}

export interface DevicePatch {
  name?: string;
  /** Merged into the existing attributes; a null value removes the key. */
  attributes?: Record<string, AttributeValue>;
  /** Migrate to another model or version (defaults to the model's latest version). */
  model?: string;
  modelVersion?: number;
  network?: NetworkProfileInput;
  /** Replaces the binding as a whole (protocol and parameters). */
  binding?: DeviceBindingInput;
}

export interface RegisteredDevice {
  device: DeviceRecord;
  /** Shown once; only its hash is kept. */
  token: string;
}

export interface DevicePage {
  items: DeviceRecord[];
  total: number;
  /** Pass as `after` to get the next page; null on the last page. */
  next: string | null;
}

export type RegistryEvents = {
  registered: DeviceRecord;
  /** Any change to a record, its model or binding included: the gateway re-attaches the device. */
  updated: DeviceRecord;
  /** The credential is gone: transports must drop the device's live sessions. */
  removed: DeviceRecord;
  credentialRotated: DeviceRecord;
};

export interface Addressing {
  /** Code and IPv6 for an id; `attempt` > 0 asks for the next candidate address. */
  address(deviceId: string, attempt: number): { code: string; ipv6: string };
  canonicalIpv6(text: string): string | undefined;
}

const MAX_ADDRESS_ATTEMPTS = 16;

/** The tenant's device quota (a port: the tenancy module's guard implements it); throws to refuse. */
export interface DeviceAdmission {
  /** `count` reads how many devices the tenant has; called only when a quota is set. */
  admitDevices(count: () => Promise<number>): Promise<void>;
}

function checkAttributes(attributes: Record<string, AttributeValue> | undefined): void {
  if (attributes === undefined) return;
  const entries = Object.entries(attributes);
  if (entries.length > MAX_ATTRIBUTES) throw invalid(`at most ${MAX_ATTRIBUTES} attributes per device`);
  for (const [key, value] of entries) {
    if (value !== null && !['string', 'number', 'boolean'].includes(typeof value)) {
      throw invalid(`attribute "${key}" must be a string, number, boolean or null`);
    }
  }
}

/**
 * The device registry. Reads on the hot path (`find`) come from memory: the cache is
 * filled on first use and kept in step by this class, which is the only writer.
 */
/** Devices read per page when walking the fleet. */
const DEVICE_PAGE = 1000;

export class DeviceRegistry {
  readonly events = new EventBus<RegistryEvents>();
  private readonly cache = new Map<string, DeviceRecord>();

  constructor(
    private readonly repository: DeviceRepository,
    private readonly models: ModelCatalog,
    private readonly addressing: Addressing,
    private readonly now: () => number,
    private readonly edgeExists: (edgeId: string) => Promise<boolean> = async () => false,
    private readonly admission?: DeviceAdmission,
  ) {}

  /** Registrations under a quota run one at a time: counting and inserting must not interleave. */
  private registering: Promise<unknown> = Promise.resolve();

  /** Registers a device (refused past the tenant's device quota: HTTP, Sparkplug births, provisioning alike). */
  async register(registration: DeviceRegistration): Promise<RegisteredDevice> {
    const admission = this.admission;
    if (!admission) return this.registerNow(registration);
    const turn = this.registering.then(async () => {
      await admission.admitDevices(() => this.repository.count({}));
      return this.registerNow(registration);
    });
    this.registering = turn.catch(() => undefined);
    return turn;
  }

  private async registerNow(registration: DeviceRegistration): Promise<RegisteredDevice> {
    const id = registration.id ?? `dev-${randomBytes(6).toString('hex')}`;
    if (!DEVICE_ID_PATTERN.test(id)) {
      throw invalid(`device id "${id}" is invalid: start with a letter or digit, then letters, digits, ".", "_", ":" or "-" (at most 128)`);
    }
    checkAttributes(registration.attributes);
    const network = resolveNetworkProfile(registration.network);
    const binding = resolveBinding(registration.binding);
    if (registration.edge !== undefined && !(await this.edgeExists(registration.edge))) {
      throw invalid(`edge "${registration.edge}" is not registered: create it with POST /api/v1/edges first`);
    }
    const model = await this.models.get(registration.model, registration.modelVersion);
    if (await this.repository.get(id)) throw conflict(`device "${id}" already exists`);
    const { code, ipv6 } = await this.freeAddress(id);
    const token = newSecret('tld');
    const at = this.now();
    const attributes = Object.fromEntries(Object.entries(registration.attributes ?? {}).filter(([, v]) => v !== null));
    const device = await this.repository.insert(
      {
        id,
        name: registration.name ?? id,
        model: model.id,
        modelVersion: model.version,
        code,
        ipv6,
        attributes,
        network,
        binding,
        ...(registration.edge !== undefined ? { edge: registration.edge } : {}),
        createdAt: at,
        updatedAt: at,
      },
      hashSecret(token),
    );
    this.cache.set(id, device);
    this.events.emit('registered', device);
    return { device, token };
  }

  private async freeAddress(id: string): Promise<{ code: string; ipv6: string }> {
    for (let attempt = 0; attempt < MAX_ADDRESS_ATTEMPTS; attempt++) {
      const candidate = this.addressing.address(id, attempt);
      if (!(await this.repository.findByIpv6(candidate.ipv6))) return candidate;
    }
    throw conflict(`no free IPv6 address found for "${id}" after ${MAX_ADDRESS_ATTEMPTS} attempts`);
  }

  /** The device, or undefined; served from memory after the first read. */
  async find(id: string): Promise<DeviceRecord | undefined> {
    const cached = this.cache.get(id);
    if (cached) return cached;
    const stored = await this.repository.get(id);
    if (stored) this.cache.set(id, stored);
    return stored;
  }

  async get(id: string): Promise<DeviceRecord> {
    const device = await this.find(id);
    if (!device) throw notFound(`no device "${id}"`);
    return device;
  }

  async list(query: DeviceFilter & { after?: string; limit: number }): Promise<DevicePage> {
    const [items, total] = await Promise.all([
      this.repository.list(query),
      this.repository.count({ model: query.model, edge: query.edge, network: query.network, protocol: query.protocol }),
    ]);
    const last = items.at(-1);
    return { items, total, next: items.length === query.limit && last ? last.id : null };
  }

  /**
   * Every device matching the filter, in id order, a page at a time (no total counted): for work
   * that must see the whole fleet or all of an edge's devices, never a truncated first page.
   */
  async *all(filter: DeviceFilter = {}): AsyncGenerator<DeviceRecord[]> {
    let after: string | undefined;
    for (;;) {
      const items = await this.repository.list({ ...filter, limit: DEVICE_PAGE, ...(after ? { after } : {}) });
      if (items.length > 0) yield items;
      if (items.length < DEVICE_PAGE) return;
      after = (items[items.length - 1] as DeviceRecord).id;
    }
  }

  async patch(id: string, patch: DevicePatch): Promise<DeviceRecord> {
    const current = await this.get(id);
    checkAttributes(patch.attributes);
    const next: DeviceRecord = { ...current, updatedAt: this.now() };
    if (patch.name !== undefined) next.name = patch.name;
    if (patch.network !== undefined) next.network = resolveNetworkProfile(patch.network);
    if (patch.binding !== undefined) next.binding = resolveBinding(patch.binding);
    if (patch.attributes) {
      const merged = { ...current.attributes };
      for (const [key, value] of Object.entries(patch.attributes)) {
        if (value === null) delete merged[key];
        else merged[key] = value;
      }
      next.attributes = merged;
    }
    if (patch.model !== undefined || patch.modelVersion !== undefined) {
      const model = await this.models.get(patch.model ?? current.model, patch.modelVersion);
      next.model = model.id;
      next.modelVersion = model.version;
    }
    await this.repository.update(next);
    this.cache.set(id, next);
    this.events.emit('updated', next);
    return next;
  }

  async remove(id: string): Promise<void> {
    const device = await this.get(id);
    await this.repository.delete(id);
    this.cache.delete(id);
    this.events.emit('removed', device);
  }

  /**
   * Takes over a device record and credential hash as another node (the cloud) defined them:
   * how an edge learns its devices. Returns whether anything changed.
   */
  async adopt(offered: Omit<DeviceRecord, 'uid'>, tokenHash: string): Promise<'applied' | 'unchanged'> {
    // A record from a node that predates bindings has none: its devices speak MQTT. One that has
    // one is checked as a registration is: an edge must not poll what its cloud would refuse.
    const record = { ...offered, binding: resolveBinding(offered.binding) };
    const current = await this.find(record.id);
    const currentHash = current ? await this.repository.tokenHash(record.id) : undefined;
    const { uid: _uid, ...comparable } = current ?? ({ uid: 0 } as DeviceRecord);
    if (current && currentHash === tokenHash && JSON.stringify(comparable) === JSON.stringify({ ...comparable, ...record }))
      return 'unchanged';
    if (!this.repository.adopt) throw new Error('this device store cannot adopt records');
    const adopted = await this.repository.adopt(record, tokenHash);
    this.cache.set(adopted.id, adopted);
    this.events.emit(current ? 'updated' : 'registered', adopted);
    if (current && currentHash !== tokenHash) this.events.emit('credentialRotated', adopted);
    return 'applied';
  }

  /** Issues a new token; the old one stops working at once. */
  async rotateToken(id: string): Promise<RegisteredDevice> {
    const device = await this.get(id);
    const token = newSecret('tld');
    await this.repository.setTokenHash(id, hashSecret(token));
    this.events.emit('credentialRotated', device);
    return { device, token };
  }

  /** The device if the token is its current one; undefined otherwise (no reason leaked). */
  async authenticate(id: string, token: string): Promise<DeviceRecord | undefined> {
    const device = await this.find(id);
    if (!device) return undefined;
    const hash = await this.repository.tokenHash(id);
    return hash !== undefined && secretMatches(token, hash) ? device : undefined;
  }

  /** Finds a device by identification code or IPv6 address (any valid spelling). */
  async resolve(codeOrIpv6: string): Promise<DeviceRecord> {
    const ipv6 = this.addressing.canonicalIpv6(codeOrIpv6);
    const device = ipv6 ? await this.repository.findByIpv6(ipv6) : await this.repository.findByCode(codeOrIpv6);
    if (!device) throw notFound(`nothing resolves "${codeOrIpv6}": it is neither a known identification code nor a device IPv6 address`);
    return device;
  }
}
