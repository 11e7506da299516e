import { useEffect, useState } from 'react';
import type { AgentDefinition, AgentList, AgentMode, DecisionRecord } from '../api/types';
import { Confirm } from '../components/Confirm';
import { FilterSelect } from '../components/FilterSelect';
import { DetailPending, Empty, ErrorState, Loaded } from '../components/states';
import { Table } from '../components/Table';
import {
  type DefinitionFormat,
  decisionsPath,
  describeAction,
  enabledOf,
  formatDefinition,
  MODES,
  modeOf,
  newestFirst,
  outcomeText,
  outcomeTone,
  scopeOf,
} from '../lib/agents';
import { formatTime } from '../lib/format';
import { href, navigate } from '../lib/router';
import { useApi, usePermission } from '../lib/session';
import { useLoad, useMutation, usePolled } from '../lib/useApi';

const REFRESH_MS = 10_000;

const OUTCOMES = ['executed', 'awaiting-approval', 'refused', 'shadow', 'rejected', 'expired', 'failed'];

export function ModeBadge({ mode }: { mode: AgentMode }) {
  return <span className={`badge mode-${mode}`}>{mode}</span>;
}

export function EnabledBadge({ enabled }: { enabled: boolean }) {
  return <span className={`badge ${enabled ? 'succeeded' : 'failed'}`}>{enabled ? 'enabled' : 'disabled'}</span>;
}

/** Every agent with its mode and whether it may act, plus the global kill switch. */
export function Agents() {
  const api = useApi();
  const { state, reload } = useLoad((signal) => api.get<AgentList>('/api/v1/agents', signal), []);
  return (
    <section aria-labelledby="agents-title">
      <h1 id="agents-title">Agents</h1>
      <Loaded state={state} what="agents" retry={reload}>
        {(data) => (
          <>
            <KillSwitch engaged={data.killSwitchEngaged} onChanged={reload} />
            {data.items.length === 0 ? (
              <Empty>
                <p>No agents are defined yet.</p>
                <p>
                  Create one with <code>POST /api/v1/agents</code> (JSON or YAML), or run <code>thingloop demo</code> to load the examples
                  in <code>examples/agents</code>.
                </p>
              </Empty>
            ) : (
              <Table className="agents" columns={['Agent', 'Watches', 'Condition', 'Mode', 'State']}>
                {[...data.items]
                  .sort((a, b) => a.id.localeCompare(b.id))
                  .map((agent) => (
                    <tr key={agent.id}>
                      <td>
                        <a href={href.agent(agent.id)}>{agent.name ?? agent.id}</a>
                        {agent.name && <div className="muted">{agent.id}</div>}
                      </td>
                      <td>{scopeOf(agent)}</td>
                      <td>
                        <code>{agent.judge.when ?? 'detectors'}</code>
                      </td>
                      <td>
                        <ModeBadge mode={modeOf(agent)} />
                      </td>
                      <td>
                        <EnabledBadge enabled={enabledOf(agent)} />
                      </td>
                    </tr>
                  ))}
              </Table>
            )}
          </>
        )}
      </Loaded>
    </section>
  );
}

function KillSwitch({ engaged, onChanged }: { engaged: boolean; onChanged: () => void }) {
  const api = useApi();
  const [confirming, setConfirming] = useState(false);
  const { busy, error, run } = useMutation();
  const denied = usePermission()('agents:halt');
  const change = () =>
    run(async () => {
      await api.request('/api/v1/agents/kill-switch', { method: 'PUT', body: { engaged: !engaged } });
      setConfirming(false);
      onChanged();
    });
  return (
    <div className={`kill-switch ${engaged ? 'engaged' : ''}`} data-testid="kill-switch">
      <p>
        <strong>Global kill switch: {engaged ? 'engaged' : 'released'}.</strong>{' '}
        {engaged ? 'No agent sends anything to devices; refusals are recorded.' : 'Agents act according to their mode.'}
      </p>
      <button
        type="button"
        className={engaged ? 'secondary' : 'danger'}
        disabled={!!denied}
        title={denied}
        onClick={() => setConfirming(true)}
      >
        {engaged ? 'Release kill switch' : 'Engage kill switch'}
      </button>
      {error !== undefined && <ErrorState error={error} />}
      {confirming && (
        <Confirm
          title={engaged ? 'Release the kill switch?' : 'Engage the kill switch?'}
          confirmLabel={engaged ? 'Release' : 'Engage'}
          danger={!engaged}
          busy={busy}
          onConfirm={change}
          onCancel={() => setConfirming(false)}
        >
          <p>
            {engaged
              ? 'Agents in auto mode will act on devices again, and approvals can be executed.'
              : 'Every agent stops acting at once: decisions are still judged and recorded, but refused.'}
          </p>
        </Confirm>
      )}
    </div>
  );
}

