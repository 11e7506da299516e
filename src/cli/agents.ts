import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { type AgentDefinition, type Alarm, type DecisionRecord, parseDefinitionFile, SEVERITIES } from '../agents/index.js';
import { ApiError, type ApiOptions, clientFor, withApiOptions } from './api-client.js';
import { formatFields, formatTable, printJson, time } from './table.js';

/** The modes the API knows (PUT /agents/{id}/mode): act, queue for a person, record only. */
const MODES = ['auto', 'approve', 'shadow'] as const;
const ALARM_STATES = ['active', 'acknowledged', 'cleared', 'open', 'all'] as const;

const examples = (...lines: string[]) => ['', 'Example:', ...lines.map((line) => `  ${line}`), ''].join('\n');
const agentPath = (id: string) => `/api/v1/agents/${encodeURIComponent(id)}`;

/** What a decision will do, in one cell: `set pump-1.speed=60, invoke valve-2.open`. */
function plannedActions(decision: DecisionRecord): string {
  return decision.actions
    .map((action) =>
      action.kind === 'set'
        ? `set ${action.deviceId}.${action.property ?? '?'}=${JSON.stringify(action.value)}`
        : `invoke ${action.deviceId}.${action.action ?? '?'}`,
    )
    .join(', ');
}

/** `thingloop agent …`: the closed loops running on the node. */
export function addAgentCommand(program: Command): void {
  const agent = program.command('agent').description('list, show, store and switch the mode of agents on a running node');

  withApiOptions(agent.command('list').description('agents with their mode and whether they may act'))
    .addHelpText('after', examples('thingloop agent list'))
    .action(async (options: ApiOptions) => {
      const reply = await clientFor(options).get<{ items: AgentDefinition[]; killSwitchEngaged: boolean }>('/api/v1/agents', {
        doing: 'list agents',
      });
      if (options.json) return printJson(reply);
      if (reply.killSwitchEngaged) process.stdout.write('KILL SWITCH ENGAGED: no agent acts\n');
      process.stdout.write(
        formatTable(
          ['id', 'name', 'mode', 'enabled', 'devices'],
          reply.items.map((a) => [
            a.id,
            a.name,
            a.mode ?? 'auto',
            a.enabled ?? true,
            a.perceive.devices.ids?.join(',') ?? (a.perceive.devices.model ? `model ${a.perceive.devices.model}` : 'all'),
          ]),
          '(no agents)',
        ),
      );
    });

  withApiOptions(agent.command('show').description("an agent's definition (JSON with --json, else its main lines)"))
    .argument('<id>', 'agent id')
    .addHelpText('after', examples('thingloop agent show pump-bearing-protection --json'))
    .action(async (id: string, options: ApiOptions) => {
      const definition = await clientFor(options).get<AgentDefinition>(agentPath(id), {
        doing: `read agent "${id}"`,
        missing: `agent "${id}"`,
      });
      if (options.json) return printJson(definition);
      process.stdout.write(
        formatFields([
          ['id', definition.id],
          ['name', definition.name],
          ['mode', definition.mode ?? 'auto'],
          ['enabled', definition.enabled ?? true],
          ['devices', JSON.stringify(definition.perceive.devices)],
          ['when', definition.judge.when],
          ['clear', definition.judge.clear],
          ['steps', definition.act?.steps.length],
          ['description', definition.description?.trim()],
        ]),
      );
    });

  withApiOptions(
    agent.command('put').description('create or replace an agent from its definition file (YAML or JSON, see examples/agents/)'),
  )
    .argument('<file>', 'agent definition; its `id` names the agent')
    .addHelpText('after', examples('thingloop agent put examples/agents/pump-bearing-protection.yaml'))
    .action(async (file: string, options: ApiOptions) => {
      let definition: unknown;
      try {
        definition = parseDefinitionFile(file, await readFile(file, 'utf8'));
      } catch (error) {
        throw new Error(`cannot read the agent definition ${file}: ${(error as Error).message}`);
      }
      const id = typeof definition === 'object' && definition !== null && 'id' in definition ? definition.id : undefined;
      if (typeof id !== 'string' || id.length === 0) throw new Error(`${file} has no id: an agent definition starts with "id: <agent id>"`);
      const client = clientFor(options);
      let exists = true;
      try {
        await client.get(agentPath(id), { doing: `read agent "${id}"`, missing: `agent "${id}"` });
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404)) throw error;
        exists = false;
      }
      const purpose = { doing: `${exists ? 'replace' : 'create'} agent "${id}"` };
      const { body } = exists
        ? await client.call<AgentDefinition>('PUT', agentPath(id), purpose, { body: definition })
        : await client.call<AgentDefinition>('POST', '/api/v1/agents', purpose, { body: definition });
      if (options.json) return printJson(body);
      process.stdout.write(`${exists ? 'replaced' : 'created'} agent ${body.id} (mode ${body.mode ?? 'auto'})\n`);
    });

  withApiOptions(
    agent.command('mode').description('switch mode: auto (acts), approve (queues each decision for a person), shadow (records only)'),
  )
    .argument('<id>', 'agent id')
    .argument('<mode>', MODES.join(' | '))
    .addHelpText('after', examples('thingloop agent mode pump-bearing-protection approve'))
    .action(async (id: string, mode: string, options: ApiOptions) => {
      if (!MODES.some((known) => known === mode)) throw new Error(`mode must be one of ${MODES.join(', ')} (not "${mode}")`);
      const { body } = await clientFor(options).call<AgentDefinition>(
        'PUT',
        `${agentPath(id)}/mode`,
        { doing: `change the mode of agent "${id}"`, missing: `agent "${id}"` },
        { body: { mode } },
      );
      if (options.json) return printJson(body);
      process.stdout.write(`agent ${body.id} is now in ${body.mode ?? mode} mode\n`);
    });
}

