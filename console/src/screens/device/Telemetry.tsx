import { useEffect, useMemo, useRef, useState } from 'react';
import { ApiError } from '../../api/client';
import type { Device, Latest, StreamMessage, TelemetryAggregate, TelemetryRaw, ThingModelDocument } from '../../api/types';
import { Chart } from '../../components/Chart';
import { Empty, ErrorState, Loading } from '../../components/states';
import { Table } from '../../components/Table';
import { formatAgo, formatValue } from '../../lib/format';
import { numericProperties } from '../../lib/schemaForm';
import { appendSample, fromAggregate, fromRaw, type SeriesMap } from '../../lib/series';
import { useApi } from '../../lib/session';
import { maxPoints, RANGES, type RangeId, rangeById, telemetryQuery } from '../../lib/timeRange';

type StreamState = 'connecting' | 'live' | 'reconnecting' | 'refused' | 'off';

/** Charts of every numeric property of the model, live over the WebSocket stream or averaged over a fixed range. */
export function Telemetry({ device, model }: { device: Device; model: ThingModelDocument }) {
  const api = useApi();
  const numeric = useMemo(() => numericProperties(model.properties), [model]);
  const names = useMemo(() => numeric.map(([name]) => name), [numeric]);
  const [range, setRange] = useState<RangeId>('live');
  const [series, setSeries] = useState<SeriesMap | undefined>();
  const [error, setError] = useState<unknown>();
  const [now, setNow] = useState(() => Date.now());
  const [latest, setLatest] = useState<Latest['values']>({});
  const [stream, setStream] = useState<StreamState>('off');
  const [attempt, setAttempt] = useState(0);
  const base = `/api/v1/devices/${encodeURIComponent(device.id)}`;
  const rangeRef = useRef(range);
  rangeRef.current = range;

  // Initial data for the range: raw recent samples (live) or averaged buckets; `attempt` re-runs it on retry.
  // biome-ignore lint/correctness/useExhaustiveDependencies: `attempt` is a trigger
  useEffect(() => {
    const controller = new AbortController();
    setSeries(undefined);
    setError(undefined);
    const at = Date.now();
    setNow(at);
    const params = telemetryQuery(range, at, names);
    const load = async () => {
      if (names.length === 0) return setSeries({});
      if (rangeById(range).bucket) {
        const result = await api.get<TelemetryAggregate>(`${base}/telemetry?${params}`, controller.signal);
        setSeries(fromAggregate(result, names));
      } else {
        const result = await api.get<TelemetryRaw>(`${base}/telemetry?${params}`, controller.signal);
        setSeries(fromRaw(result, names));
      }
    };
    load().catch((caught: Error) => {
      if (caught.name !== 'AbortError') setError(caught);
    });
    return () => controller.abort();
  }, [api, base, range, names, attempt]);

  useEffect(() => {
    const controller = new AbortController();
    api.get<Latest>(`${base}/latest`, controller.signal).then(
      (result) => setLatest(result.values),
      () => undefined,
    );
    return () => controller.abort();
  }, [api, base]);

  // The live stream feeds the latest values always and the charts when the range is live.
  useEffect(() => {
    let socket: WebSocket | undefined;
    let retry: ReturnType<typeof setTimeout> | undefined;
    let closed = false;
    let failures = 0;
    const retryLater = () => {
      failures++;
      setStream('reconnecting');
      retry = setTimeout(connect, Math.min(30_000, 1000 * 2 ** Math.min(failures, 5)));
    };
    const connect = async () => {
      setStream(failures === 0 ? 'connecting' : 'reconnecting');
      let url: string;
      try {
        url = await api.streamUrl(device.id);
      } catch (error) {
        if (closed) return;
        if (error instanceof ApiError && error.kind === 'unauthorized') setStream('refused');
        else retryLater();
        return;
      }
      if (closed) return;
      socket = new WebSocket(url);
      socket.onmessage = (event) => {
        const message = JSON.parse(String(event.data)) as StreamMessage | { subscribed: string };
        if ('subscribed' in message) {
          failures = 0;
          setStream('live');
          return;
        }
        setLatest((current) => {
          const next = { ...current };
          for (const [property, value] of Object.entries(message.values)) next[property] = { value, ts: message.ts };
          return next;
        });
        if (rangeRef.current === 'live') {
          const window = rangeById('live').spanMs;
          setSeries((current) => (current ? appendSample(current, message.ts, message.values, window, maxPoints('live')) : current));
          setNow(Date.now());
        }
      };
      socket.onclose = (event) => {
        if (closed) return;
        if (event.code === 4401) {
          setStream('refused');
          return;
        }
        retryLater();
      };
    };
    void connect();
    return () => {
      closed = true;
      clearTimeout(retry);
      socket?.close();
      setStream('off');
    };
  }, [api, device.id]);

  // A live chart slides even when the device is quiet.
  useEffect(() => {
    if (range !== 'live') return;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [range]);

  const span = rangeById(range).spanMs;
  // Live starts where the data starts (up to the full window) so a fresh stream is not squeezed to one edge.
  const earliest = range === 'live' && series ? Math.min(...Object.values(series).map((s) => s.xs[0] ?? Number.POSITIVE_INFINITY)) : -1;
  const start = Math.max((now - span) / 1000, Number.isFinite(earliest) ? earliest - 5 : now / 1000 - 60);
  const xRange: [number, number] = [range === 'live' ? start : (now - span) / 1000, now / 1000];
  const properties = Object.entries(model.properties ?? {});

  return (
    <>
      <section className="card" aria-labelledby="telemetry-title">
        <div className="card-head">
          <h2 id="telemetry-title">Telemetry</h2>
          <fieldset className="segmented">
            <legend className="sr-only">Time range</legend>
            {RANGES.map((option) => (
              <button key={option.id} type="button" aria-pressed={range === option.id} onClick={() => setRange(option.id)}>
                {option.label}
              </button>
            ))}
          </fieldset>
          <span className={`stream ${stream}`} role="status" data-testid="stream-status">
            {
              {
                connecting: 'connecting to the live stream…',
                live: '● live',
                reconnecting: 'stream lost: reconnecting…',
                refused: 'stream refused the key: sign in again',
                off: '',
              }[stream]
            }
          </span>
        </div>
        {range !== 'live' && <p className="muted">Averages per {rangeById(range).bucket} bucket.</p>}
        {error !== undefined && <ErrorState error={error} retry={() => setAttempt((n) => n + 1)} />}
        {error === undefined && !series && <Loading what="telemetry" />}
        {series &&
          (names.length === 0 ? (
            <Empty>
              <p>This model has no numeric properties to chart; the latest values are below.</p>
            </Empty>
          ) : (
            <div className="charts">
              {numeric.map(([name, schema]) => (
                <Chart key={name} property={name} unit={schema.unit} series={series[name] ?? { xs: [], ys: [] }} xRange={xRange} />
              ))}
            </div>
          ))}
      </section>
      <section className="card" aria-labelledby="latest-title">
        <h2 id="latest-title">Latest values</h2>
        {Object.keys(latest).length === 0 ? (
          <Empty>
            <p>The device has not reported any value yet. Values appear here as soon as it sends telemetry.</p>
          </Empty>
        ) : (
          <Table testId="latest" columns={['Property', { label: 'Value', num: true }, 'When']}>
            {properties
              .filter(([name]) => latest[name])
              .map(([name, schema]) => (
                <tr key={name}>
                  <th scope="row">{schema.title ?? name}</th>
                  <td className="num">{formatValue(latest[name]?.value, schema.unit)}</td>
                  <td>
                    <time dateTime={new Date(latest[name]?.ts ?? 0).toISOString()}>{formatAgo(latest[name]?.ts, now)}</time>
                  </td>
                </tr>
              ))}
          </Table>
        )}
      </section>
    </>
  );
}