type Change = { kind: 'mode'; mode: AgentMode } | { kind: 'enabled'; enabled: boolean };

/** One agent: its controls, its definition and its decision log. */
export function AgentDetail({ id, query }: { id: string; query: URLSearchParams }) {
  const api = useApi();
  const base = `/api/v1/agents/${encodeURIComponent(id)}`;
  const { state, reload, set } = useLoad((signal) => api.get<AgentDefinition>(base, signal), [id]);
  const [change, setChange] = useState<Change | undefined>();
  const { busy, error, run } = useMutation();
  const denied = usePermission()('agents:write');
  const [saved, setSaved] = useState<string | undefined>();

  if (state.status !== 'ready') {
    return (
      <DetailPending
        state={state}
        what={`agent ${id}`}
        title={id}
        retry={reload}
        back={{ href: href.agents(), label: 'Back to the agents' }}
      />
    );
  }
  const agent = state.data;
  const mode = modeOf(agent);
  const enabled = enabledOf(agent);

  const apply = async (next: Change) => {
    setSaved(undefined);
    await run(async () => {
      const updated =
        next.kind === 'mode'
          ? await api.request<AgentDefinition>(`${base}/mode`, { method: 'PUT', body: { mode: next.mode } })
          : await api.request<AgentDefinition>(`${base}/enabled`, { method: 'PUT', body: { enabled: next.enabled } });
      set(updated);
      setSaved(next.kind === 'mode' ? `Mode switched to ${next.mode}.` : next.enabled ? 'Agent enabled.' : 'Agent disabled.');
    });
    setChange(undefined);
  };

  return (
    <section aria-labelledby="agent-title">
      <p className="crumbs">
        <a href={href.agents()}>Agents</a> / {agent.id}
      </p>
      <header className="device-head">
        <h1 id="agent-title">{agent.name ?? agent.id}</h1>
        <ModeBadge mode={mode} />
        <EnabledBadge enabled={enabled} />
      </header>
      {agent.description && <p>{agent.description}</p>}

      <div className="columns">
        <section className="card" aria-labelledby="controls-title">
          <h2 id="controls-title">Controls</h2>
          <fieldset className="segmented" aria-describedby="mode-hint">
            <legend className="sr-only">Mode</legend>
            {MODES.map((m) => (
              <button
                key={m.mode}
                type="button"
                aria-pressed={mode === m.mode}
                disabled={!!denied}
                title={denied}
                onClick={() => (m.mode === mode ? undefined : setChange({ kind: 'mode', mode: m.mode }))}
              >
                {m.label}
              </button>
            ))}
          </fieldset>
          <p id="mode-hint" className="hint">
            In {mode} mode this agent {MODES.find((m) => m.mode === mode)?.effect}.
          </p>
          <button
            type="button"
            className={enabled ? 'danger' : undefined}
            disabled={!!denied}
            title={denied}
            onClick={() => setChange({ kind: 'enabled', enabled: !enabled })}
          >
            {enabled ? 'Disable agent' : 'Enable agent'}
          </button>
          <p className="hint">A disabled agent still judges and records decisions, but never acts.</p>
          {saved && (
            <p className="ok" role="status" data-testid="agent-saved">
              {saved}
            </p>
          )}
          {error !== undefined && <ErrorState error={error} />}
          <dl className="facts">
            <dt>Watches</dt>
            <dd>{scopeOf(agent)}</dd>
            <dt>When</dt>
            <dd>
              <code>{agent.judge.when ?? 'a detector flags'}</code>
              {agent.judge.for ? ` for ${agent.judge.for}` : ''}
            </dd>
            {agent.alarm && (
              <>
                <dt>Alarm</dt>
                <dd>
                  {agent.alarm.type ?? agent.id} ({agent.alarm.severity})
                </dd>
              </>
            )}
            {agent.approval && (
              <>
                <dt>Approvals expire</dt>
                <dd>after {agent.approval.expiresIn}</dd>
              </>
            )}
          </dl>
        </section>
        <DefinitionView agent={agent} />
      </div>

      <DecisionLog agentId={agent.id} device={query.get('device') ?? ''} />

      {change && (
        <Confirm
          title={
            change.kind === 'mode' ? `Switch ${agent.id} to ${change.mode} mode?` : `${change.enabled ? 'Enable' : 'Disable'} ${agent.id}?`
          }
          confirmLabel={change.kind === 'mode' ? `Switch to ${change.mode}` : change.enabled ? 'Enable' : 'Disable'}
          danger={change.kind === 'enabled' ? !change.enabled : change.mode === 'auto'}
          busy={busy}
          onConfirm={() => apply(change)}
          onCancel={() => setChange(undefined)}
        >
          <p>
            {change.kind === 'mode'
              ? `In ${change.mode} mode the agent ${MODES.find((m) => m.mode === change.mode)?.effect}.`
              : change.enabled
                ? 'The agent will act again according to its mode.'
                : 'The agent will keep judging and recording, but will not act on any device.'}
          </p>
        </Confirm>
      )}
    </section>
  );
}

