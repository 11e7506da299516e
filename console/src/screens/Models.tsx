import { useState } from 'react';
import type { ModelSummary, ModelVersion } from '../api/types';
import { Empty, ErrorState, Loaded, Loading } from '../components/states';
import { Table } from '../components/Table';
import { formatTime } from '../lib/format';
import { href } from '../lib/router';
import { useApi } from '../lib/session';
import { useLoad } from '../lib/useApi';

export function Models() {
  const api = useApi();
  const { state, reload } = useLoad((signal) => api.get<{ items: ModelSummary[] }>('/api/v1/models', signal), []);
  return (
    <section aria-labelledby="models-title">
      <h1 id="models-title">Thing models</h1>
      <Loaded
        state={state}
        what="models"
        retry={reload}
        isEmpty={(data) => data.items.length === 0}
        empty={
          <p>
            No thing models yet. Store one with <code>PUT /api/v1/models/&lt;id&gt;</code> (a W3C WoT Thing Model JSON document).
          </p>
        }
      >
        {(data) => (
          <Table columns={['Model', 'Title', { label: 'Latest version', num: true }, 'Updated', 'Devices']}>
            {data.items.map((model) => (
              <tr key={model.id}>
                <td>
                  <a href={href.model(model.id)}>{model.id}</a>
                </td>
                <td>{model.title}</td>
                <td className="num">{model.latestVersion}</td>
                <td>{formatTime(model.updatedAt)}</td>
                <td>
                  <a href={href.devices({ model: model.id })} aria-label={`Devices of model ${model.id}`}>
                    List
                  </a>
                </td>
              </tr>
            ))}
          </Table>
        )}
      </Loaded>
    </section>
  );
}

export function ModelDetail({ id }: { id: string }) {
  const api = useApi();
  const [version, setVersion] = useState<number | undefined>();
  const versions = useLoad(
    (signal) => api.get<{ items: ModelVersion[] }>(`/api/v1/models/${encodeURIComponent(id)}/versions`, signal),
    [id],
  );
  if (versions.state.status === 'loading') return <Loading what={`model ${id}`} />;
  if (versions.state.status === 'error') return <ErrorState error={versions.state.error} retry={versions.reload} />;
  const items = versions.state.data.items;
  const shown = items.find((v) => v.version === version) ?? items.at(-1);
  if (!shown) return <Empty>This model has no versions.</Empty>;
  const doc = shown.document;
  return (
    <section aria-labelledby="model-title">
      <p className="crumbs">
        <a href={href.models()}>Models</a> / {id}
      </p>
      <h1 id="model-title">{doc.title ?? id}</h1>
      {doc.description && <p>{doc.description}</p>}
      <div className="field inline">
        <label htmlFor="model-version">Version</label>
        <select id="model-version" value={shown.version} onChange={(event) => setVersion(Number(event.target.value))}>
          {items.map((v) => (
            <option key={v.version} value={v.version}>
              v{v.version} ({formatTime(v.createdAt)})
            </option>
          ))}
        </select>
        <a href={href.devices({ model: id })}>Devices of this model</a>
      </div>
      <section className="card" aria-labelledby="model-properties">
        <h2 id="model-properties">Properties</h2>
        <Table columns={['Name', 'Type', 'Unit', 'Range / values', 'Access', 'Description']}>
          {Object.entries(doc.properties ?? {}).map(([name, p]) => (
            <tr key={name}>
              <th scope="row">{name}</th>
              <td>{p.type ?? '—'}</td>
              <td>{p.unit ?? ''}</td>
              <td>
                {Array.isArray(p.enum)
                  ? p.enum.join(', ')
                  : p.minimum !== undefined || p.maximum !== undefined
                    ? `${p.minimum ?? '…'} – ${p.maximum ?? '…'}`
                    : ''}
              </td>
              <td>{p.readOnly ? 'read-only' : 'writable'}</td>
              <td>{p.description ?? ''}</td>
            </tr>
          ))}
        </Table>
      </section>
      {Object.keys(doc.actions ?? {}).length > 0 && (
        <section className="card" aria-labelledby="model-actions">
          <h2 id="model-actions">Actions</h2>
          <dl className="facts">
            {Object.entries(doc.actions ?? {}).map(([name, action]) => (
              <div key={name}>
                <dt>{name}</dt>
                <dd>
                  {action.description ?? ''}
                  {action.input && <pre>input: {JSON.stringify(action.input, null, 2)}</pre>}
                  {action.output && <pre>output: {JSON.stringify(action.output, null, 2)}</pre>}
                </dd>
              </div>
            ))}
          </dl>
        </section>
      )}
      <details className="card">
        <summary>Thing Model document (JSON)</summary>
        <pre>{JSON.stringify(doc, null, 2)}</pre>
      </details>
    </section>
  );
}
