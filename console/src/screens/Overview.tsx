import { type ComponentType, useEffect, useRef, useState } from 'react';
import type { DevicePage, ModelSummary, Presence } from '../api/types';
import { Empty, ErrorState, Loading } from '../components/states';
import { formatSpan } from '../lib/format';
import { type CounterSample, counterValue, ratePerSecond } from '../lib/metrics';
import { href } from '../lib/router';
import { mapLimit } from '../lib/search';
import { useApi } from '../lib/session';
import { useLoad } from '../lib/useApi';

/** Presence is read per device until the API has an aggregate; this many devices are sampled at most. */
const PRESENCE_SAMPLE = 200;
const REFRESH_MS = 5_000;

/**
 * The overview is a list of panels, each backed by one API. Panels for agents, alarms and edges
 * join this list when their endpoints exist.
 */
const PANELS: { id: string; Panel: ComponentType }[] = [
  { id: 'devices', Panel: DevicesPanel },
  { id: 'presence', Panel: PresencePanel },
  { id: 'ingest', Panel: IngestPanel },
];

export function Overview() {
  return (
    <section aria-labelledby="overview-title">
      <h1 id="overview-title">Overview</h1>
      <div className="panels">
        {PANELS.map(({ id, Panel }) => (
          <Panel key={id} />
        ))}
      </div>
    </section>
  );
}

function DevicesPanel() {
  const api = useApi();
  const { state, reload } = useLoad(async (signal) => {
    const [all, models] = await Promise.all([
      api.get<DevicePage>('/api/v1/devices?limit=1', signal),
      api.get<{ items: ModelSummary[] }>('/api/v1/models', signal),
    ]);
    const byModel = await mapLimit(models.items, 6, async (model) => ({
      model,
      total: (await api.get<DevicePage>(`/api/v1/devices?limit=1&model=${encodeURIComponent(model.id)}`, signal)).total,
    }));
    return { total: all.total, byModel };
  }, []);
  return (
    <article className="panel" aria-labelledby="panel-devices">
      <h2 id="panel-devices">Devices</h2>
      {state.status === 'loading' && <Loading what="devices" />}
      {state.status === 'error' && <ErrorState error={state.error} retry={reload} />}
      {state.status === 'ready' &&
        (state.data.total === 0 ? (
          <Empty>
            <p>No devices are registered yet.</p>
            <p>
              Register one with <code>POST /api/v1/devices</code>, or run <code>thingloop sim</code> against this node.
            </p>
          </Empty>
        ) : (
          <>
            <p className="big" data-testid="device-total">
              {state.data.total}
            </p>
            <table>
              <caption className="sr-only">Devices by model</caption>
              <thead>
                <tr>
                  <th scope="col">Model</th>
                  <th scope="col" className="num">
                    Devices
                  </th>
                </tr>
              </thead>
              <tbody>
                {state.data.byModel
                  .filter((entry) => entry.total > 0)
                  .map(({ model, total }) => (
                    <tr key={model.id}>
                      <td>
                        <a href={href.devices({ model: model.id })}>{model.title}</a> <span className="muted">{model.id}</span>
                      </td>
                      <td className="num">{total}</td>
                    </tr>
                  ))}
              </tbody>
            </table>
          </>
        ))}
    </article>
  );
}

const STATUS_ORDER = ['online', 'asleep', 'offline', 'unknown'];

