import { useEffect, useId, useRef, useState } from 'react';
import type { Alarm, DecisionRecord, DeviceSummary, ModelSummary, PresenceSplit } from '../api/types';
import { Empty, ErrorState, Loaded, Loading } from '../components/states';
import { Table } from '../components/Table';
import { alarmsPath, countBySeverity, describeAction, expiryText, sortOpenAlarms } from '../lib/agents';
import { backlog, devicesText, LINK_LABEL, linkState, PRESENCE_ORDER, presenceSplit, topology } from '../lib/edges';
import { formatAgo, formatSpan } from '../lib/format';
import { type CounterSample, counterValue, ratePerSecond } from '../lib/metrics';
import { href } from '../lib/router';
import { useApi, usePermission } from '../lib/session';
import { type Loadable, usePolled } from '../lib/useApi';
import { LinkBadge, useEdgeList } from './Edges';

const REFRESH_MS = 5_000;
const SUMMARY_REFRESH_MS = 15_000;
const PANEL_REFRESH_MS = REFRESH_MS * 2;
const SHOWN = 5;

/** Every panel is backed by one API; the fleet summary feeds the device, presence and topology panels. */
export function Overview() {
  const api = useApi();
  const metricsDenied = usePermission()('metrics:read');
  const summary = usePolled(
    async (signal) => {
      const [counts, models] = await Promise.all([
        api.get<DeviceSummary>('/api/v1/devices/summary', signal),
        api.get<{ items: ModelSummary[] }>('/api/v1/models', signal),
      ]);
      return { counts, titles: Object.fromEntries(models.items.map((m) => [m.id, m.title])) as Record<string, string> };
    },
    [],
    SUMMARY_REFRESH_MS,
  );
  const reloadSummary = summary.reload;
  return (
    <section aria-labelledby="overview-title">
      <h1 id="overview-title">Overview</h1>
      <div className="panels">
        <TopologyPanel state={summary.state} />
        <AlarmsPanel />
        <ApprovalsPanel />
        <DevicesPanel state={summary.state} retry={reloadSummary} />
        <PresencePanel state={summary.state} retry={reloadSummary} />
        {/* The node's ingest counters are the whole node's, every tenant's: only roles with metrics:read see them. */}
        {!metricsDenied && <IngestPanel />}
      </div>
    </section>
  );
}

type SummaryState = Loadable<{ counts: DeviceSummary; titles: Record<string, string> }>;

function DevicesPanel({ state, retry }: { state: SummaryState; retry: () => void }) {
  return (
    <article className="panel" aria-labelledby="panel-devices">
      <h2 id="panel-devices">Devices</h2>
      <Loaded
        state={state}
        what="devices"
        retry={retry}
        isEmpty={(data) => data.counts.total === 0}
        empty={
          <>
            <p>No devices are registered yet.</p>
            <p>
              Register one with <code>POST /api/v1/devices</code>, or run <code>thingloop sim</code> against this node.
            </p>
          </>
        }
      >
        {(data) => (
          <>
            <p className="big" data-testid="device-total">
              {data.counts.total}
            </p>
            <Table caption="Devices by model" columns={['Model', { label: 'Devices', num: true }]}>
              {Object.entries(data.counts.byModel)
                .sort(([a], [b]) => a.localeCompare(b))
                .map(([model, total]) => (
                  <tr key={model}>
                    <td>
                      <a href={href.devices({ model })}>{data.titles[model] ?? model}</a> <span className="muted">{model}</span>
                    </td>
                    <td className="num">{total}</td>
                  </tr>
                ))}
            </Table>
          </>
        )}
      </Loaded>
    </article>
  );
}

function PresencePanel({ state, retry }: { state: SummaryState; retry: () => void }) {
  return (
    <article className="panel" aria-labelledby="panel-presence">
      <h2 id="panel-presence">Presence</h2>
      <Loaded
        state={state}
        what="presence"
        retry={retry}
        isEmpty={(data) => data.counts.total === 0}
        empty={<p>No devices to report on.</p>}
      >
        {(data) => (
          <ul className="status-counts">
            {PRESENCE_ORDER.map((status) => (
              <li key={status} data-testid={`presence-${status}`}>
                <span className={`badge ${status}`}>{status}</span> <strong>{data.counts.byPresence[status]}</strong>
              </li>
            ))}
          </ul>
        )}
      </Loaded>
    </article>
  );
}

function AlarmsPanel() {
  const api = useApi();
  const { state, reload } = usePolled(
    async (signal) => sortOpenAlarms((await api.get<{ items: Alarm[] }>(alarmsPath('active', { limit: 1000 }), signal)).items),
    [],
    PANEL_REFRESH_MS,
  );
  return (
    <article className="panel" aria-labelledby="panel-alarms">
      <h2 id="panel-alarms">
        <a href={href.alarms()}>Active alarms</a>
      </h2>
      <Loaded state={state} what="alarms" retry={reload} empty={<p>No open alarms.</p>}>
        {(alarms) => (
          <>
            <p className="big" data-testid="alarm-total">
              {alarms.length}
            </p>
            <ul className="status-counts">
              {countBySeverity(alarms).map(({ severity, count }) => (
                <li key={severity}>
                  <span className={`badge severity-${severity}`}>{severity}</span> <strong>{count}</strong>
                </li>
              ))}
            </ul>
            <ul className="plain compact">
              {alarms.slice(0, SHOWN).map((alarm) => (
                <li key={alarm.id}>
                  <span className={`badge state-${alarm.state}`}>{alarm.state}</span> {alarm.type} on{' '}
                  <a href={href.device(alarm.deviceId)}>{alarm.deviceId}</a> <span className="muted">{formatAgo(alarm.raisedAt)}</span>
                </li>
              ))}
            </ul>
            {alarms.length > SHOWN && (
              <p>
                <a href={href.alarms()}>All {alarms.length} open alarms</a>
              </p>
            )}
          </>
        )}
      </Loaded>
    </article>
  );
}

