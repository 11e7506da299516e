import type { ReactNode } from 'react';
import { unitLabel } from '../lib/format';
import type { Field, FormValues } from '../lib/schemaForm';

interface FieldControlProps {
  idPrefix: string;
  field: Field;
  value: string | boolean | undefined;
  error?: string;
  onChange: (value: string | boolean) => void;
}

/** One labelled control for a schema field; hints (unit, range) and errors are tied to it for screen readers. */
export function FieldControl({ idPrefix, field, value, error, onChange }: FieldControlProps) {
  const id = `${idPrefix}-${field.name}`;
  const hintParts = [
    field.unit ? `in ${unitLabel(field.unit)}` : '',
    field.minimum !== undefined || field.maximum !== undefined ? `${field.minimum ?? '…'} to ${field.maximum ?? '…'}` : '',
    field.kind === 'json' ? 'JSON' : '',
    field.description ?? '',
  ].filter(Boolean);
  const describedBy = [hintParts.length ? `${id}-hint` : '', error ? `${id}-error` : ''].filter(Boolean).join(' ') || undefined;
  const common = { id, name: field.name, 'aria-describedby': describedBy, 'aria-invalid': error ? true : undefined };
  let control: ReactNode;
  if (field.kind === 'boolean') {
    control = <input {...common} type="checkbox" checked={value === true} onChange={(event) => onChange(event.target.checked)} />;
  } else if (field.kind === 'enum') {
    control = (
      <select {...common} value={typeof value === 'string' ? value : ''} onChange={(event) => onChange(event.target.value)}>
        <option value="">{field.required ? 'Choose…' : '(none)'}</option>
        {field.options?.map((option) => (
          <option key={option} value={option}>
            {option}
          </option>
        ))}
      </select>
    );
  } else if (field.kind === 'json') {
    control = (
      <textarea {...common} rows={3} value={typeof value === 'string' ? value : ''} onChange={(event) => onChange(event.target.value)} />
    );
  } else {
    control = (
      <input
        {...common}
        type={field.kind === 'string' ? 'text' : 'number'}
        inputMode={field.kind === 'string' ? undefined : 'decimal'}
        step={field.kind === 'integer' ? 1 : 'any'}
        min={field.minimum}
        max={field.maximum}
        required={field.required}
        value={typeof value === 'string' ? value : ''}
        onChange={(event) => onChange(event.target.value)}
      />
    );
  }
  return (
    <div className={`field ${field.kind === 'boolean' ? 'checkbox' : ''}`}>
      <label htmlFor={id}>
        {field.label}
        {field.required && field.kind !== 'boolean' ? <span aria-hidden="true"> *</span> : null}
      </label>
      {control}
      {hintParts.length > 0 && <small id={`${id}-hint`}>{hintParts.join(' · ')}</small>}
      {error && (
        <small id={`${id}-error`} className="field-error">
          {error}
        </small>
      )}
    </div>
  );
}

export function SchemaFields({
  idPrefix,
  fields,
  values,
  errors,
  onChange,
}: {
  idPrefix: string;
  fields: Field[];
  values: FormValues;
  errors: Record<string, string>;
  onChange: (name: string, value: string | boolean) => void;
}) {
  return (
    <>
      {fields.map((field) => (
        <FieldControl
          key={field.name}
          idPrefix={idPrefix}
          field={field}
          value={values[field.name]}
          error={errors[field.name]}
          onChange={(value) => onChange(field.name, value)}
        />
      ))}
    </>
  );
}
