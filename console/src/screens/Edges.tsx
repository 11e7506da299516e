import { useState } from 'react';
import { ApiError } from '../api/client';
import type { EdgeConfigView, EdgeGaps, EdgeStatus } from '../api/types';
import { Confirm } from '../components/Confirm';
import { Empty, ErrorState, Loaded, Loading } from '../components/states';
import { Table } from '../components/Table';
import {
  attachedDevices,
  backlog,
  CONFIG_LABEL,
  capacity,
  configItems,
  configSummary,
  formatBytes,
  formatRate,
  GAP_POLICY,
  type Gauge,
  gapDevices,
  gapSummary,
  heartbeatStale,
  LINK_LABEL,
  linkState,
} from '../lib/edges';
import { formatAgo, formatTime } from '../lib/format';
import { href, navigate } from '../lib/router';
import { useApi, usePermission } from '../lib/session';
import { type Loadable, useLoad, useMutation, usePolled } from '../lib/useApi';

/** The link state shows within one refresh of an edge connecting or dropping. */
export const EDGE_REFRESH_MS = 5_000;

/** GET /api/v1/edges, refreshed every few seconds (the last answer stays shown while reloading). */
export function useEdgeList() {
  const api = useApi();
  return usePolled(async (signal) => (await api.get<{ items: EdgeStatus[] }>('/api/v1/edges', signal)).items, [], EDGE_REFRESH_MS);
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
      <Loaded
        state={state}
        what="edges"
        retry={reload}
        empty={
          <>
            <p>No edges are registered. Every device talks to this cloud directly.</p>
            <p>
              Register one with <code>POST /api/v1/edges</code>, then start it with{' '}
              <code>thingloop serve --role edge --cloud-url … --edge-id … --edge-token …</code>.
            </p>
          </>
        }
      >
        {(edges) => (
          <>
            <p className="muted" aria-live="polite" data-testid="edge-counts">
              {countLinks(edges)}
            </p>
            <Table className="edges" columns={['Edge', 'Link', 'Backlog', 'Drain rate', 'Gaps', 'Capacity', 'Configuration']}>
              {[...edges]
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
            </Table>
          </>
        )}
      </Loaded>
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
  const status = usePolled((signal) => api.get<EdgeStatus>(`/api/v1/edges/${encodeURIComponent(id)}`, signal), [id], EDGE_REFRESH_MS);
  const reloadStatus = status.reload;
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
            <Decommission edge={edge} />
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
          <GapsCard edge={edge} />
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
      <Loaded state={state} what="configuration" retry={retry}>
        {(view) => {
          const items = configItems(view);
          const devices = view.desired.devices.length;
          return (
            <>
              <p className="muted">
                Serves {devices} device{devices === 1 ? '' : 's'}, {view.desired.models.length} model version
                {view.desired.models.length === 1 ? '' : 's'} and {view.desired.agents.length} agent
                {view.desired.agents.length === 1 ? '' : 's'}.
              </p>
              {items.length === 0 ? (
                <Empty>
                  <p>Nothing is configured for this edge yet. Register devices with an "edge" of {edge.id} to serve them here.</p>
                </Empty>
              ) : (
                <Table
                  className="config-items"
                  testId="edge-config-items"
                  caption="Desired configuration items and the edge's result for each"
                  columns={['Kind', 'Item', 'Desired', 'Result']}
                >
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
                </Table>
              )}
            </>
          );
        }}
      </Loaded>
    </article>
  );
}

/** How many gap reports the detail lists; the totals above count all of them. */
const GAP_REPORTS = 50;