/** `thingloop approvals …`: decisions waiting for a person. */
export function addApprovalsCommand(program: Command): void {
  const approvals = program.command('approvals').description('decisions of agents in approve mode waiting for a person');

  withApiOptions(approvals.command('list').description('pending decisions, with what each would do'))
    .addHelpText('after', examples('thingloop approvals list'))
    .action(async (options: ApiOptions) => {
      const { items } = await clientFor(options).get<{ items: DecisionRecord[] }>('/api/v1/approvals', {
        doing: 'list pending approvals',
      });
      if (options.json) return printJson(items);
      process.stdout.write(
        formatTable(
          ['id', 'agent', 'device', 'decided', 'expires', 'judgment', 'actions'],
          items.map((d) => [d.id, d.agentId, d.deviceId, time(d.ts), time(d.approval?.expiresAt), d.judgment.summary, plannedActions(d)]),
          '(nothing waits for approval)',
        ),
      );
    });

  for (const verdict of ['approve', 'reject'] as const) {
    withApiOptions(
      approvals
        .command(verdict)
        .description(
          verdict === 'approve'
            ? 'approve a pending decision: the safety envelope is checked again, then it is executed'
            : 'reject a pending decision: nothing is sent',
        ),
    )
      .argument('<id>', 'decision id (from approvals list)')
      .option('--note <text>', 'why, kept on the decision record with who decided')
      .addHelpText(
        'after',
        examples(
          `thingloop approvals ${verdict} 6f1c2a9e-… --note "${verdict === 'approve' ? 'checked on site' : 'pump is in maintenance'}"`,
        ),
      )
      .action(async (id: string, options: ApiOptions & { note?: string }) => {
        const { body } = await clientFor(options).call<DecisionRecord>(
          'POST',
          `/api/v1/approvals/${encodeURIComponent(id)}/${verdict}`,
          { doing: `${verdict} decision "${id}"`, missing: `pending decision "${id}"` },
          { body: options.note !== undefined ? { note: options.note } : {} },
        );
        if (options.json) return printJson(body);
        process.stdout.write(`${body.id}: ${body.outcome}${body.approval?.decidedBy ? ` (by ${body.approval.decidedBy})` : ''}\n`);
      });
  }
}

/** `thingloop alarms …`: what agents raised. */
export function addAlarmsCommand(program: Command): void {
  const alarms = program.command('alarms').description('alarms agents raised: list and acknowledge them');

  withApiOptions(alarms.command('list').description('alarms, newest first (open ones unless --state says otherwise)'))
    .option('--state <state>', `${ALARM_STATES.join(' | ')}`, 'open')
    .option('--device <id>', "only this device's alarms")
    .option('--agent <id>', "only this agent's alarms")
    .option('--limit <n>', 'at most this many (up to 1000)', '100')
    .addHelpText('after', examples('thingloop alarms list', 'thingloop alarms list --state all --device pump-0001 --json'))
    .action(async (options: ApiOptions & { state: string; device?: string; agent?: string; limit: string }) => {
      if (!ALARM_STATES.some((state) => state === options.state)) throw new Error(`--state must be one of ${ALARM_STATES.join(', ')}`);
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new Error('--limit must be a whole number from 1 to 1000');
      const query = new URLSearchParams({ state: options.state, limit: String(limit) });
      if (options.device) query.set('device', options.device);
      if (options.agent) query.set('agent', options.agent);
      const { items } = await clientFor(options).get<{ items: Alarm[] }>(`/api/v1/alarms?${query}`, { doing: 'list alarms' });
      if (options.json) return printJson(items);
      // Most severe first catches the eye; the API's order (newest first) holds within a severity.
      const rank = (alarm: Alarm) => SEVERITIES.indexOf(alarm.severity);
      const sorted = [...items].sort((a, b) => rank(a) - rank(b));
      process.stdout.write(
        formatTable(
          ['id', 'severity', 'state', 'device', 'type', 'raised', 'count', 'message'],
          sorted.map((a) => [a.id, a.severity, a.state, a.deviceId, a.type, time(a.raisedAt), a.count, a.message]),
          '(no alarms)',
        ),
      );
    });

  for (const [verb, route, done] of [
    ['ack', 'acknowledge', 'acknowledged'],
    ['clear', 'clear', 'cleared'],
  ] as const) {
    withApiOptions(
      alarms.command(verb).description(verb === 'ack' ? 'acknowledge an active alarm' : 'clear an alarm (the condition is gone)'),
    )
      .argument('<id>', 'alarm id (from alarms list)')
      .option('--note <text>', 'kept in the alarm history with who did it')
      .addHelpText(
        'after',
        examples(`thingloop alarms ${verb} b7d4e0c2-… --note "${verb === 'ack' ? 'crew on the way' : 'bearing replaced'}"`),
      )
      .action(async (id: string, options: ApiOptions & { note?: string }) => {
        const { body } = await clientFor(options).call<Alarm>(
          'POST',
          `/api/v1/alarms/${encodeURIComponent(id)}/${route}`,
          { doing: `${route} alarm "${id}"`, missing: `alarm "${id}"` },
          { body: options.note !== undefined ? { note: options.note } : {} },
        );
        if (options.json) return printJson(body);
        process.stdout.write(`${body.id} ${done} (${body.severity}, ${body.deviceId})\n`);
      });
  }
}
