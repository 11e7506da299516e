import { useEffect } from 'react';
import type { EdgeConfigView, EdgeStatus } from '../api/types';
import { Empty, ErrorState, Loading } from '../components/states';
import {
  backlog,
  CONFIG_LABEL,
  capacity,
  configItems,
  configSummary,
  formatBytes,
  formatRate,
  type Gauge,
  heartbeatStale,
  LINK_LABEL,
  linkState,
} from '../lib/edges';
import { formatAgo, formatTime } from '../lib/format';
import { href } from '../lib/router';
import { useApi } from '../lib/session';
import { type Loadable, useLoad } from '../lib/useApi';

/** The link state shows within one refresh of an edge connecting or dropping. */
export const EDGE_REFRESH_MS = 5_000;

/** GET /api/v1/edges, refreshed every few seconds (the last answer stays shown while reloading). */
export function useEdgeList() {
  const api = useApi();
  const result = useLoad(async (signal) => (await api.get<{ items: EdgeStatus[] }>('/api/v1/edges', signal)).items, []);
  const { reload } = result;
  useEffect(() => {
    const timer = setInterval(reload, EDGE_REFRESH_MS);
    return () => clearInterval(timer);
  }, [reload]);
  return result;
}

export function LinkBadge({ edge }: { edge: Pick<EdgeStatus, 'connected' | 'lastContact'> }) {
  const state = linkState(edge);
  return (
    <span className={`badge link-${state}`} data-testid="edge-link">
      {LINK_LABEL[state]}
    </span>
  );
}

function ConfigBadge({ config }: { config: EdgeStatus['config'] }) {
  const summary = configSummary(config);
  return (
    <>
      <span className={`badge config-${summary.state}`}>{CONFIG_LABEL[summary.state]}</span>{' '}
      <span className="muted">
        v{config.desiredVersion} / {config.appliedVersion === null ? 'none' : `v${config.appliedVersion}`}
      </span>
      {summary.failed > 0 && <span className="fail-text"> · {summary.failed} failed</span>}
    </>
  );
}

function GaugeText({ gauge }: { gauge: Gauge }) {
  return (
    <span className={gauge.high ? 'fail-text' : undefined}>
      {gauge.label} {gauge.text}
    </span>
  );
}

function CapacityCell({ edge }: { edge: EdgeStatus }) {
  if (!edge.heartbeat) return <span className="muted">no heartbeat yet</span>;
  const c = capacity(edge.heartbeat);
  return (
    <ul className="plain capacity">
      <li>
        <GaugeText gauge={c.cpu} />
      </li>
      <li>
        <GaugeText gauge={c.memory} />
      </li>
      <li>
        <GaugeText gauge={c.disk} />
      </li>
      <li>Accelerators: {c.accelerators}</li>
      {heartbeatStale(edge.heartbeat) && <li className="muted">as of {formatAgo(edge.heartbeat.at)}</li>}
    </ul>
  );
}

function countLinks(edges: EdgeStatus[]): string {
  const online = edges.filter((e) => e.connected).length;
  return `${edges.length} edge${edges.length === 1 ? '' : 's'}: ${online} online, ${edges.length - online} offline`;
}

export function Edges() {
  const { state, reload } = useEdgeList();
  return (
    <section aria-labelledby="edges-title">
      <div className="card-head">
        <h1 id="edges-title">Edges</h1>
        <button type="button" className="secondary" onClick={reload}>
          Refresh
        </button>
      </div>
      <p className="hint">
        Site gateways that serve devices locally and forward to this cloud. The list refreshes every {EDGE_REFRESH_MS / 1000} s.
      </p>
      {state.status === 'loading' && <Loading what="edges" />}
      {state.status === 'error' && <ErrorState error={state.error} retry={reload} />}
      {state.status === 'ready' &&
        (state.data.length === 0 ? (
          <Empty>
            <p>No edges are registered. Every device talks to this cloud directly.</p>
            <p>
              Register one with <code>POST /api/v1/edges</code>, then start it with{' '}
              <code>thingloop serve --role edge --cloud-url … --edge-id … --edge-token …</code>.
            </p>
          </Empty>
        ) : (
          <>
            <p className="muted" aria-live="polite" data-testid="edge-counts">
              {countLinks(state.data)}
            </p>
            <div className="table-wrap">
              <table className="edges">
                <thead>
                  <tr>
                    <th scope="col">Edge</th>
                    <th scope="col">Link</th>
                    <th scope="col">Backlog</th>
                    <th scope="col">Drain rate</th>
                    <th scope="col">Gaps</th>
                    <th scope="col">Capacity</th>
                    <th scope="col">Configuration</th>
                  </tr>
                </thead>
                <tbody>
                  {[...state.data]
                    .sort((a, b) => a.id.localeCompare(b.id))
                    .map((edge) => (
                      <tr key={edge.id} data-testid={`edge-row-${edge.id}`}>
                        <td>
                          <a href={href.edge(edge.id)}>{edge.id}</a>
                          {edge.name && edge.name !== edge.id && <div className="muted">{edge.name}</div>}
                        </td>
                        <td>
                          <LinkBadge edge={edge} />
                          <div className="muted">last contact {formatAgo(edge.lastContact)}</div>
                        </td>
                        <td>{backlog(edge).text}</td>
                        <td className="num">{formatRate(edge.drainRate)}</td>
                        <td>
                          {edge.gaps.reports === 0 ? (
                            <span className="muted">none</span>
                          ) : (
                            <span className="fail-text">
                              {edge.gaps.dropped} dropped in {edge.gaps.reports} report{edge.gaps.reports === 1 ? '' : 's'}
                            </span>
                          )}
                        </td>
                        <td>
                          <CapacityCell edge={edge} />
                        </td>
                        <td>
                          <ConfigBadge config={edge.config} />
                        </td>
                      </tr>
                    ))}
                </tbody>
              </table>
            </div>
          </>
        ))}
    </section>
  );
}

