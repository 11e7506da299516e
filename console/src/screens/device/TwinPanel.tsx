import { type FormEvent, useMemo, useState } from 'react';
import { ApiError } from '../../api/client';
import type { Device, ThingModelDocument, Twin } from '../../api/types';
import { FieldControl } from '../../components/SchemaForm';
import { ErrorState, Loading } from '../../components/states';
import { Table } from '../../components/Table';
import { formatValue } from '../../lib/format';
import { type Field, fieldsOf, parseField, writableProperties } from '../../lib/schemaForm';
import { useApi, usePermission } from '../../lib/session';
import { usePolled } from '../../lib/useApi';

const REFRESH_MS = 5_000;

type Outcome =
  | { kind: 'saved'; version: number }
  | { kind: 'conflict'; mine: number; current?: number }
  | { kind: 'error'; error: unknown };

/** Reported, desired and delta side by side; desired values of writable properties can be edited with optimistic concurrency. */
export function TwinPanel({ device, model }: { device: Device; model: ThingModelDocument }) {
  const api = useApi();
  const denied = usePermission()('twins:write');
  const base = `/api/v1/devices/${encodeURIComponent(device.id)}/twin`;
  const { state, reload, set } = usePolled((signal) => api.get<Twin>(base, signal), [base], REFRESH_MS);
  const [edits, setEdits] = useState<Record<string, string | boolean>>({});
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<Outcome | undefined>();

  const writable = useMemo(() => writableProperties(model.properties), [model]);
  const fields = useMemo(
    () => writable.map(([name, schema]) => ({ ...(fieldsOf(schema)[0] as Field), name, label: schema.title ?? name })),
    [writable],
  );
  const keys = useMemo(() => {
    if (state.status !== 'ready') return Object.keys(model.properties ?? {});
    const { reported, desired } = state.data;
    return [...new Set([...Object.keys(model.properties ?? {}), ...Object.keys(reported), ...Object.keys(desired)])];
  }, [state, model]);

  if (state.status === 'loading') return <Loading what="twin" />;
  if (state.status === 'error') return <ErrorState error={state.error} retry={reload} />;
  const twin = state.data;

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const desired: Record<string, unknown> = {};
    const problems: Record<string, string> = {};
    for (const field of fields) {
      const value = edits[field.name];
      if (value === undefined) continue;
      if (field.kind === 'boolean') {
        desired[field.name] = value === true;
        continue;
      }
      const text = String(value).trim();
      if (text === '') {
        desired[field.name] = null;
        continue;
      }
      const parsed = parseField(field, text);
      if ('error' in parsed) problems[field.name] = parsed.error;
      else desired[field.name] = parsed.value;
    }
    setErrors(problems);
    if (Object.keys(problems).length > 0 || Object.keys(desired).length === 0) return;
    setBusy(true);
    setOutcome(undefined);
    try {
      const next = await api.request<Twin>(base, { method: 'PATCH', body: { desired }, headers: { 'if-match': `"${twin.version}"` } });
      set(next);
      setEdits({});
      setOutcome({ kind: 'saved', version: next.version });
    } catch (caught) {
      if (caught instanceof ApiError && caught.kind === 'conflict') {
        const details = caught.details as { currentVersion?: number } | undefined;
        setOutcome({ kind: 'conflict', mine: twin.version, current: details?.currentVersion });
        reload();
      } else {
        setOutcome({ kind: 'error', error: caught });
      }
    } finally {
      setBusy(false);
    }
  };

  const editValue = (field: Field): string | boolean => {
    const edited = edits[field.name];
    if (edited !== undefined) return edited;
    const current = twin.desired[field.name];
    if (field.kind === 'boolean') return current === true;
    return current === undefined || current === null ? '' : String(current);
  };

  return (
    <section className="card" aria-labelledby="twin-title">
      <div className="card-head">
        <h2 id="twin-title">Twin</h2>
        <span className="muted" data-testid="twin-version">
          desired version {twin.version} · reported version {twin.reportedVersion}
        </span>
      </div>
      <Table className="twin" testId="twin" columns={['Property', 'Reported', 'Desired', 'Delta']}>
        {keys.map((key) => {
          const unit = model.properties?.[key]?.unit;
          return (
            <tr key={key} data-testid={`twin-${key}`}>
              <th scope="row">{key}</th>
              <td data-testid={`twin-reported-${key}`}>{formatValue(twin.reported[key], unit)}</td>
              <td data-testid={`twin-desired-${key}`}>{formatValue(twin.desired[key], unit)}</td>
              <td data-testid={`twin-delta-${key}`}>{key in twin.delta ? formatValue(twin.delta[key], unit) : ''}</td>
            </tr>
          );
        })}
      </Table>
      {twin.pendingDelivery.length > 0 && (
        <p className="muted">
          Waiting for the device to wake: {twin.pendingDelivery.map((p) => `v${p.version} (${p.keys.join(', ')})`).join('; ')}
        </p>
      )}
      {fields.length === 0 ? (
        <p className="muted">Every property of this model is read-only: there is no desired state to set.</p>
      ) : (
        <form onSubmit={submit} aria-labelledby="desired-title" className="desired-form">
          <h3 id="desired-title">Set desired state</h3>
          {fields.map((field) => (
            <FieldControl
              key={field.name}
              idPrefix="desired"
              field={{ ...field, required: false }}
              value={editValue(field)}
              error={errors[field.name]}
              onChange={(value) => setEdits((current) => ({ ...current, [field.name]: value }))}
            />
          ))}
          <p className="hint">Empty a field to remove its desired value. Saving sends If-Match: "{twin.version}".</p>
          <div className="buttons">
            <button type="submit" disabled={busy || !!denied || Object.keys(edits).length === 0} title={denied}>
              {busy ? 'Saving…' : 'Save desired state'}
            </button>
            {Object.keys(edits).length > 0 && (
              <button type="button" className="secondary" onClick={() => setEdits({})}>
                Discard edits
              </button>
            )}
          </div>
          <div aria-live="polite">
            {outcome?.kind === 'saved' && (
              <p className="ok" data-testid="desired-saved">
                Saved: desired state is now version {outcome.version}. The device applies it and reports back.
              </p>
            )}
            {outcome?.kind === 'conflict' && (
              <div className="state error" role="alert" data-testid="desired-conflict">
                <p>
                  <strong>Not saved: someone else changed the desired state first.</strong> You edited version {outcome.mine}
                  {outcome.current !== undefined ? `; it is now version ${outcome.current}` : ''}. The twin above now shows the current
                  values and your edits are kept: check them and save again.
                </p>
              </div>
            )}
            {outcome?.kind === 'error' && <ErrorState error={outcome.error} />}
          </div>
        </form>
      )}
    </section>
  );
}
