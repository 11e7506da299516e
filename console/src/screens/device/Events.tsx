import { useEffect, useMemo, useRef, useState } from 'react';
import type { Device, DeviceEventPage, ThingModelDocument } from '../../api/types';
import { FilterSelect } from '../../components/FilterSelect';
import { ErrorState, Loaded } from '../../components/states';
import { Table } from '../../components/Table';
import { appendOlder, type EventList, eventNames, eventsHint, eventsPath, formatEventData, mergeNewest } from '../../lib/deviceEvents';
import { formatTime } from '../../lib/format';
import { useApi } from '../../lib/session';
import type { Loadable } from '../../lib/useApi';

/** New events show within one poll; polling pauses while the tab is hidden. */
export const EVENTS_REFRESH_MS = 5_000;

const toList = (page: DeviceEventPage): EventList => ({ items: page.items, next: page.next });

/** What the device reported as having happened (events named in its model), newest first, optionally of one name. */
export function Events({ device, model }: { device: Device; model: ThingModelDocument }) {
  const api = useApi();
  const names = useMemo(() => eventNames(model), [model]);
  const [name, setName] = useState('');
  const [list, setList] = useState<Loadable<EventList>>({ status: 'loading' });
  const [pollError, setPollError] = useState<unknown>();
  const [older, setOlder] = useState<{ busy: boolean; error?: unknown }>({ busy: false });
  const [attempt, setAttempt] = useState(0);
  const poll = useRef<() => void>(() => {});
  // Bumped whenever the list starts over, so that a late "Load older" answer for another filter is dropped.
  const generation = useRef(0);

  // biome-ignore lint/correctness/useExhaustiveDependencies: `attempt` is a trigger
  useEffect(() => {
    const controller = new AbortController();
    const current = ++generation.current;
    let inFlight = true;
    setList({ status: 'loading' });
    setPollError(undefined);
    setOlder({ busy: false });
    const newest = () => api.get<DeviceEventPage>(eventsPath(device.id, { name }), controller.signal);
    newest()
      .then(
        (page) => {
          if (!controller.signal.aborted) setList({ status: 'ready', data: toList(page) });
        },
        (error: Error) => {
          if (!controller.signal.aborted) setList({ status: 'error', error });
        },
      )
      .finally(() => {
        inFlight = false;
      });
    poll.current = () => {
      if (inFlight || document.visibilityState !== 'visible') return;
      inFlight = true;
      newest()
        .then(
          (page) => {
            if (generation.current !== current) return;
            setList((shown) => ({ status: 'ready', data: shown.status === 'ready' ? mergeNewest(shown.data, page) : toList(page) }));
            setPollError(undefined);
          },
          (error: Error) => {
            if (!controller.signal.aborted) setPollError(error);
          },
        )
        .finally(() => {
          inFlight = false;
        });
    };
    const timer = setInterval(() => poll.current(), EVENTS_REFRESH_MS);
    const onVisible = () => poll.current();
    document.addEventListener('visibilitychange', onVisible);
    return () => {
      controller.abort();
      clearInterval(timer);
      document.removeEventListener('visibilitychange', onVisible);
    };
  }, [api, device.id, name, attempt]);

  const loadOlder = async (cursor: string) => {
    const current = generation.current;
    setOlder({ busy: true });
    try {
      const page = await api.get<DeviceEventPage>(eventsPath(device.id, { name, cursor }));
      if (generation.current !== current) return;
      setList((shown) => (shown.status === 'ready' ? { status: 'ready', data: appendOlder(shown.data, page) } : shown));
      setOlder({ busy: false });
    } catch (error) {
      if (generation.current === current) setOlder({ busy: false, error });
    }
  };

  return (
    <section className="card" aria-labelledby="events-title" data-testid="device-events">
      <div className="card-head">
        <h2 id="events-title">Events</h2>
        <span className="muted">newest first, refreshed every {EVENTS_REFRESH_MS / 1000} s</span>
        {names.length > 0 && (
          <FilterSelect id="event-filter" label="Event name" all="All events" options={names} value={name} onChange={setName} inline />
        )}
        <button type="button" onClick={() => poll.current()}>
          Refresh
        </button>
      </div>
      {list.status === 'ready' && pollError !== undefined && <ErrorState error={pollError} retry={() => poll.current()} />}
      <Loaded
        state={list}
        what="events"
        retry={() => setAttempt((n) => n + 1)}
        isEmpty={(data) => data.items.length === 0}
        empty={
          <>
            <p>{name ? `No ${name} events are stored for this device.` : 'No events are stored for this device yet.'}</p>
            <p className="muted" data-testid="events-hint">
              {eventsHint(device.id, names)}
            </p>
          </>
        }
      >
        {(shown) => (
          <>
            <Table
              className="device-events"
              caption={name ? `${name} events, newest first` : 'Events, newest first'}
              columns={['Time', 'Event', 'Data']}
            >
              {shown.items.map((event) => {
                const data = formatEventData(event.data);
                const full = JSON.stringify(event.data);
                return (
                  <tr key={event.id} data-testid="device-event" data-event-id={event.id}>
                    <td>
                      <time dateTime={new Date(event.ts).toISOString()}>{formatTime(event.ts)}</time>
                    </td>
                    <td>
                      <code>{event.name}</code>
                    </td>
                    <td className="event-data">
                      {data ? (
                        <code title={data.length < full.length ? full : undefined}>{data}</code>
                      ) : (
                        <span className="muted">no data</span>
                      )}
                    </td>
                  </tr>
                );
              })}
            </Table>
            <nav className="pager" aria-label="Older events">
              {shown.next ? (
                <button type="button" disabled={older.busy} onClick={() => shown.next && loadOlder(shown.next)}>
                  {older.busy ? 'Loading older events…' : 'Load older'}
                </button>
              ) : (
                <span className="muted">No older events are stored.</span>
              )}
            </nav>
            {older.error !== undefined && <ErrorState error={older.error} retry={() => shown.next && loadOlder(shown.next)} />}
          </>
        )}
      </Loaded>
    </section>
  );
}