function PresencePanel() {
  const api = useApi();
  const { state, reload } = useLoad(async (signal) => {
    const page = await api.get<DevicePage>(`/api/v1/devices?limit=${PRESENCE_SAMPLE}`, signal);
    const presences = await mapLimit(page.items, 8, (device) =>
      api.get<Presence>(`/api/v1/devices/${encodeURIComponent(device.id)}/presence`, signal),
    );
    const counts: Record<string, number> = {};
    for (const presence of presences) counts[presence.status] = (counts[presence.status] ?? 0) + 1;
    return { counts, sampled: page.items.length, total: page.total };
  }, []);
  useEffect(() => {
    const timer = setInterval(reload, REFRESH_MS * 3);
    return () => clearInterval(timer);
  }, [reload]);
  return (
    <article className="panel" aria-labelledby="panel-presence">
      <h2 id="panel-presence">Presence</h2>
      {state.status === 'loading' && <Loading what="presence" />}
      {state.status === 'error' && <ErrorState error={state.error} retry={reload} />}
      {state.status === 'ready' &&
        (state.data.sampled === 0 ? (
          <Empty>
            <p>No devices to report on.</p>
          </Empty>
        ) : (
          <>
            <ul className="status-counts">
              {[...STATUS_ORDER, ...Object.keys(state.data.counts).filter((s) => !STATUS_ORDER.includes(s))].map((status) =>
                state.data.counts[status] === undefined && !STATUS_ORDER.slice(0, 3).includes(status) ? null : (
                  <li key={status} data-testid={`presence-${status}`}>
                    <span className={`badge ${status}`}>{status}</span> <strong>{state.data.counts[status] ?? 0}</strong>
                  </li>
                ),
              )}
            </ul>
            {state.data.total > state.data.sampled && (
              <p className="muted">
                Counted over the first {state.data.sampled} of {state.data.total} devices (by id).
              </p>
            )}
          </>
        ))}
    </article>
  );
}

interface NodeInfo {
  role?: string;
  version?: string;
  uptimeMs?: number;
  connectedDevices?: number;
  ingestQueueDepth?: number;
}

function IngestPanel() {
  const api = useApi();
  const [node, setNode] = useState<NodeInfo | undefined>();
  const [rate, setRate] = useState<{ messages?: number; values?: number; rejected?: number }>({});
  const [error, setError] = useState<unknown>();
  const previous = useRef<{ messages?: CounterSample; values?: CounterSample; rejected?: CounterSample }>({});

  useEffect(() => {
    const controller = new AbortController();
    const poll = async () => {
      try {
        const [info, text] = await Promise.all([
          api.get<NodeInfo>('/api/v1/node', controller.signal),
          api.text('/metrics', controller.signal),
        ]);
        const at = Date.now();
        const sample = (name: string) => {
          const value = counterValue(text, name);
          return value === undefined ? undefined : { at, value };
        };
        const current = {
          messages: sample('thingloop_messages_accepted_total'),
          values: sample('thingloop_values_stored_total'),
          rejected: sample('thingloop_values_rejected_total'),
        };
        setRate({
          messages: current.messages && ratePerSecond(previous.current.messages, current.messages),
          values: current.values && ratePerSecond(previous.current.values, current.values),
          rejected: current.rejected && ratePerSecond(previous.current.rejected, current.rejected),
        });
        previous.current = current;
        setNode(info);
        setError(undefined);
      } catch (caught) {
        if ((caught as Error).name !== 'AbortError') setError(caught);
      }
    };
    poll();
    const timer = setInterval(poll, REFRESH_MS);
    return () => {
      controller.abort();
      clearInterval(timer);
    };
  }, [api]);

  const perSecond = (value: number | undefined) => (value === undefined ? 'measuring…' : `${value.toFixed(1)} /s`);
  return (
    <article className="panel" aria-labelledby="panel-ingest">
      <h2 id="panel-ingest">Ingest</h2>
      {error !== undefined && <ErrorState error={error} />}
      {!node && error === undefined && <Loading what="node status" />}
      {node && (
        <dl className="facts">
          <dt>Messages accepted</dt>
          <dd data-testid="ingest-rate">{perSecond(rate.messages)}</dd>
          <dt>Values stored</dt>
          <dd>{perSecond(rate.values)}</dd>
          <dt>Values rejected</dt>
          <dd>{perSecond(rate.rejected)}</dd>
          <dt>Connected devices (MQTT)</dt>
          <dd>{node.connectedDevices ?? '—'}</dd>
          <dt>Ingest queue</dt>
          <dd>{node.ingestQueueDepth ?? '—'}</dd>
          <dt>Node</dt>
          <dd>
            {node.role ?? '—'} {node.version ? `v${node.version}` : ''}
            {node.uptimeMs !== undefined ? `, up ${formatSpan(node.uptimeMs)}` : ''}
          </dd>
        </dl>
      )}
    </article>
  );
}
