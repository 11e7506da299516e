import type { CommandService } from '../commands/index.js';
import type { DeviceRecord, DeviceRegistry } from '../registry/index.js';
import type { TwinService } from '../twin/index.js';
import type { PlantAccess } from './engine.js';

/** The plant as agents reach it: registry lookups, twins and commands. */
export function plantAccess(registry: DeviceRegistry, twins: TwinService, commands: CommandService): PlantAccess {
  // Peer lookups (joins across a group) are cached until the registry changes.
  let peers = new Map<string, DeviceRecord[]>();
  const forget = () => {
    peers = new Map();
  };
  for (const event of ['registered', 'updated', 'removed'] as const) registry.events.on(event, forget);
  return {
    device: (id) => registry.find(id),
    async peers(model, attribute, value) {
      const key = JSON.stringify([model, attribute, value]);
      let found = peers.get(key);
      if (!found) {
        found = [];
        for await (const page of registry.all(model ? { model } : {})) {
          found.push(...page.filter((device) => device.attributes[attribute] === value));
        }
        peers.set(key, found);
      }
      return found;
    },
    desired: async (device) => (await twins.get(device)).desired,
    reported: async (device) => {
      const twin = await twins.get(device);
      return Object.fromEntries(
        Object.entries(twin.reported).map(([key, value]) => [key, { value, ts: twin.metadata.reported[key]?.ts ?? 0 }]),
      );
    },
    setDesired: async (device, values, actor) => {
      await twins.setDesired(device, { values, expectedVersion: undefined, actor });
    },
    invoke: async (device, action, input, actor) => (await commands.invoke(device, { action, input, actor })).invocation,
  };
}
