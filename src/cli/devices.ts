import type { Command } from 'commander';
import type { BindingHealth } from '../gateway/index.js';
import { type DeviceRecord, NETWORK_KINDS } from '../registry/index.js';
import { type ApiOptions, clientFor, withApiOptions } from './api-client.js';
import { formatFields, formatTable, printJson, time } from './table.js';

const PRESENCE = ['online', 'asleep', 'offline', 'unknown'] as const;

interface ListOptions extends ApiOptions {
  model?: string;
  edge?: string;
  status?: string;
  limit: string;
}

interface CreateOptions extends ApiOptions {
  model: string;
  name?: string;
  attr: string[];
  network?: string;
  edge?: string;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/** `key=value`; numbers and booleans as such, so `--attr floor=3` filters like the API's attributes. */
function attribute(pair: string): [string, string | number | boolean] {
  const at = pair.indexOf('=');
  if (at < 1) throw new Error(`--attr "${pair}" must be key=value`);
  const raw = pair.slice(at + 1);
  const value = raw === 'true' ? true : raw === 'false' ? false : raw !== '' && Number.isFinite(Number(raw)) ? Number(raw) : raw;
  return [pair.slice(0, at), value];
}

const examples = (...lines: string[]) => ['', 'Example:', ...lines.map((line) => `  ${line}`), ''].join('\n');

const path = (id: string) => `/api/v1/devices/${encodeURIComponent(id)}`;

/** `thingloop device …`: the fleet's devices through the node's API. */
export function addDeviceCommand(program: Command): void {
  const device = program
    .command('device')
    .description('list, show, register and delete devices on a running node (its HTTP API: --url, --key)');

  withApiOptions(device.command('list').description('list devices, ordered by id'))
    .option('--model <id>', 'only devices of this thing model')
    .option('--edge <id>', 'only devices served by this edge')
    .option('--status <presence>', `only devices in this presence now: ${PRESENCE.join(', ')}`)
    .option('--limit <n>', 'at most this many devices', '1000')
    .addHelpText('after', examples('thingloop device list --model pump --status offline', 'thingloop device list --json | jq -r ".[].id"'))
    .action(async (options: ListOptions) => {
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new Error('--limit must be a whole number above 0');
      if (options.status !== undefined && !PRESENCE.some((status) => status === options.status))
        throw new Error(`--status must be one of ${PRESENCE.join(', ')}`);
      const client = clientFor(options);
      const devices: DeviceRecord[] = [];
      let after: string | null = null;
      // Pages of the API's largest size until the limit or the fleet's end.
      do {
        const query = new URLSearchParams({ limit: String(Math.min(1000, limit - devices.length)) });
        if (options.model) query.set('model', options.model);
        if (options.edge) query.set('edge', options.edge);
        if (options.status) query.set('status', options.status);
        if (after) query.set('after', after);
        const page: { items: DeviceRecord[]; next: string | null } = await client.get(`/api/v1/devices?${query}`, {
          doing: 'list devices',
        });
        devices.push(...page.items);
        after = page.next;
      } while (after && devices.length < limit);
      if (options.json) return printJson(devices);
      process.stdout.write(
        formatTable(
          ['id', 'name', 'model', 'protocol', 'edge', 'created'],
          devices.map((d) => [d.id, d.name, `${d.model}@${d.modelVersion}`, d.binding.protocol, d.edge, time(d.createdAt)]),
          '(no devices)',
        ),
      );
    });

  withApiOptions(device.command('show').description('one device: its record and the health of the binding that reaches it'))
    .argument('<id>', 'device id')
    .addHelpText('after', examples('thingloop device show pump-0001'))
    .action(async (id: string, options: ApiOptions) => {
      const client = clientFor(options);
      const purpose = { doing: `read device "${id}"`, missing: `device "${id}"` };
      const record = await client.get<DeviceRecord>(path(id), purpose);
      const binding = await client.get<BindingHealth>(`${path(id)}/binding`, purpose);
      if (options.json) return printJson({ ...record, bindingHealth: binding });
      process.stdout.write(
        formatFields([
          ['id', record.id],
          ['name', record.name],
          ['model', `${record.model} (version ${record.modelVersion})`],
          ['code', record.code],
          ['ipv6', record.ipv6],
          ['network', record.network.profile],
          ['binding', record.binding.protocol],
          ['binding state', binding.state],
          ['last good read', time(binding.lastGoodReadTs)],
          ['binding errors', binding.errors],
          ['edge', record.edge],
          ['attributes', Object.keys(record.attributes).length > 0 ? JSON.stringify(record.attributes) : undefined],
          ['created', time(record.createdAt)],
          ['updated', time(record.updatedAt)],
        ]),
      );
    });

  withApiOptions(device.command('create').description('register a device; prints its token once (keep it: it is stored hashed)'))
    .argument('<id>', 'device id (letters, digits, . _ : -)')
    .requiredOption('--model <id>', 'its thing model (see thingloop model list)')
    .option('--name <name>', 'a name people read')
    .option('--attr <key=value>', 'an attribute (repeatable)', collect, [])
    .option('--network <profile>', `network profile: ${NETWORK_KINDS.join(', ')}`)
    .option('--edge <id>', 'serve it from this edge')
    .addHelpText('after', examples('thingloop device create pump-0001 --model pump --name "Pump 1" --attr line=2'))
    .action(async (id: string, options: CreateOptions) => {
      const attributes = Object.fromEntries(options.attr.map(attribute));
      const client = clientFor(options);
      const { body } = await client.call<{ device: DeviceRecord; token: string }>(
        'POST',
        '/api/v1/devices',
        { doing: `register device "${id}"` },
        {
          body: {
            id,
            model: options.model,
            ...(options.name !== undefined ? { name: options.name } : {}),
            ...(options.attr.length > 0 ? { attributes } : {}),
            ...(options.network !== undefined ? { network: { profile: options.network } } : {}),
            ...(options.edge !== undefined ? { edge: options.edge } : {}),
          },
        },
      );
      if (options.json) return printJson(body);
      process.stdout.write(
        `registered ${body.device.id} (${body.device.model}@${body.device.modelVersion})\ntoken: ${body.token}\n(shown once: the node keeps only its hash)\n`,
      );
    });

  withApiOptions(device.command('delete').description('delete a device: revokes its credential and drops its live sessions'))
    .argument('<id>', 'device id')
    .option('--yes', 'really delete (required: its telemetry is dropped with it)')
    .addHelpText('after', examples('thingloop device delete pump-0001 --yes'))
    .action(async (id: string, options: ApiOptions & { yes?: boolean }) => {
      if (!options.yes) throw new Error(`deleting "${id}" revokes its credential and drops its data: add --yes to do it`);
      await clientFor(options).call('DELETE', path(id), { doing: `delete device "${id}"`, missing: `device "${id}"` });
      if (options.json) return printJson({ deleted: id });
      process.stdout.write(`deleted ${id}\n`);
    });
}
