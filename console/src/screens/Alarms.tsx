import { useState } from 'react';
import type { Alarm } from '../api/types';
import { Confirm } from '../components/Confirm';
import { ErrorState, Loaded } from '../components/states';
import { Table } from '../components/Table';
import { alarmsPath, sortOpenAlarms } from '../lib/agents';
import { formatAgo, formatTime } from '../lib/format';
import { href, navigate } from '../lib/router';
import { useApi, usePermission } from '../lib/session';
import { useMutation, useNow, usePolled } from '../lib/useApi';

const REFRESH_MS = 10_000;
const PAGE = 50;

/** Open alarms (to acknowledge and clear) and the history of every alarm, newest first. */
export function Alarms({ query }: { query: URLSearchParams }) {
  const api = useApi();
  const view = query.get('view') === 'history' ? 'history' : 'active';
  const [before, setBefore] = useState<number[]>([]);
  const cursor = before.at(-1);
  const { state, reload, set } = usePolled(
    async (signal) => {
      const items = (await api.get<{ items: Alarm[] }>(alarmsPath(view, { limit: PAGE, before: cursor }), signal)).items;
      return view === 'active' ? sortOpenAlarms(items) : items;
    },
    [view, cursor],
    REFRESH_MS,
  );
  const now = useNow(REFRESH_MS);

  const replace = (updated: Alarm) => {
    if (state.status === 'ready') set(state.data.map((a) => (a.id === updated.id ? updated : a)));
  };
  const items = state.status === 'ready' ? state.data : [];
  const last = items.at(-1);

  return (
    <section aria-labelledby="alarms-title">
      <h1 id="alarms-title">Alarms</h1>
      <nav className="segmented tabs" aria-label="Alarm views">
        <button type="button" aria-pressed={view === 'active'} onClick={() => navigate(href.alarms())}>
          Active
        </button>
        <button type="button" aria-pressed={view === 'history'} onClick={() => navigate(href.alarms({ view: 'history' }))}>
          History
        </button>
      </nav>
      <p className="hint">
        {view === 'active' ? 'Open alarms: active ones first, then by severity.' : 'Every alarm, newest first, whatever its state.'}
      </p>
      <Loaded
        state={state}
        what="alarms"
        retry={reload}
        empty={<p>{view === 'active' ? 'No open alarms.' : cursor ? 'No older alarms.' : 'No alarm has been raised yet.'}</p>}
      >
        {(alarms) => (
          <Table
            className="alarms"
            testId="alarm-table"
            caption={view === 'active' ? 'Open alarms' : 'Alarm history'}
            columns={['Severity', 'State', 'Device', 'Alarm', 'Raised', 'Actions']}
          >
            {alarms.map((alarm) => (
              <AlarmRow key={alarm.id} alarm={alarm} now={now} onChanged={replace} />
            ))}
          </Table>
        )}
      </Loaded>
      {view === 'history' && (
        <nav className="pager" aria-label="Pages">
          {cursor !== undefined && (
            <button type="button" onClick={() => setBefore((b) => b.slice(0, -1))}>
              Newer
            </button>
          )}
          {items.length === PAGE && last && (
            <button type="button" onClick={() => setBefore((b) => [...b, last.raisedAt])}>
              Older
            </button>
          )}
        </nav>
      )}
    </section>
  );
}

function AlarmRow({ alarm, now, onChanged }: { alarm: Alarm; now: number; onChanged: (alarm: Alarm) => void }) {
  const api = useApi();
  const { busy, error, run } = useMutation();
  const [clearing, setClearing] = useState(false);
  const denied = usePermission()('alarms:ack');
  const label = `${alarm.type} on ${alarm.deviceId}`;

  const act = async (what: 'acknowledge' | 'clear') => {
    await run(async () =>
      onChanged(await api.request<Alarm>(`/api/v1/alarms/${encodeURIComponent(alarm.id)}/${what}`, { method: 'POST', body: {} })),
    );
    setClearing(false);
  };

  return (
    <tr data-testid={`alarm-${alarm.deviceId}`}>
      <td>
        <span className={`badge severity-${alarm.severity}`}>{alarm.severity}</span>
      </td>
      <td>
        <span className={`badge state-${alarm.state}`} data-testid="alarm-state">
          {alarm.state}
        </span>
      </td>
      <td>
        <a href={href.device(alarm.deviceId)}>{alarm.deviceId}</a>
      </td>
      <td>
        <strong>{alarm.type}</strong>
        {alarm.count > 1 && <span className="muted"> ×{alarm.count}</span>}
        <div>{alarm.message}</div>
        <details>
          <summary>History</summary>
          <ul className="plain">
            {alarm.history.map((entry, index) => (
              // biome-ignore lint/suspicious/noArrayIndexKey: history is append-only
              <li key={index}>
                {formatTime(entry.ts)}: {entry.event} ({entry.severity}){entry.by ? ` by ${entry.by}` : ''}
                {entry.note ? ` — ${entry.note}` : ''}
              </li>
            ))}
          </ul>
          {alarm.notifications.length > 0 && (
            <p className="hint">
              Notifications:{' '}
              {alarm.notifications.map((n) => `${n.sink} ${n.event} ${n.status}${n.error ? ` (${n.error})` : ''}`).join('; ')}
            </p>
          )}
          <p className="hint">
            Agent <a href={href.agent(alarm.agentId)}>{alarm.agentId}</a>
            {alarm.decisionId && (
              <>
                {' '}
                · <a href={href.decision(alarm.decisionId)}>decision</a>
              </>
            )}
          </p>
        </details>
      </td>
      <td>
        <span title={formatTime(alarm.raisedAt)}>{formatAgo(alarm.raisedAt, now)}</span>
        {alarm.lastRaisedAt !== alarm.raisedAt && <div className="hint">last {formatAgo(alarm.lastRaisedAt, now)}</div>}
      </td>
      <td>
        <div className="buttons">
          {alarm.state === 'active' && (
            <button
              type="button"
              disabled={busy || !!denied}
              title={denied}
              onClick={() => act('acknowledge')}
              aria-label={`Acknowledge ${label}`}
            >
              Acknowledge
            </button>
          )}
          {alarm.state !== 'cleared' && (
            <button
              type="button"
              className="secondary"
              disabled={busy || !!denied}
              title={denied}
              onClick={() => setClearing(true)}
              aria-label={`Clear ${label}`}
            >
              Clear
            </button>
          )}
          {alarm.state === 'cleared' && <span className="muted">cleared {alarm.clearedBy ? `by ${alarm.clearedBy}` : ''}</span>}
        </div>
        {error !== undefined && <ErrorState error={error} />}
        {clearing && (
          <Confirm
            title={`Clear ${label}?`}
            confirmLabel="Clear alarm"
            busy={busy}
            onConfirm={() => act('clear')}
            onCancel={() => setClearing(false)}
          >
            <p>The alarm closes. If the condition is raised again, a new alarm opens.</p>
          </Confirm>
        )}
      </td>
    </tr>
  );
}
