import { Fragment } from 'react';
import type { DecisionRecord } from '../api/types';
import { ApprovalActions } from '../components/ApprovalActions';
import { DetailPending, Empty } from '../components/states';
import { Table } from '../components/Table';
import { describeAction, expiryText, outcomeText, outcomeTone, verificationText, verificationTone } from '../lib/agents';
import { formatTime, formatValue } from '../lib/format';
import { href } from '../lib/router';
import { useApi } from '../lib/session';
import { useLoad, useNow } from '../lib/useApi';

/** One decision in full: what the agent saw, concluded, did or refused, and whether it worked. */
export function Decision({ id }: { id: string }) {
  const api = useApi();
  const { state, reload, set } = useLoad((signal) => api.get<DecisionRecord>(`/api/v1/decisions/${encodeURIComponent(id)}`, signal), [id]);
  const now = useNow(15_000);

  if (state.status !== 'ready') {
    return (
      <DetailPending
        state={state}
        what="the decision"
        title="Decision"
        retry={reload}
        back={{ href: href.agents(), label: 'Back to the agents' }}
      />
    );
  }
  const d = state.data;
  const values = Object.entries(d.inputs.values);
  const windows = Object.entries(d.inputs.windows);
  const detectors = Object.entries(d.inputs.detectors);
  const related = Object.entries(d.inputs.related);

  return (
    <section aria-labelledby="decision-title">
      <p className="crumbs">
        <a href={href.agents()}>Agents</a> / <a href={href.agent(d.agentId)}>{d.agentId}</a> / decision
      </p>
      <header className="device-head">
        <h1 id="decision-title">Decision on {d.deviceId}</h1>
        <span className={`badge ${outcomeTone(d.outcome)}`} data-testid="decision-outcome">
          {outcomeText(d)}
        </span>
      </header>

      <div className="columns">
        <section className="card" aria-labelledby="d-summary">
          <h2 id="d-summary">Summary</h2>
          <dl className="facts">
            <dt>Agent</dt>
            <dd>
              <a href={href.agent(d.agentId)}>{d.agentId}</a> ({d.mode} mode)
            </dd>
            <dt>Device</dt>
            <dd>
              <a href={href.device(d.deviceId)}>{d.deviceId}</a>
            </dd>
            <dt>Decided</dt>
            <dd>{formatTime(d.ts)}</dd>
            <dt>Trigger</dt>
            <dd>{d.trigger === 'missing-data' ? 'missing data' : 'condition'}</dd>
            <dt>Outcome</dt>
            <dd>{outcomeText(d)}</dd>
            {d.alarmId && (
              <>
                <dt>Alarm</dt>
                <dd>
                  <a href={href.alarms({ view: 'history' })}>raised</a> <span className="muted">{d.alarmId}</span>
                </dd>
              </>
            )}
            <dt>Id</dt>
            <dd className="muted">{d.id}</dd>
          </dl>
        </section>

        <section className="card" aria-labelledby="d-judgment">
          <h2 id="d-judgment">Judgment</h2>
          <p>{d.judgment.summary}</p>
          <dl className="facts">
            <dt>Condition</dt>
            <dd>{d.judgment.condition ? <code>{d.judgment.condition}</code> : '—'}</dd>
            <dt>Detectors flagged</dt>
            <dd>{d.judgment.detectorsFlagged.length ? d.judgment.detectorsFlagged.join(', ') : 'none'}</dd>
          </dl>
        </section>
      </div>

      <section className="card" aria-labelledby="d-inputs">
        <h2 id="d-inputs">Inputs</h2>
        {values.length === 0 && windows.length === 0 && detectors.length === 0 ? (
          <Empty>
            <p>No inputs were recorded.</p>
          </Empty>
        ) : (
          <Table caption="What the agent saw" columns={['Input', 'Kind', 'Value', 'At']}>
            {values.map(([name, entry]) => (
              <tr key={`v-${name}`}>
                <td>{name}</td>
                <td>value</td>
                <td>{formatValue(entry.value)}</td>
                <td>{formatTime(entry.ts)}</td>
              </tr>
            ))}
            {windows.map(([name, value]) => (
              <tr key={`w-${name}`}>
                <td>{name}</td>
                <td>window</td>
                <td>{value === null ? '—' : formatValue(value)}</td>
                <td />
              </tr>
            ))}
            {detectors.map(([name, detector]) => (
              <tr key={`d-${name}`}>
                <td>{name}</td>
                <td>detector</td>
                <td>
                  {detector.flagged ? 'flagged' : 'not flagged'}
                  {detector.score !== null ? ` (score ${formatValue(detector.score)})` : ''}
                </td>
                <td />
              </tr>
            ))}
          </Table>
        )}
        {related.length > 0 && (
          <p>
            Related devices:{' '}
            {related.map(([name, peer], index) => (
              <span key={name}>
                {index > 0 && ', '}
                {name} → {peer ? <a href={href.device(peer)}>{peer}</a> : 'none found'}
              </span>
            ))}
          </p>
        )}
      </section>

      <div className="columns">
        <section className="card" aria-labelledby="d-actions">
          <h2 id="d-actions">Actions</h2>
          {d.actions.length === 0 ? (
            <Empty>
              <p>No action was planned.</p>
            </Empty>
          ) : (
            <ol data-testid="decision-actions">
              {d.actions.map((action, index) => (
                // biome-ignore lint/suspicious/noArrayIndexKey: actions are a fixed, ordered plan
                <li key={index}>
                  {describeAction(action)}
                  {action.invocationId && <div className="hint">invocation {action.invocationId}</div>}
                  {action.error && <div className="field-error">failed: {action.error}</div>}
                </li>
              ))}
            </ol>
          )}
          {d.outcome === 'awaiting-approval' && (
            <div className="notice">
              <p>
                Waiting for an operator
                {d.approval ? `: ${expiryText(d.approval.expiresAt, now)} (${formatTime(d.approval.expiresAt)})` : ''}.
              </p>
              <ApprovalActions decision={d} onDecided={set} />
            </div>
          )}
          {d.approval?.verdict && (
            <p data-testid="decision-approval">
              {d.approval.verdict} by {d.approval.decidedBy ?? 'unknown'} at {formatTime(d.approval.decidedAt)}
            </p>
          )}
        </section>

        <section className="card" aria-labelledby="d-safety">
          <h2 id="d-safety">Safety checks</h2>
          {d.safety.passed.length === 0 && !d.safety.refused ? (
            <p className="muted">No checks were needed.</p>
          ) : (
            <ul className="checks">
              {d.safety.passed.map((check) => (
                <li key={check} className="pass">
                  <span aria-hidden="true">✓</span> <span className="sr-only">passed: </span>
                  {check}
                </li>
              ))}
              {d.safety.refused && (
                <li className="refuse">
                  <span aria-hidden="true">✗</span> <span className="sr-only">refused: </span>
                  {d.safety.refused}
                </li>
              )}
            </ul>
          )}
        </section>
      </div>

      <section className="card" aria-labelledby="d-verification">
        <h2 id="d-verification">Verification</h2>
        {d.verification ? (
          <dl className="facts">
            <dt>Expected</dt>
            <dd>
              <code>{d.verification.expect}</code>
            </dd>
            <dt>Status</dt>
            <dd>
              <span className={`badge ${verificationTone(d.verification.status)}`} data-testid="verification-status">
                {verificationText(d.verification, now)}
              </span>
            </dd>
            <dt>Deadline</dt>
            <dd>{formatTime(d.verification.deadline)}</dd>
            {d.verification.holding && (
              <>
                <dt>Held</dt>
                <dd>
                  since {formatTime(d.verification.holding.since)}, must hold until {formatTime(d.verification.holding.until)}
                </dd>
              </>
            )}
            {d.verification.verifiedAt !== undefined && (
              <>
                <dt>Verified</dt>
                <dd>{formatTime(d.verification.verifiedAt)}</dd>
              </>
            )}
            {d.verification.watch && (
              <>
                <dt>Watched</dt>
                <dd>
                  {d.verification.watch.endedAt === undefined
                    ? `until ${formatTime(d.verification.watch.until)}`
                    : `until ${formatTime(d.verification.watch.endedAt)} (${d.verification.watch.ended ?? 'ended'})`}
                </dd>
              </>
            )}
            {d.verification.reopenedAt !== undefined && (
              <>
                <dt>Re-opened</dt>
                <dd>{formatTime(d.verification.reopenedAt)}</dd>
              </>
            )}
            {(d.verification.broken ?? []).map((broken) => (
              <Fragment key={broken.at}>
                <dt>Broke {broken.during === 'hold' ? 'while holding' : 'after verification'}</dt>
                <dd data-testid="verification-broken">
                  {formatTime(broken.at)}:{' '}
                  {Object.entries(broken.values)
                    .map(([name, seen]) => `${name} ${formatValue(seen.value)}`)
                    .join(', ')}
                </dd>
              </Fragment>
            ))}
            <dt>Attempts</dt>
            <dd>{d.verification.attempts}</dd>
            {d.verification.checkedAt !== undefined && (
              <>
                <dt>Checked</dt>
                <dd>{formatTime(d.verification.checkedAt)}</dd>
              </>
            )}
            <dt>Follow-up</dt>
            <dd>{d.verification.followUp.length ? d.verification.followUp.join(', ') : 'none'}</dd>
          </dl>
        ) : (
          <p className="muted">This agent does not verify its actions, or nothing was executed.</p>
        )}
      </section>
    </section>
  );
}