function Meter({ gauge }: { gauge: Gauge }) {
  return (
    <>
      <dt>{gauge.label}</dt>
      <dd className={gauge.high ? 'fail-text' : undefined}>
        {gauge.percent !== undefined && (
          <meter min={0} max={100} high={90} value={gauge.percent} aria-label={`${gauge.label} used`}>
            {Math.round(gauge.percent)} %
          </meter>
        )}{' '}
        {gauge.text}
      </dd>
    </>
  );
}

export function EdgeDetail({ id }: { id: string }) {
  const api = useApi();
  const status = useLoad((signal) => api.get<EdgeStatus>(`/api/v1/edges/${encodeURIComponent(id)}`, signal), [id]);
  const reloadStatus = status.reload;
  useEffect(() => {
    const timer = setInterval(reloadStatus, EDGE_REFRESH_MS);
    return () => clearInterval(timer);
  }, [reloadStatus]);
  const edge = status.state.status === 'ready' ? status.state.data : undefined;
  // The configuration document is reloaded when the edge's config status changes, not on every tick.
  const configKey = edge
    ? `${edge.config.desiredVersion}/${edge.config.appliedVersion}/${edge.config.results.map((r) => `${r.kind}:${r.id}:${r.status}`).join(',')}`
    : '';
  const config = useLoad((signal) => api.get<EdgeConfigView>(`/api/v1/edges/${encodeURIComponent(id)}/config`, signal), [id, configKey]);

  return (
    <section aria-labelledby="edge-title">
      <p className="crumbs">
        <a href={href.edges()}>Edges</a> /
      </p>
      {status.state.status === 'loading' && <Loading what={`edge ${id}`} />}
      {status.state.status === 'error' && (
        <>
          <h1 id="edge-title">Edge {id}</h1>
          <ErrorState error={status.state.error} retry={reloadStatus} />
        </>
      )}
      {edge && (
        <>
          <div className="device-head">
            <h1 id="edge-title">{edge.name || edge.id}</h1>
            <code>{edge.id}</code>
            <LinkBadge edge={edge} />
            <button type="button" className="secondary" onClick={reloadStatus}>
              Refresh
            </button>
          </div>
          <div className="columns">
            <article className="card" aria-labelledby="edge-link-title">
              <h2 id="edge-link-title">Link and backlog</h2>
              <dl className="facts">
                <dt>Link</dt>
                <dd data-testid="edge-link-state">
                  {LINK_LABEL[linkState(edge)]}
                  {!edge.connected && edge.lastContact !== null && (
                    <span className="muted"> (records queue on the edge until it reconnects)</span>
                  )}
                </dd>
                <dt>Last contact</dt>
                <dd>
                  {formatAgo(edge.lastContact)} <span className="muted">{edge.lastContact ? formatTime(edge.lastContact) : ''}</span>
                </dd>
                <dt>Backlog</dt>
                <dd data-testid="edge-backlog">{backlog(edge).text}</dd>
                <dt>Drain rate (edge)</dt>
                <dd>{formatRate(edge.drainRate)}</dd>
                <dt>Apply rate (cloud)</dt>
                <dd>{formatRate(edge.applyRate)}</dd>
                <dt>Applied up to</dt>
                <dd>
                  sequence {edge.appliedSeq}
                  {edge.heartbeat && <span className="muted"> of {edge.heartbeat.outbox.lastSeq} written</span>}
                </dd>
                <dt>Registered</dt>
                <dd>{formatTime(edge.createdAt)}</dd>
              </dl>
            </article>
            <article className="card" aria-labelledby="edge-capacity-title">
              <h2 id="edge-capacity-title">Capacity</h2>
              {edge.heartbeat ? (
                (() => {
                  const c = capacity(edge.heartbeat);
                  return (
                    <>
                      <dl className="facts">
                        <Meter gauge={c.cpu} />
                        <Meter gauge={c.memory} />
                        <Meter gauge={c.disk} />
                        <dt>Accelerators</dt>
                        <dd>{c.accelerators}</dd>
                        <dt>Outbox</dt>
                        <dd>
                          {edge.heartbeat.outbox.records} records, {formatBytes(edge.heartbeat.outbox.bytes)}
                        </dd>
                      </dl>
                      <p className={heartbeatStale(edge.heartbeat) ? 'notice' : 'hint'}>
                        From the heartbeat of {formatAgo(edge.heartbeat.at)}
                        {heartbeatStale(edge.heartbeat) ? ': these figures may be out of date.' : '.'}
                      </p>
                    </>
                  );
                })()
              ) : (
                <Empty>
                  <p>No heartbeat yet: the edge reports its capacity every 10 s once connected.</p>
                </Empty>
              )}
            </article>
          </div>
          <article className="card" aria-labelledby="edge-gaps-title">
            <h2 id="edge-gaps-title">Gaps</h2>
            {edge.gaps.reports === 0 ? (
              <p className="muted">No gaps: the edge has not dropped or thinned out any telemetry.</p>
            ) : (
              <>
                <p className="fail-text" data-testid="edge-gaps">
                  {edge.gaps.dropped} sample{edge.gaps.dropped === 1 ? '' : 's'} dropped in {edge.gaps.reports} gap report
                  {edge.gaps.reports === 1 ? '' : 's'} (the outbox was full).
                </p>
                {edge.gaps.last && (
                  <>
                    <h3>Last gap, {formatTime(edge.gaps.last.at)}</h3>
                    <p>
                      Policy {edge.gaps.last.policy}: {edge.gaps.last.total} sample{edge.gaps.last.total === 1 ? '' : 's'} removed.
                    </p>
                    <div className="table-wrap">
                      <table>
                        <thead>
                          <tr>
                            <th scope="col">Device</th>
                            <th scope="col" className="num">
                              Dropped
                            </th>
                            <th scope="col">From</th>
                            <th scope="col">To</th>
                          </tr>
                        </thead>
                        <tbody>
                          {Object.entries(edge.gaps.last.devices).map(([deviceId, gap]) => (
                            <tr key={deviceId}>
                              <td>
                                <a href={href.device(deviceId)}>{deviceId}</a>
                              </td>
                              <td className="num">{gap.dropped}</td>
                              <td>{formatTime(gap.from)}</td>
                              <td>{formatTime(gap.to)}</td>
                            </tr>
                          ))}
                        </tbody>
                      </table>
                    </div>
                  </>
                )}
              </>
            )}
          </article>
          <ConfigCard edge={edge} state={config.state} retry={config.reload} />
        </>
      )}
    </section>
  );
}