function DefinitionView({ agent }: { agent: AgentDefinition }) {
  const [format, setFormat] = useState<DefinitionFormat>('yaml');
  return (
    <section className="card" aria-labelledby="definition-title">
      <div className="card-head">
        <h2 id="definition-title">Definition</h2>
        <fieldset className="segmented">
          <legend className="sr-only">Format</legend>
          {(['yaml', 'json'] as const).map((f) => (
            <button key={f} type="button" aria-pressed={format === f} onClick={() => setFormat(f)}>
              {f.toUpperCase()}
            </button>
          ))}
        </fieldset>
      </div>
      <pre data-testid="agent-definition">{formatDefinition(agent, format)}</pre>
    </section>
  );
}

function DecisionLog({ agentId, device }: { agentId: string; device: string }) {
  const api = useApi();
  const [outcome, setOutcome] = useState('');
  const [search, setSearch] = useState(device);
  const { state, reload } = usePolled(
    async (signal) => newestFirst((await api.get<{ items: DecisionRecord[] }>(decisionsPath(agentId, { device, outcome }), signal)).items),
    [agentId, device, outcome],
    REFRESH_MS,
  );
  useEffect(() => setSearch(device), [device]);
  useEffect(() => {
    if (search.trim() === device) return;
    const timer = setTimeout(() => navigate(href.agent(agentId, { device: search.trim() }), true), 300);
    return () => clearTimeout(timer);
  }, [search, device, agentId]);

  return (
    <section className="card" aria-labelledby="decisions-title">
      <h2 id="decisions-title">Decision log</h2>
      <form className="filters" onSubmit={(event) => event.preventDefault()}>
        <div className="field">
          <label htmlFor="decision-device">Device</label>
          <input
            id="decision-device"
            type="search"
            placeholder="e.g. pump-0002"
            value={search}
            onChange={(event) => setSearch(event.target.value)}
            aria-describedby="decision-device-hint"
          />
          <small id="decision-device-hint">The exact device id.</small>
        </div>
        <FilterSelect id="decision-outcome" label="Outcome" all="All outcomes" options={OUTCOMES} value={outcome} onChange={setOutcome} />
      </form>
      <Loaded
        state={state}
        what="decisions"
        retry={reload}
        empty={
          <p>
            {device || outcome
              ? `No decision${device ? ` for ${device}` : ''}${outcome ? ` with outcome ${outcome}` : ''}.`
              : 'This agent has not decided anything yet: its condition has not held on any device.'}
          </p>
        }
      >
        {(decisions) => (
          <Table
            className="decisions"
            testId="decision-log"
            caption="Decisions, newest first"
            columns={['Time', 'Device', 'Judgment', 'Actions', 'Outcome']}
          >
            {decisions.map((decision) => (
              <tr key={decision.id}>
                <td>
                  <a href={href.decision(decision.id)} aria-label={`Decision on ${decision.deviceId} at ${formatTime(decision.ts)}`}>
                    {formatTime(decision.ts)}
                  </a>
                </td>
                <td>
                  <a href={href.device(decision.deviceId)}>{decision.deviceId}</a>
                </td>
                <td>{decision.judgment.summary}</td>
                <td>
                  {decision.actions.length === 0 ? (
                    <span className="muted">none</span>
                  ) : (
                    <ul className="plain">
                      {decision.actions.map((action, index) => (
                        // biome-ignore lint/suspicious/noArrayIndexKey: actions are a fixed, ordered plan
                        <li key={index}>{describeAction(action)}</li>
                      ))}
                    </ul>
                  )}
                </td>
                <td>
                  <span className={`badge ${outcomeTone(decision.outcome)}`}>{outcomeText(decision)}</span>
                  {decision.safety.refused && <div className="hint">{decision.safety.refused}</div>}
                </td>
              </tr>
            ))}
          </Table>
        )}
      </Loaded>
    </section>
  );
}
