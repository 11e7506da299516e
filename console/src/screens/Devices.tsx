import { useEffect, useRef, useState } from 'react';
import type { DevicePage, ModelSummary, Presence } from '../api/types';
import { FilterSelect } from '../components/FilterSelect';
import { Loaded } from '../components/states';
import { Table } from '../components/Table';
import {
  BINDING_PROTOCOLS,
  type DeviceFilters,
  describeFilters,
  devicesPath,
  filtersFromQuery,
  filtersToQuery,
  isFiltered,
  joinWords,
  NETWORK_PROFILES,
  NO_FILTERS,
  PRESENCE_STATUSES,
  protocolLabel,
  without,
} from '../lib/deviceFilters';
import { formatAgo } from '../lib/format';
import { href, navigate } from '../lib/router';
import { mapLimit, matchesPrefix } from '../lib/search';
import { useApi } from '../lib/session';
import { useLoad } from '../lib/useApi';

const PAGE_SIZE = 50;

const LOOSEN: Record<string, string> = {
  q: 'clear the id search',
  model: 'any model',
  edge: 'any edge',
  network: 'any network',
  protocol: 'any protocol',
  status: 'any status',
};

/**
 * The device list: one page at a time from the API (never the whole fleet), filtered by model, edge,
 * network profile, binding protocol and presence status (on the server) and by id prefix, paging forward with the
 * API's `next` cursor. Filters and cursor live in the URL.
 */