/** What the edge lost to its full outbox: the totals, then every report with the samples and time range lost per device. */
function GapsCard({ edge }: { edge: EdgeStatus }) {
  const api = useApi();
  // Reloaded when a new report arrives, not on every status tick.
  const { state, reload } = useLoad(
    async (signal) => (await api.get<EdgeGaps>(`/api/v1/edges/${encodeURIComponent(edge.id)}/gaps?limit=${GAP_REPORTS}`, signal)).items,
    [edge.id, edge.gaps.reports],
  );
  return (
    <article className="card" aria-labelledby="edge-gaps-title" data-testid="edge-gap-reports">
      <h2 id="edge-gaps-title">Gaps</h2>
      {edge.gaps.reports > 0 && (
        <p className="fail-text" data-testid="edge-gaps">
          {edge.gaps.dropped} sample{edge.gaps.dropped === 1 ? '' : 's'} dropped in {edge.gaps.reports} gap report
          {edge.gaps.reports === 1 ? '' : 's'} (the outbox was full). The cloud will never have them.
        </p>
      )}
      <Loaded state={state} what="gap reports" retry={reload} empty={<p>No data lost: the outbox never overflowed.</p>}>
        {(reports) => (
          <>
            {edge.gaps.reports > reports.length && <p className="muted">The last {reports.length} reports, newest first.</p>}
            <ol className="gap-reports">
              {reports.map((report) => (
                <li
                  key={`${report.at}:${report.policy}:${report.total}:${Object.keys(report.devices).join(',')}`}
                  className="gap-report"
                  data-testid="edge-gap-report"
                >
                  <h3 className="gap-report-title">
                    <time dateTime={new Date(report.at).toISOString()}>{formatTime(report.at)}</time>{' '}
                    <span className="muted">({formatAgo(report.at)})</span>
                  </h3>
                  <p>
                    Policy <code>{GAP_POLICY[report.policy]?.label ?? report.policy}</code>: {gapSummary(report)} removed
                    {GAP_POLICY[report.policy] ? ` (${GAP_POLICY[report.policy].effect})` : ''}.
                  </p>
                  <Table
                    caption={`Samples lost per device in the report of ${formatTime(report.at)}`}
                    columns={[
                      'Device',
                      { label: 'Samples lost', num: true },
                      ...(report.events ? [{ label: 'Events lost', num: true }] : []),
                      'Time range lost',
                    ]}
                  >
                    {gapDevices(report).map((row) => (
                      <tr key={row.deviceId}>
                        <td>
                          <a href={href.device(row.deviceId)}>{row.deviceId}</a>
                        </td>
                        <td className="num">{row.dropped}</td>
                        {report.events ? <td className="num">{row.events}</td> : null}
                        <td>{row.range}</td>
                      </tr>
                    ))}
                  </Table>
                </li>
              ))}
            </ol>
          </>
        )}
      </Loaded>
    </article>
  );
}

/**
 * Decommissioning: after a confirmation, DELETE the edge and return to the list. The cloud refuses
 * (409) while devices are attached; its sentence says what to do, with the devices it names.
 */
function Decommission({ edge }: { edge: EdgeStatus }) {
  const api = useApi();
  const [confirming, setConfirming] = useState(false);
  const { busy, error, run } = useMutation();
  const denied = usePermission()('edges:write');
  const decommission = async () => {
    const done = await run(() => api.request(`/api/v1/edges/${encodeURIComponent(edge.id)}`, { method: 'DELETE' }));
    setConfirming(false);
    if (done) navigate(href.edges());
  };
  const refused = error instanceof ApiError && error.kind === 'conflict' ? error : undefined;
  const attached = refused ? attachedDevices(refused.details) : [];
  return (
    <>
      <button type="button" className="danger" disabled={!!denied} title={denied} onClick={() => setConfirming(true)}>
        Decommission
      </button>
      {refused && (
        <div className="state error decommission-refused" role="alert" data-testid="decommission-refused">
          <p>
            <strong>{edge.id} was not decommissioned.</strong> {refused.serverMessage ?? refused.message}
          </p>
          {attached.length > 0 && (
            <p>
              Still attached:{' '}
              {attached.slice(0, 10).map((deviceId, index) => (
                <span key={deviceId}>
                  {index > 0 && ', '}
                  <a href={href.device(deviceId)}>{deviceId}</a>
                </span>
              ))}
              {attached.length > 10 && ` and ${attached.length - 10} more`}.{' '}
              <a href={href.devices({ edge: edge.id })}>List the devices behind this edge</a>
            </p>
          )}
        </div>
      )}
      {error !== undefined && !refused && <ErrorState error={error} />}
      {confirming && (
        <Confirm
          title={`Decommission ${edge.id}?`}
          confirmLabel="Decommission"
          danger
          busy={busy}
          onConfirm={decommission}
          onCancel={() => setConfirming(false)}
        >
          <p>
            The edge's token stops working and its link closes; its gap history is deleted. This cannot be undone: to bring the site back,
            register the edge again and give it the new token.
          </p>
          <p>The cloud refuses while devices are still attached to the edge.</p>
        </Confirm>
      )}
    </>
  );
}
