/** An option of a FilterSelect: a plain value, or a value with its own label. */
export type FilterOption = string | { value: string; label: string };

/** A labelled select that narrows a list; its first option (value "") is `all`, no filter. */
export function FilterSelect({
  id,
  label,
  all,
  options,
  value,
  onChange,
  inline = false,
}: {
  id: string;
  label: string;
  all: string;
  options: readonly FilterOption[];
  value: string;
  onChange: (value: string) => void;
  inline?: boolean;
}) {
  return (
    <div className={inline ? 'field inline' : 'field'}>
      <label htmlFor={id}>{label}</label>
      <select id={id} value={value} onChange={(event) => onChange(event.target.value)}>
        <option value="">{all}</option>
        {options.map((option) => {
          const { value: optionValue, label: optionLabel } = typeof option === 'string' ? { value: option, label: option } : option;
          return (
            <option key={optionValue} value={optionValue}>
              {optionLabel}
            </option>
          );
        })}
      </select>
    </div>
  );
}