export function Devices({ query }: { query: URLSearchParams }) {
  const api = useApi();
  const { after, ...filters } = filtersFromQuery(query);
  const { model, edge, network, protocol, status, q: prefix } = filters;
  const [search, setSearch] = useState(prefix);
  const history = useRef<string[]>([]);

  const models = useLoad((signal) => api.get<{ items: ModelSummary[] }>('/api/v1/models', signal), []);
  const edges = useLoad((signal) => api.get<{ items: { id: string; name: string }[] }>('/api/v1/edges', signal), []);
  const edgeList = edges.state.status === 'ready' ? edges.state.data.items : [];
  const edgeName = (id: string) => edgeList.find((e) => e.id === id)?.name;
  const page = useLoad(
    async (signal) => {
      const result = await api.get<DevicePage>(devicesPath(filters, after, PAGE_SIZE), signal);
      const items = result.items.filter((device) => matchesPrefix(device.id, prefix));
      const ended = items.length < result.items.length;
      return { items, next: ended ? null : result.next, total: result.total };
    },
    [model, edge, network, protocol, status, prefix, after],
  );

  /** Any change of filter starts again from the first page. */
  const apply = (next: DeviceFilters, replace = false) => {
    history.current = [];
    navigate(href.devices(filtersToQuery(next)), replace);
  };

  const filtersRef = useRef(filters);
  filtersRef.current = filters;

  // The box follows the URL (links that clear filters, back and forward).
  useEffect(() => setSearch(prefix), [prefix]);

  // Debounced search: the URL (and so the query) follows typing after a pause.
  useEffect(() => {
    if (search === prefix) return;
    const timer = setTimeout(() => {
      history.current = [];
      navigate(href.devices(filtersToQuery({ ...filtersRef.current, q: search.trim() })), true);
    }, 300);
    return () => clearTimeout(timer);
  }, [search, prefix]);

  const items = page.state.status === 'ready' ? page.state.data.items : [];
  const [presence, setPresence] = useState<Record<string, Presence>>({});
  useEffect(() => {
    if (items.length === 0) return;
    const controller = new AbortController();
    mapLimit(items, 6, (device) =>
      api
        .get<Presence>(`/api/v1/devices/${encodeURIComponent(device.id)}/presence`, controller.signal)
        .then((p) => setPresence((current) => ({ ...current, [device.id]: p })))
        .catch(() => undefined),
    );
    return () => controller.abort();
  }, [api, items]);

  const goNext = (next: string) => {
    history.current.push(after);
    navigate(href.devices(filtersToQuery(filters, next)));
  };
  const goPrevious = () => {
    const previous = history.current.pop();
    navigate(href.devices(filtersToQuery(filters, previous)));
  };
  const filtered = isFiltered(filters);
  const described = describeFilters(filters, edgeName);

  return (
    <section aria-labelledby="devices-title">
      <h1 id="devices-title">Devices</h1>
      <form className="filters" onSubmit={(event) => event.preventDefault()}>
        <div className="field">
          <label htmlFor="device-search">Search by id</label>
          <input
            id="device-search"
            type="search"
            placeholder="e.g. pump-00"
            value={search}
            onChange={(event) => setSearch(event.target.value)}
            aria-describedby="device-search-hint"
          />
          <small id="device-search-hint">Matches ids starting with the text.</small>
        </div>
        <FilterSelect
          id="model-filter"
          label="Model"
          all="All models"
          options={
            models.state.status === 'ready' ? models.state.data.items.map((m) => ({ value: m.id, label: `${m.title} (${m.id})` })) : []
          }
          value={model}
          onChange={(value) => apply({ ...filters, model: value })}
        />
        <FilterSelect
          id="edge-filter"
          label="Edge"
          all="All edges"
          options={[
            // An edge in the URL that is not (or no longer) registered stays selectable.
            ...(edge && !edgeList.some((e) => e.id === edge) ? [edge] : []),
            ...edgeList.map((e) => ({ value: e.id, label: e.name && e.name !== e.id ? `${e.name} (${e.id})` : e.id })),
          ]}
          value={edge}
          onChange={(value) => apply({ ...filters, edge: value })}
        />
        <FilterSelect
          id="network-filter"
          label="Network profile"
          all="Any network"
          options={NETWORK_PROFILES}
          value={network}
          onChange={(value) => apply({ ...filters, network: value })}
        />
        <FilterSelect
          id="protocol-filter"
          label="Protocol"
          all="Any protocol"
          options={BINDING_PROTOCOLS}
          value={protocol}
          onChange={(value) => apply({ ...filters, protocol: value })}
        />
        <FilterSelect
          id="status-filter"
          label="Status"
          all="Any status"
          options={PRESENCE_STATUSES}
          value={status}
          onChange={(value) => apply({ ...filters, status: value })}
        />
      </form>

      <Loaded
        state={page.state}
        what="devices"
        retry={page.reload}
        isEmpty={(data) => data.items.length === 0}
        empty={
          filtered ? (
            <div data-testid="devices-empty-filtered">
              <p>No device matches {joinWords(described.map((d) => d.text))}.</p>
              <p>
                Loosen {described.length === 1 ? 'the filter' : 'a filter'}:{' '}
                {described.map((d, index) => (
                  <span key={d.key}>
                    {index > 0 ? ', ' : ''}
                    <a href={href.devices(filtersToQuery(without(filters, d.key)))}>{LOOSEN[d.key]}</a>
                  </span>
                ))}
                {described.length > 1 && (
                  <>
                    {' '}
                    or <a href={href.devices(filtersToQuery(NO_FILTERS))}>clear all filters</a>
                  </>
                )}
                .
              </p>
            </div>
          ) : after ? (
            <p>
              No more devices. <a href={href.devices()}>Back to the first page</a>.
            </p>
          ) : (
            <p>
              No devices are registered yet. Register one with <code>POST /api/v1/devices</code>, or run <code>thingloop sim</code>.
            </p>
          )
        }
      >
        {(data) => (
          <>
            <p className="muted" aria-live="polite">
              {prefix
                ? `${data.items.length} shown${data.next ? ' (more on the next page)' : ''}`
                : `${data.total} device${data.total === 1 ? '' : 's'}${
                    described.length ? ` with ${joinWords(described.map((d) => d.text))}` : ''
                  }`}
            </p>
            <Table className="devices" columns={['Id', 'Name', 'Model', 'Protocol', 'Network', 'Presence', 'Last seen']}>
              {data.items.map((device) => {
                const p = presence[device.id];
                return (
                  <tr key={device.id}>
                    <td>
                      <a href={href.device(device.id)}>{device.id}</a>
                    </td>
                    <td>{device.name}</td>
                    <td>
                      {device.model} <span className="muted">v{device.modelVersion}</span>
                    </td>
                    <td>{protocolLabel(device.binding.protocol)}</td>
                    <td>{p ? (p.network.profile ?? '—') : ''}</td>
                    <td>{p ? <span className={`badge ${p.status}`}>{p.status}</span> : <span className="muted">…</span>}</td>
                    <td>{p ? formatAgo(p.lastSeen) : ''}</td>
                  </tr>
                );
              })}
            </Table>
          </>
        )}
      </Loaded>
      <nav className="pager" aria-label="Pages">
        {after && (
          <button type="button" onClick={goPrevious}>
            {history.current.length > 0 ? 'Previous page' : 'First page'}
          </button>
        )}
        {page.state.status === 'ready' && page.state.data.next && (
          <button type="button" onClick={() => goNext(page.state.status === 'ready' ? (page.state.data.next ?? '') : '')}>
            Next page
          </button>
        )}
      </nav>
    </section>
  );
}
