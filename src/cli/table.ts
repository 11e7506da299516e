/**
 * Output of the daily-work commands: aligned tables and "key: value" blocks for people, JSON for
 * scripts. Cells are cut at a width so one long message cannot push every column off the screen.
 */

export type Cell = string | number | boolean | null | undefined;

const MAX_CELL = 60;

function isControl(char: string): boolean {
  const code = char.codePointAt(0) ?? 0;
  return code < 0x20 || (code >= 0x7f && code <= 0x9f);
}

function text(cell: Cell, max = MAX_CELL): string {
  if (cell === null || cell === undefined || cell === '') return '-';
  // Control characters from stored text (a device's name) must not move the cursor or clear the screen.
  const shown = [...String(cell)].map((char) => (isControl(char) ? ' ' : char)).join('');
  return shown.length > max ? `${shown.slice(0, max - 1)}…` : shown;
}

/** Columns padded to their widest cell; an empty list prints `empty` instead. */
export function formatTable(headers: string[], rows: Cell[][], empty = '(none)'): string {
  if (rows.length === 0) return `${empty}\n`;
  const cells = rows.map((row) => headers.map((_, index) => text(row[index])));
  const widths = headers.map((header, index) => Math.max(header.length, ...cells.map((row) => (row[index] ?? '').length)));
  const line = (row: string[]) =>
    row
      .map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index] ?? 0)))
      .join('  ')
      .trimEnd();
  return `${[line(headers.map((header) => header.toUpperCase())), ...cells.map(line)].join('\n')}\n`;
}

/** One record as aligned "label: value" lines; values are cut only far beyond a table's width. */
export function formatFields(fields: [string, Cell][]): string {
  const width = Math.max(...fields.map(([label]) => label.length));
  return `${fields.map(([label, value]) => `${`${label}:`.padEnd(width + 1)} ${text(value, 400)}`).join('\n')}\n`;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Epoch ms as a UTC time people read (ISO without milliseconds). */
export function time(ms: unknown): string | undefined {
  return typeof ms === 'number' && Number.isFinite(ms) ? new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z') : undefined;
}

/** A duration in ms as 3d 4h, 5m 10s, 800 ms. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}
