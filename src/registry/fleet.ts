import { EventBus } from '../bus/index.js';
import type { DeviceRecord } from './device.js';
import type { DeviceRegistry, RegistryEvents } from './registry.js';

/** A device as something serving every tenant names it: ids repeat across tenants, so the tenant goes with the id. */
export interface FleetDeviceRef {
  tenant: string;
  id: string;
}

/** One string per (tenant, id), for the maps of listeners and pollers that serve every tenant (tenant ids hold no "/"). */
export function fleetKey(device: FleetDeviceRef): string {
  return `${device.tenant}/${device.id}`;
}

/**
 * Every tenant's devices as the node's shared listeners see them. A listener (the MQTT broker,
 * the CoAP server) does not know a device's tenant before it logs in: ids repeat across
 * tenants, secrets never do, so the secret says which tenant's device it is. After that the
 * record carries its tenant and every lookup names it.
 */
export class FleetDirectory {
  /** Every tenant's registry events, one stream (records carry their tenant). */
  readonly events = new EventBus<RegistryEvents>();
  private readonly registries = new Map<string, DeviceRegistry>();
  private readonly unfollow = new Map<string, (() => void)[]>();

  /** Serves a tenant's devices (at start, or when a tenant is created). */
  add(tenant: string, registry: DeviceRegistry): void {
    this.remove(tenant);
    this.registries.set(tenant, registry);
    const names: (keyof RegistryEvents)[] = ['registered', 'updated', 'removed', 'credentialRotated'];
    this.unfollow.set(
      tenant,
      names.map((name) => registry.events.on(name, (device: DeviceRecord) => this.events.emit(name, device))),
    );
  }

  remove(tenant: string): void {
    for (const off of this.unfollow.get(tenant) ?? []) off();
    this.unfollow.delete(tenant);
    this.registries.delete(tenant);
  }

  tenants(): string[] {
    return [...this.registries.keys()];
  }

  registry(tenant: string): DeviceRegistry | undefined {
    return this.registries.get(tenant);
  }

  /** The device of whichever tenant these credentials belong to, or undefined. */
  async authenticate(id: string, secret: string): Promise<DeviceRecord | undefined> {
    for (const registry of this.registries.values()) {
      const device = await registry.authenticate(id, secret);
      if (device) return device;
    }
    return undefined;
  }

  /** The tenant's device, or undefined (also for a tenant this node does not serve). */
  async find(tenant: string, id: string): Promise<DeviceRecord | undefined> {
    return this.registries.get(tenant)?.find(id);
  }

  /** Devices of this id in any tenant: for log lines about a refused login, never for access. */
  async anyWithId(id: string): Promise<DeviceRecord[]> {
    const found: DeviceRecord[] = [];
    for (const registry of this.registries.values()) {
      const device = await registry.find(id);
      if (device) found.push(device);
    }
    return found;
  }
}
