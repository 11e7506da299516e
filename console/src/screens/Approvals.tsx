import { useState } from 'react';
import type { DecisionRecord } from '../api/types';
import { ApprovalActions } from '../components/ApprovalActions';
import { Loaded } from '../components/states';
import { describeAction, expiryText, outcomeText, outcomeTone } from '../lib/agents';
import { formatAgo, formatTime } from '../lib/format';
import { href } from '../lib/router';
import { useApi } from '../lib/session';
import { useNow, usePolled } from '../lib/useApi';

const REFRESH_MS = 10_000;

/** Decisions of approve-mode agents waiting for an operator, oldest (closest to expiring) first. */
export function Approvals() {
  const api = useApi();
  const { state, reload } = usePolled(
    async (signal) => (await api.get<{ items: DecisionRecord[] }>('/api/v1/approvals', signal)).items,
    [],
    REFRESH_MS,
  );
  const [decided, setDecided] = useState<DecisionRecord[]>([]);
  const now = useNow(REFRESH_MS);

  const decidedIds = new Set(decided.map((d) => d.id));
  const waiting = (items: DecisionRecord[]) =>
    items.filter((d) => !decidedIds.has(d.id)).sort((a, b) => (a.approval?.expiresAt ?? a.ts) - (b.approval?.expiresAt ?? b.ts));

  return (
    <section aria-labelledby="approvals-title">
      <h1 id="approvals-title">Approvals</h1>
      {decided.length > 0 && (
        <div className="card" role="status" aria-live="polite" data-testid="approvals-decided">
          <h2>Decided just now</h2>
          <ul className="plain">
            {decided.map((d) => (
              <li key={d.id}>
                <span className={`badge ${outcomeTone(d.outcome)}`}>{outcomeText(d)}</span> {d.agentId} on {d.deviceId} —{' '}
                <a href={href.decision(d.id)}>view the decision</a>
                {d.safety.refused && <div className="field-error">Refused at approval: {d.safety.refused}</div>}
              </li>
            ))}
          </ul>
        </div>
      )}
      <Loaded
        state={state}
        what="approvals"
        retry={reload}
        isEmpty={(items) => waiting(items).length === 0}
        empty={
          <>
            <p>Nothing is waiting for approval.</p>
            <p className="muted">
              Agents in <strong>approve</strong> mode queue their decisions here. See the <a href={href.agents()}>agents</a>.
            </p>
          </>
        }
      >
        {(items) => (
          <ul className="queue" aria-label="Decisions waiting for approval">
            {waiting(items).map((d) => (
              <li key={d.id} className="card" data-testid={`approval-${d.deviceId}`} aria-labelledby={`approval-${d.id}`}>
                <div className="card-head">
                  <h2 id={`approval-${d.id}`}>
                    {d.agentId} on <a href={href.device(d.deviceId)}>{d.deviceId}</a>
                  </h2>
                  {d.approval && (
                    <span
                      className={`badge ${d.approval.expiresAt - now < 60_000 ? 'failed' : 'queued'}`}
                      title={formatTime(d.approval.expiresAt)}
                    >
                      {expiryText(d.approval.expiresAt, now)}
                    </span>
                  )}
                </div>
                <p>
                  {d.judgment.summary} <span className="muted">({formatAgo(d.ts, now)})</span>
                </p>
                <h3>Would do</h3>
                <ol>
                  {d.actions.map((action, index) => (
                    // biome-ignore lint/suspicious/noArrayIndexKey: actions are a fixed, ordered plan
                    <li key={index}>{describeAction(action)}</li>
                  ))}
                </ol>
                {d.safety.passed.length > 0 && <p className="hint">Safety checks passed: {d.safety.passed.join('; ')}</p>}
                <ApprovalActions
                  decision={d}
                  onDecided={(updated) => {
                    setDecided((current) => [updated, ...current.filter((x) => x.id !== updated.id)]);
                    reload();
                  }}
                />
                <p className="hint">
                  <a href={href.decision(d.id)}>Full record</a>
                </p>
              </li>
            ))}
          </ul>
        )}
      </Loaded>
    </section>
  );
}
