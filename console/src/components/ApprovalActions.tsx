import { useState } from 'react';
import type { DecisionRecord } from '../api/types';
import { describeAction, outcomeText } from '../lib/agents';
import { useApi, usePermission } from '../lib/session';
import { useMutation } from '../lib/useApi';
import { Confirm } from './Confirm';
import { ErrorState } from './states';

type Verdict = 'approve' | 'reject';

/** Approve or reject one pending decision, each after a confirmation that repeats what would be done. */
export function ApprovalActions({ decision, onDecided }: { decision: DecisionRecord; onDecided: (decision: DecisionRecord) => void }) {
  const api = useApi();
  const [verdict, setVerdict] = useState<Verdict | undefined>();
  const { busy, error, run } = useMutation();
  const denied = usePermission()('decisions:approve');
  const target = `${decision.agentId} on ${decision.deviceId}`;

  const send = async (chosen: Verdict) => {
    await run(async () =>
      onDecided(
        await api.request<DecisionRecord>(`/api/v1/approvals/${encodeURIComponent(decision.id)}/${chosen}`, { method: 'POST', body: {} }),
      ),
    );
    setVerdict(undefined);
  };

  return (
    <>
      <div className="buttons">
        <button type="button" onClick={() => setVerdict('approve')} aria-label={`Approve ${target}`} disabled={!!denied} title={denied}>
          Approve
        </button>
        <button
          type="button"
          className="secondary"
          onClick={() => setVerdict('reject')}
          aria-label={`Reject ${target}`}
          disabled={!!denied}
          title={denied}
        >
          Reject
        </button>
      </div>
      {denied && (
        <p className="hint" data-testid="approval-denied">
          {denied}
        </p>
      )}
      {error !== undefined && <ErrorState error={error} />}
      {verdict && (
        <Confirm
          title={verdict === 'approve' ? `Approve and execute on ${decision.deviceId}?` : `Reject the decision on ${decision.deviceId}?`}
          confirmLabel={verdict === 'approve' ? 'Approve and execute' : 'Reject'}
          danger={verdict === 'approve'}
          busy={busy}
          onConfirm={() => send(verdict)}
          onCancel={() => setVerdict(undefined)}
        >
          {verdict === 'approve' ? (
            <>
              <p>The safety envelope is checked again, then this is done:</p>
              <ul>
                {decision.actions.map((action, index) => (
                  // biome-ignore lint/suspicious/noArrayIndexKey: actions are a fixed, ordered plan
                  <li key={index}>{describeAction(action)}</li>
                ))}
              </ul>
            </>
          ) : (
            <p>Nothing is sent to the device; the decision is recorded as {outcomeText({ outcome: 'rejected' })}.</p>
          )}
        </Confirm>
      )}
    </>
  );
}
