export function formatTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  return new Date(ms).toLocaleString();
}

export function formatAgo(ms: number | null | undefined, now = Date.now()): string {
  if (ms === null || ms === undefined) return 'never';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/**
 * Thing models carry units as codes (UCUM and the WoT/QUDT names: `Cel`, `percent`, `m3/h`);
 * people read them as written on a gauge. Codes not listed are shown as they are.
 */
const UNIT_LABELS: Record<string, string> = {
  Cel: '°C',
  degC: '°C',
  celsius: '°C',
  '[degF]': '°F',
  degF: '°F',
  K: 'K',
  percent: '%',
  '%': '%',
  'm3/h': 'm³/h',
  'm3/s': 'm³/s',
  m3: 'm³',
  'm/s2': 'm/s²',
  'mm/s': 'mm/s',
  'l/min': 'L/min',
  'L/min': 'L/min',
  'kW.h': 'kWh',
  kWh: 'kWh',
  lx: 'lx',
  ohm: 'Ω',
  Ohm: 'Ω',
  'ug/m3': 'µg/m³',
  'mg/m3': 'mg/m³',
  '[ppm]': 'ppm',
  '[ppb]': 'ppb',
  deg: '°',
};

export function unitLabel(unit: string | undefined): string | undefined {
  if (unit === undefined || unit === '') return undefined;
  return UNIT_LABELS[unit] ?? unit;
}

export function formatValue(value: unknown, unit?: string): string {
  if (value === undefined) return '—';
  const label = unitLabel(unit);
  // A percent sign and a degree sign sit next to the number, as people write them.
  const joined = (text: string) => (label === undefined ? text : label === '%' || label === '°' ? `${text}${label}` : `${text} ${label}`);
  if (typeof value === 'number') {
    const text = Number.isInteger(value) ? String(value) : value.toFixed(Math.abs(value) >= 100 ? 1 : 2);
    return joined(text);
  }
  if (typeof value === 'string') return joined(value);
  return JSON.stringify(value);
}

export function formatSpan(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}
