import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { unitLabel } from '../lib/format';
import type { Series } from '../lib/series';

interface ChartProps {
  property: string;
  unit?: string;
  series: Series;
  /** Visible x range in seconds; live charts slide, fixed ranges stay put. */
  xRange: [number, number];
}

const HEIGHT = 160;

/** One uPlot line chart of one property; the points count is on the element for tests and screen readers. */
export function Chart({ property, unit, series, xRange }: ChartProps) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const range = useRef(xRange);
  range.current = xRange;
  const [x0, x1] = xRange;

  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const options: uPlot.Options = {
      width: Math.max(200, element.clientWidth),
      height: HEIGHT,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true, range: () => range.current } },
      axes: [
        { stroke: '#555', grid: { stroke: '#eee' } },
        { stroke: '#555', grid: { stroke: '#eee' }, size: 56 },
      ],
      series: [{}, { label: property, stroke: '#1f6feb', width: 1.5, fill: 'rgba(31,111,235,0.08)', spanGaps: false }],
    };
    const chart = new uPlot(options, [[], []], element);
    plot.current = chart;
    const observer = new ResizeObserver(() => chart.setSize({ width: Math.max(200, element.clientWidth), height: HEIGHT }));
    observer.observe(element);
    return () => {
      observer.disconnect();
      chart.destroy();
      plot.current = null;
    };
  }, [property]);

  useEffect(() => {
    const chart = plot.current;
    if (!chart) return;
    chart.setData([series.xs, series.ys as number[]]);
    chart.setScale('x', { min: x0, max: x1 });
  }, [series, x0, x1]);

  const points = series.xs.length;
  return (
    <figure className="chart" data-testid={`chart-${property}`} data-points={points}>
      <figcaption>
        {property}
        {unit ? <span className="unit"> ({unitLabel(unit)})</span> : null}
        <span className="points"> · {points} points</span>
      </figcaption>
      <div ref={host} className="chart-canvas" role="img" aria-label={`${property} over time, ${points} points`} />
      {points === 0 && <p className="chart-empty">No numeric values in this range yet.</p>}
    </figure>
  );
}
