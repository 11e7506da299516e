import { type FormEvent, useMemo, useState } from 'react';
import type { DataSchema, Device, Invocation, ThingModelDocument } from '../../api/types';
import { SchemaFields } from '../../components/SchemaForm';
import { Empty, ErrorState } from '../../components/states';
import { buildInput, fieldsOf, initialValues } from '../../lib/schemaForm';
import { useApi, usePermission } from '../../lib/session';
import { useMutation } from '../../lib/useApi';

const WAIT = '5s';
const POLL_MS = 1_000;
const POLL_FOR_MS = 30_000;
const FINISHED = new Set(['succeeded', 'failed', 'expired']);

/** One form per model action, its fields generated from the action's input schema. */
export function Actions({ device, model }: { device: Device; model: ThingModelDocument }) {
  const actions = Object.entries(model.actions ?? {});
  return (
    <section className="card" aria-labelledby="actions-title">
      <h2 id="actions-title">Actions</h2>
      {actions.length === 0 ? (
        <Empty>
          <p>This model defines no actions.</p>
        </Empty>
      ) : (
        actions.map(([name, action]) => (
          <ActionForm key={name} device={device} name={name} title={action.title} description={action.description} input={action.input} />
        ))
      )}
    </section>
  );
}

function ActionForm({
  device,
  name,
  title,
  description,
  input,
}: {
  device: Device;
  name: string;
  title?: string;
  description?: string;
  input?: DataSchema;
}) {
  const api = useApi();
  const fields = useMemo(() => fieldsOf(input), [input]);
  const [values, setValues] = useState(() => initialValues(fields));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const { busy, error, run } = useMutation();
  const [result, setResult] = useState<Invocation | undefined>();
  const denied = usePermission()('actions:invoke');
  const idPrefix = `action-${name}`;

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const built = buildInput(input, fields, values);
    if (!built.ok) {
      setErrors(built.errors);
      return;
    }
    setErrors({});
    setResult(undefined);
    await run(async () => {
      let invocation = await api.request<Invocation>(
        `/api/v1/devices/${encodeURIComponent(device.id)}/actions/${encodeURIComponent(name)}?wait=${WAIT}`,
        { method: 'POST', body: built.value === undefined ? {} : { input: built.value } },
      );
      setResult(invocation);
      // Not answered within the wait: follow it for a while so the outcome still shows up.
      const until = Date.now() + POLL_FOR_MS;
      while (!FINISHED.has(invocation.status) && Date.now() < until) {
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
        invocation = await api.get<Invocation>(`/api/v1/invocations/${encodeURIComponent(invocation.id)}`);
        setResult(invocation);
      }
    });
  };

  return (
    <form className="action" onSubmit={submit} aria-labelledby={`${idPrefix}-title`} data-testid={idPrefix}>
      <h3 id={`${idPrefix}-title`}>{title ?? name}</h3>
      {description && <p className="muted">{description}</p>}
      <SchemaFields
        idPrefix={idPrefix}
        fields={fields}
        values={values}
        errors={errors}
        onChange={(field, value) => setValues((current) => ({ ...current, [field]: value }))}
      />
      <button type="submit" disabled={busy || !!denied} title={denied}>
        {busy ? `Running ${name}…` : `Run ${name}`}
      </button>
      <div aria-live="polite" data-testid={`${idPrefix}-result`}>
        {error !== undefined && <ErrorState error={error} />}
        {result && <InvocationResult invocation={result} />}
      </div>
    </form>
  );
}

function InvocationResult({ invocation }: { invocation: Invocation }) {
  const explain: Record<Invocation['status'], string> = {
    queued: 'Queued: the device is not listening right now; it gets the request when it connects.',
    delivered: 'Delivered: waiting for the device to answer…',
    succeeded: 'Succeeded.',
    failed: 'The device answered with an error.',
    expired: 'Expired: the device did not answer in time.',
  };
  return (
    <div className={`result ${invocation.status}`}>
      <p>
        <span className={`badge ${invocation.status}`}>{invocation.status}</span> {explain[invocation.status]}
      </p>
      {invocation.note && <p className="muted">{invocation.note}</p>}
      {invocation.error && <p className="field-error">{invocation.error}</p>}
      {invocation.output !== undefined && (
        <pre data-testid="action-output" title="Output">
          {JSON.stringify(invocation.output, null, 2)}
        </pre>
      )}
    </div>
  );
}
