import { describe, expect, it } from 'vitest';
import { formatValue, unitLabel } from './format';

describe('units as people write them', () => {
  it('turns model unit codes into the symbols on a gauge', () => {
    expect(unitLabel('Cel')).toBe('°C');
    expect(unitLabel('percent')).toBe('%');
    expect(unitLabel('m3/h')).toBe('m³/h');
    expect(unitLabel('mm/s')).toBe('mm/s');
    expect(unitLabel('bar')).toBe('bar');
    expect(unitLabel(undefined)).toBeUndefined();
  });

  it('puts the symbol after the value: a space before °C, none before %', () => {
    expect(formatValue(88.9, 'Cel')).toBe('88.90 °C');
    expect(formatValue(42, 'percent')).toBe('42%');
    expect(formatValue(12, 'm3/h')).toBe('12 m³/h');
    expect(formatValue(3, undefined)).toBe('3');
    expect(formatValue(undefined, 'Cel')).toBe('—');
  });
});
