import type { DeviceErrorReport } from '../api/types';

export interface ErrorRow {
  key: string;
  ts: number;
  source: string;
  reason: string;
  property: string;
  message: string;
  /** The refused value as sent, when the server kept it. */
  value: string;
}

const MAX_VALUE = 80;

/** The sent value as text, cut to a readable length ('' when the server did not keep it). */
export function shorten(value: unknown): string {
  if (value === undefined) return '';
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  return text.length > MAX_VALUE ? `${text.slice(0, MAX_VALUE - 1)}…` : text;
}

/** One row per refusal, newest report first, refusals of one report in the order the server gave. */
export function errorRows(reports: DeviceErrorReport[]): ErrorRow[] {
  return [...reports]
    .map((report, index) => ({ report, index }))
    .sort((a, b) => b.report.ts - a.report.ts || a.index - b.index)
    .flatMap(({ report, index }) =>
      report.rejections.map((rejection, position) => ({
        key: `${report.ts}-${index}-${position}`,
        ts: report.ts,
        source: report.source,
        reason: rejection.reason,
        property: rejection.property ?? '',
        message: rejection.message,
        value: shorten(rejection.value),
      })),
    );
}

export const errorsPath = (deviceId: string) => `/api/v1/devices/${encodeURIComponent(deviceId)}/errors`;
