import { describe, expect, it } from 'vitest';
import { counterValue, ratePerSecond } from './metrics';
import { afterForPrefix, mapLimit, matchesPrefix } from './search';

describe('id prefix search through `after`', () => {
  const ids = ['pump-0001', 'pump-0002', 'pump', 'pumq', 'pul-9', 'pum', 'tank-0001', 'a', 'pump-0001x'].sort();
  const page = (after: string | undefined) => ids.filter((id) => after === undefined || id > after);

  it.each(['pump', 'pump-000', 'p', 'pump-0001', 'tank-', 'z'])('lists exactly the ids starting with %s first', (prefix) => {
    const listed = page(afterForPrefix(prefix));
    const matching = ids.filter((id) => id.startsWith(prefix));
    expect(listed.slice(0, matching.length)).toEqual(matching);
    expect(listed.slice(matching.length).some((id) => matchesPrefix(id, prefix))).toBe(false);
  });

  it('no prefix means from the start', () => {
    expect(afterForPrefix('')).toBeUndefined();
    expect(matchesPrefix('x', '')).toBe(true);
  });

  it('mapLimit keeps order and the limit', async () => {
    let inFlight = 0;
    let peak = 0;
    const out = await mapLimit([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, 5 * (8 - n)));
      inFlight--;
      return n * 2;
    });
    expect(out).toEqual([2, 4, 6, 8, 10, 12, 14]);
    expect(peak).toBe(3);
  });
});

describe('metrics', () => {
  const text = [
    '# HELP thingloop_messages_accepted_total Messages accepted',
    '# TYPE thingloop_messages_accepted_total counter',
    'thingloop_messages_accepted_total{transport="mqtt"} 120',
    'thingloop_messages_accepted_total{transport="http"} 5',
    'thingloop_messages_accepted_total_other 99',
    'thingloop_values_stored_total 1000',
  ].join('\n');

  it('sums a counter over its labels', () => {
    expect(counterValue(text, 'thingloop_messages_accepted_total')).toBe(125);
    expect(counterValue(text, 'thingloop_values_stored_total')).toBe(1000);
    expect(counterValue(text, 'missing')).toBeUndefined();
  });

  it('computes a per-second rate, none before two samples or after a reset', () => {
    expect(ratePerSecond(undefined, { at: 1000, value: 5 })).toBeUndefined();
    expect(ratePerSecond({ at: 0, value: 100 }, { at: 5000, value: 150 })).toBe(10);
    expect(ratePerSecond({ at: 0, value: 100 }, { at: 5000, value: 10 })).toBeUndefined();
  });
});
