import type { ReactNode } from 'react';

/** A column heading; `num` right-aligns it like the numbers below it. */
export type Column = string | { label: string; num?: boolean };

/**
 * A data table that scrolls sideways inside its wrapper on narrow screens: column headings, an
 * optional caption for screen readers, and `children` as the body rows.
 */
export function Table({
  columns,
  caption,
  className,
  testId,
  children,
}: {
  columns: Column[];
  caption?: string;
  className?: string;
  testId?: string;
  children: ReactNode;
}) {
  return (
    <div className="table-wrap">
      <table className={className} data-testid={testId}>
        {caption && <caption className="sr-only">{caption}</caption>}
        <thead>
          <tr>
            {columns.map((column) => {
              const { label, num } = typeof column === 'string' ? { label: column, num: false } : column;
              return (
                <th key={label} scope="col" className={num ? 'num' : undefined}>
                  {label}
                </th>
              );
            })}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}
