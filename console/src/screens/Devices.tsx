import { useEffect, useRef, useState } from 'react';
import type { DevicePage, ModelSummary, Presence } from '../api/types';
import { Empty, ErrorState, Loading } from '../components/states';
import { formatAgo } from '../lib/format';
import { href, navigate } from '../lib/router';
import { afterForPrefix, mapLimit, matchesPrefix } from '../lib/search';
import { useApi } from '../lib/session';
import { useLoad } from '../lib/useApi';

const PAGE_SIZE = 50;

/**
 * The device list: one page at a time from the API (never the whole fleet), filtered by model and
 * by id prefix, paging forward with the API's `next` cursor. Filters and cursor live in the URL.
 */
export function Devices({ query }: { query: URLSearchParams }) {
  const api = useApi();
  const model = query.get('model') ?? '';
  const prefix = query.get('q') ?? '';
  const after = query.get('after') ?? '';
  const [search, setSearch] = useState(prefix);
  const history = useRef<string[]>([]);

  const models = useLoad((signal) => api.get<{ items: ModelSummary[] }>('/api/v1/models', signal), []);
  const page = useLoad(
    async (signal) => {
      const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
      if (model) params.set('model', model);
      const start = after || afterForPrefix(prefix);
      if (start) params.set('after', start);
      const result = await api.get<DevicePage>(`/api/v1/devices?${params}`, signal);
      const items = result.items.filter((device) => matchesPrefix(device.id, prefix));
      const ended = items.length < result.items.length;
      return { items, next: ended ? null : result.next, total: result.total };
    },
    [model, prefix, after],
  );

  // The box follows the URL (links that clear filters, back and forward).
  useEffect(() => setSearch(prefix), [prefix]);

  // Debounced search: the URL (and so the query) follows typing after a pause.
  useEffect(() => {
    if (search === prefix) return;
    const timer = setTimeout(() => {
      history.current = [];
      navigate(href.devices({ model, q: search.trim() }), true);
    }, 300);
    return () => clearTimeout(timer);
  }, [search, prefix, model]);

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
    navigate(href.devices({ model, q: prefix, after: next }));
  };
  const goPrevious = () => {
    const previous = history.current.pop();
    navigate(href.devices({ model, q: prefix, after: previous }));
  };
  const filtered = Boolean(model || prefix);

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
        <div className="field">
          <label htmlFor="model-filter">Model</label>
          <select
            id="model-filter"
            value={model}
            onChange={(event) => {
              history.current = [];
              navigate(href.devices({ model: event.target.value, q: prefix }));
            }}
          >
            <option value="">All models</option>
            {models.state.status === 'ready' &&
              models.state.data.items.map((m) => (
                <option key={m.id} value={m.id}>
                  {m.title} ({m.id})
                </option>
              ))}
          </select>
        </div>
      </form>

      {page.state.status === 'loading' && <Loading what="devices" />}
      {page.state.status === 'error' && <ErrorState error={page.state.error} retry={page.reload} />}
      {page.state.status === 'ready' &&
        (items.length === 0 ? (
          <Empty>
            {filtered ? (
              <p>
                No device matches{prefix ? ` ids starting with “${prefix}”` : ''}
                {model ? ` of model ${model}` : ''}. <a href={href.devices()}>Clear the filters</a>.
              </p>
            ) : after ? (
              <p>
                No more devices. <a href={href.devices()}>Back to the first page</a>.
              </p>
            ) : (
              <p>
                No devices are registered yet. Register one with <code>POST /api/v1/devices</code>, or run <code>thingloop sim</code>.
              </p>
            )}
          </Empty>
        ) : (
          <>
            <p className="muted" aria-live="polite">
              {prefix
                ? `${items.length} shown${page.state.data.next ? ' (more on the next page)' : ''}`
                : `${page.state.data.total} device${page.state.data.total === 1 ? '' : 's'}${model ? ` of model ${model}` : ''}`}
            </p>
            <div className="table-wrap">
              <table className="devices">
                <thead>
                  <tr>
                    <th scope="col">Id</th>
                    <th scope="col">Name</th>
                    <th scope="col">Model</th>
                    <th scope="col">Presence</th>
                    <th scope="col">Last seen</th>
                  </tr>
                </thead>
                <tbody>
                  {items.map((device) => {
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
                        <td>{p ? <span className={`badge ${p.status}`}>{p.status}</span> : <span className="muted">…</span>}</td>
                        <td>{p ? formatAgo(p.lastSeen) : ''}</td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
          </>
        ))}
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