function ApprovalsPanel() {
  const api = useApi();
  const { state, reload } = usePolled(
    async (signal) => (await api.get<{ items: DecisionRecord[] }>('/api/v1/approvals', signal)).items,
    [],
    PANEL_REFRESH_MS,
  );
  const now = Date.now();
  return (
    <article className="panel" aria-labelledby="panel-approvals">
      <h2 id="panel-approvals">
        <a href={href.approvals()}>Approvals waiting</a>
      </h2>
      <Loaded state={state} what="approvals" retry={reload} empty={<p>Nothing is waiting for an operator.</p>}>
        {(waiting) => (
          <>
            <p className="big" data-testid="approval-total">
              {waiting.length}
            </p>
            <ul className="plain compact">
              {waiting.slice(0, SHOWN).map((d) => (
                <li key={d.id}>
                  <a href={href.decision(d.id)}>{d.actions[0] ? describeAction(d.actions[0]) : d.judgment.summary}</a>
                  {d.approval && <span className="muted"> · {expiryText(d.approval.expiresAt, now)}</span>}
                </li>
              ))}
            </ul>
            <p>
              <a href={href.approvals()}>Review the queue</a>
            </p>
          </>
        )}
      </Loaded>
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

/**
 * The terminal–edge–cloud picture: this cloud with the devices that talk to it directly, and each
 * edge with its link state, backlog and the devices it serves. Device counts and their presence
 * split come from the fleet summary the overview already polls (byEdge, direct): no request per edge.
 */
function TopologyPanel({ state }: { state: SummaryState }) {
  const edges = useEdgeList();
  const counts = state.status === 'ready' ? state.data.counts : undefined;
  const notManaged = edges.state.status === 'error' && (edges.state.error as { kind?: string }).kind === 'not_found';
  return (
    <article className="panel wide" aria-labelledby="panel-topology">
      <h2 id="panel-topology">
        <a href={href.edges()}>Devices, edges and cloud</a>
      </h2>
      {edges.state.status === 'loading' && <Loading what="edges" />}
      {edges.state.status === 'error' && !notManaged && <ErrorState error={edges.state.error} retry={edges.reload} />}
      {notManaged && (
        <Empty>
          <p>This node does not manage edges (it is an edge itself, or edges are off).</p>
        </Empty>
      )}
      {edges.state.status === 'ready' &&
        (() => {
          const picture = topology(edges.state.data, counts);
          return (
            <div className="topology" data-testid="topology">
              <div className="node-box cloud">
                <h3>Cloud (this node)</h3>
                <div data-testid="topology-direct">
                  <DeviceSplit split={picture.direct} where="connected directly" />
                </div>
                {counts && <p className="muted">{devicesText(counts.total)} in the fleet</p>}
              </div>
              {picture.edges.length === 0 ? (
                <Empty>
                  <p>
                    No edges: every device talks to this cloud directly. <a href={href.edges()}>Edges</a> explains how to add one.
                  </p>
                </Empty>
              ) : (
                <ul className="edge-boxes" aria-label="Edges">
                  {picture.edges.map(({ edge, devices }) => {
                    const link = linkState(edge);
                    return (
                      <li key={edge.id} data-testid={`topology-edge-${edge.id}`}>
                        <span className={`uplink ${link === 'online' ? 'up' : link === 'offline' ? 'down' : 'never'}`} aria-hidden="true" />
                        <div className={`node-box edge-box ${link}`}>
                          <h3>
                            <a href={href.edge(edge.id)} aria-label={`Edge ${edge.id}, ${LINK_LABEL[link]}`}>
                              {edge.name || edge.id}
                            </a>
                          </h3>
                          <p>
                            <LinkBadge edge={edge} /> <span className="muted">{formatAgo(edge.lastContact)}</span>
                          </p>
                          <p>Backlog: {backlog(edge).text}</p>
                          <div className="terminals" data-testid="topology-edge-devices">
                            <DeviceSplit split={devices} where="behind this edge" />
                          </div>
                        </div>
                      </li>
                    );
                  })}
                </ul>
              )}
            </div>
          );
        })()}
    </article>
  );
}

/**
 * "12 devices behind this edge: 9 online · 2 asleep · 1 offline". The counts are a list named by
 * the headline, so a screen reader announces which devices they split; the dots are only visual.
 */
function DeviceSplit({ split, where }: { split: PresenceSplit | undefined; where: string }) {
  const headline = useId();
  if (!split) return <p className="muted">counting devices…</p>;
  const view = presenceSplit(split);
  return (
    <div className="device-split">
      <span id={headline}>
        {view.devices} {where}
      </span>
      {view.parts.length > 0 && (
        <>
          <span aria-hidden="true">: </span>
          <ul aria-labelledby={headline} className="presence-split">
            {view.parts.map((part, index) => (
              <li key={part.status} className={`presence-${part.status}`}>
                {index > 0 && <span aria-hidden="true"> · </span>}
                {part.text}
              </li>
            ))}
          </ul>
        </>
      )}
    </div>
  );
}
