import type { Command } from 'commander';
import type { Alarm, DecisionRecord } from '../agents/index.js';
import { ApiError, type ApiOptions, clientFor, withApiOptions } from './api-client.js';
import { duration, formatFields, formatTable, printJson } from './table.js';

interface Readiness {
  status: string;
  checks: Record<string, boolean>;
}

interface NodeFacts {
  role?: string;
  version?: string;
  uptimeMs?: number;
  connectedDevices?: number;
  ingestQueueDepth?: number;
  edge?: { id?: string; cloud?: string; connected?: boolean };
}

interface FleetSummary {
  total: number;
  byPresence: Record<string, number>;
}

interface EdgeStatus {
  id: string;
  connected: boolean;
  backlog: { records: number; bytes: number; ageMs: number } | null;
  drainRate: number;
}

/** The alarm list read for the count; a node with more open alarms says "1000+". */
const ALARM_PAGE = 1000;

/** `thingloop status`: is the node well, and does anything need a person. */
export function addStatusCommand(program: Command): void {
  withApiOptions(
    program
      .command('status')
      .description("a node's health at a glance: readiness, connected devices, presence, edge backlogs, open alarms, pending approvals"),
  )
    .addHelpText(
      'after',
      [
        '',
        'Exits 1 when the node answers but is not ready (starting or shutting down), so it can guard scripts.',
        '',
        'Example:',
        '  THINGLOOP_URL=http://plant:8080 THINGLOOP_ADMIN_KEY=… thingloop status',
        '',
      ].join('\n'),
    )
    .action(async (options: ApiOptions) => {
      const client = clientFor(options);
      const ready = (await client.call<Readiness>('GET', '/readyz', { doing: 'read readiness' }, { anonymous: true, answers: [503] })).body;
      const node = await client.get<NodeFacts>('/api/v1/node', { doing: 'read the node status' });
      const fleet = await client.get<FleetSummary>('/api/v1/devices/summary', { doing: 'read the fleet summary' });
      const alarms = (await client.get<{ items: Alarm[] }>(`/api/v1/alarms?state=open&limit=${ALARM_PAGE}`, { doing: 'list open alarms' }))
        .items;
      const approvals = (await client.get<{ items: DecisionRecord[] }>('/api/v1/approvals', { doing: 'list pending approvals' })).items;
      let edges: EdgeStatus[] = [];
      try {
        edges = (await client.get<{ items: EdgeStatus[] }>('/api/v1/edges', { doing: 'list edges' })).items;
      } catch (error) {
        // An edge node serves no edges of its own (404); anything else is a real failure.
        if (!(error instanceof ApiError && error.status === 404)) throw error;
      }
      const bySeverity: Record<string, number> = {};
      for (const alarm of alarms) bySeverity[alarm.severity] = (bySeverity[alarm.severity] ?? 0) + 1;
      const backlogRecords = edges.reduce((sum, edge) => sum + (edge.backlog?.records ?? 0), 0);
      const isReady = ready.status === 'ready';
      if (!isReady) process.exitCode = 1;

      if (options.json) {
        return printJson({
          ready: isReady,
          checks: ready.checks,
          node,
          devices: { total: fleet.total, ...fleet.byPresence, connected: node.connectedDevices ?? 0 },
          edges: edges.map((edge) => ({ id: edge.id, connected: edge.connected, backlog: edge.backlog, drainRate: edge.drainRate })),
          backlogRecords,
          alarms: { open: alarms.length, more: alarms.length >= ALARM_PAGE, bySeverity },
          approvals: { pending: approvals.length },
        });
      }
      const notReady = Object.entries(ready.checks)
        .filter(([, ok]) => !ok)
        .map(([name]) => name);
      const presence = ['online', 'asleep', 'offline', 'unknown'].map((status) => `${fleet.byPresence[status] ?? 0} ${status}`).join(', ');
      const severities = Object.entries(bySeverity)
        .map(([severity, count]) => `${count} ${severity}`)
        .join(', ');
      process.stdout.write(
        formatFields([
          ['node', `${client.url} (${node.role ?? '?'}, version ${node.version ?? '?'})`],
          ['health', isReady ? 'ready' : `NOT READY${notReady.length > 0 ? ` (${notReady.join(', ')})` : ''}`],
          ['uptime', node.uptimeMs !== undefined ? duration(node.uptimeMs) : undefined],
          ...(node.edge
            ? [['cloud link', `${node.edge.cloud ?? '?'}: ${node.edge.connected ? 'connected' : 'DOWN'}`] as [string, string]]
            : []),
          ['devices', `${fleet.total} registered: ${presence}`],
          ['connected', `${node.connectedDevices ?? 0} MQTT sessions`],
          ['ingest queue', `${node.ingestQueueDepth ?? 0} samples waiting to be written`],
          ['edges', edges.length > 0 ? `${edges.filter((edge) => edge.connected).length} of ${edges.length} linked` : undefined],
          ['backlog', edges.length > 0 ? `${backlogRecords} records on edges` : 'none'],
          [
            'alarms',
            alarms.length > 0 ? `${alarms.length >= ALARM_PAGE ? `${ALARM_PAGE}+` : alarms.length} open: ${severities}` : 'none open',
          ],
          ['approvals', approvals.length > 0 ? `${approvals.length} waiting (thingloop approvals list)` : 'none waiting'],
        ]),
      );
      const behind = edges.filter((edge) => !edge.connected || (edge.backlog?.records ?? 0) > 0);
      if (behind.length > 0) {
        process.stdout.write('\n');
        process.stdout.write(
          formatTable(
            ['edge', 'link', 'backlog', 'oldest', 'drain/s'],
            behind.map((edge) => [
              edge.id,
              edge.connected ? 'up' : 'down',
              edge.backlog?.records ?? 0,
              edge.backlog && edge.backlog.records > 0 ? duration(edge.backlog.ageMs) : undefined,
              edge.drainRate,
            ]),
          ),
        );
      }
    });
}
