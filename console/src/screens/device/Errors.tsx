import { useEffect } from 'react';
import type { Device, DeviceErrorReport } from '../../api/types';
import { Empty, ErrorState, Loading } from '../../components/states';
import { errorRows, errorsPath } from '../../lib/deviceErrors';
import { formatTime } from '../../lib/format';
import { useApi } from '../../lib/session';
import { useLoad } from '../../lib/useApi';

const REFRESH_MS = 10_000;

/** What the device sent that the node refused (telemetry, reported twin, action results): the last 50, newest first. */
export function Errors({ device }: { device: Device }) {
  const api = useApi();
  const { state, reload } = useLoad(
    (signal) => api.get<{ items: DeviceErrorReport[] }>(errorsPath(device.id), signal).then((r) => errorRows(r.items)),
    [device.id],
  );
  useEffect(() => {
    const timer = setInterval(reload, REFRESH_MS);
    return () => clearInterval(timer);
  }, [reload]);

  return (
    <section className="card" aria-labelledby="errors-title" data-testid="device-errors">
      <div className="card-head">
        <h2 id="errors-title">Errors the device sent</h2>
        <span className="muted">the last 50 refusals since the node started, newest first</span>
        <button type="button" onClick={reload}>
          Refresh
        </button>
      </div>
      {state.status === 'loading' && <Loading what="errors" />}
      {state.status === 'error' && <ErrorState error={state.error} retry={reload} />}
      {state.status === 'ready' &&
        (state.data.length === 0 ? (
          <Empty>
            <p>Nothing refused since the node started.</p>
          </Empty>
        ) : (
          <div className="table-wrap">
            <table className="device-errors">
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">Source</th>
                  <th scope="col">Reason</th>
                  <th scope="col">Property</th>
                  <th scope="col">Message</th>
                </tr>
              </thead>
              <tbody>
                {state.data.map((row) => (
                  <tr key={row.key} data-testid="device-error">
                    <td>{formatTime(row.ts)}</td>
                    <td>{row.source}</td>
                    <td>
                      <code>{row.reason}</code>
                    </td>
                    <td>{row.property ? <code>{row.property}</code> : <span className="muted">—</span>}</td>
                    <td>
                      {row.message}
                      {row.value && (
                        <>
                          {' '}
                          <span className="muted">
                            (sent <code>{row.value}</code>)
                          </span>
                        </>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ))}
    </section>
  );
}