function ConfigCard({ edge, state, retry }: { edge: EdgeStatus; state: Loadable<EdgeConfigView>; retry: () => void }) {
  const summary = configSummary(edge.config);
  return (
    <article className="card" aria-labelledby="edge-config-title">
      <div className="card-head">
        <h2 id="edge-config-title">Configuration</h2>
        <span className={`badge config-${summary.state}`}>{CONFIG_LABEL[summary.state]}</span>
      </div>
      <p data-testid="edge-config-summary">{summary.text}.</p>
      {state.status === 'loading' && <Loading what="configuration" />}
      {state.status === 'error' && <ErrorState error={state.error} retry={retry} />}
      {state.status === 'ready' &&
        (() => {
          const items = configItems(state.data);
          const devices = state.data.desired.devices.length;
          return (
            <>
              <p className="muted">
                Serves {devices} device{devices === 1 ? '' : 's'}, {state.data.desired.models.length} model version
                {state.data.desired.models.length === 1 ? '' : 's'} and {state.data.desired.agents.length} agent
                {state.data.desired.agents.length === 1 ? '' : 's'}.
              </p>
              {items.length === 0 ? (
                <Empty>
                  <p>Nothing is configured for this edge yet. Register devices with an "edge" of {edge.id} to serve them here.</p>
                </Empty>
              ) : (
                <div className="table-wrap">
                  <table className="config-items" data-testid="edge-config-items">
                    <caption className="sr-only">Desired configuration items and the edge's result for each</caption>
                    <thead>
                      <tr>
                        <th scope="col">Kind</th>
                        <th scope="col">Item</th>
                        <th scope="col">Desired</th>
                        <th scope="col">Result</th>
                      </tr>
                    </thead>
                    <tbody>
                      {items.map((item) => (
                        <tr key={`${item.kind}:${item.id}`} className={item.status === 'failed' ? 'failed-row' : undefined}>
                          <td>{item.kind}</td>
                          <td>
                            {item.kind === 'device' || item.kind === 'desired' ? (
                              <a href={href.device(item.id)}>{item.id}</a>
                            ) : (
                              <code>{item.id}</code>
                            )}
                          </td>
                          <td>{item.desired || <span className="muted">—</span>}</td>
                          <td>
                            <span className={`badge result-${item.status}`}>{item.status}</span>
                            {item.reason && <div className="fail-text">{item.reason}</div>}
                          </td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              )}
            </>
          );
        })()}
    </article>
  );
}
