import type { Device, DeviceErrorReport } from '../../api/types';
import { Loaded } from '../../components/states';
import { Table } from '../../components/Table';
import { errorRows, errorsPath } from '../../lib/deviceErrors';
import { formatTime } from '../../lib/format';
import { useApi } from '../../lib/session';
import { usePolled } from '../../lib/useApi';

const REFRESH_MS = 10_000;

/** What the device sent that the node refused (telemetry, reported twin, action results): the last 50, newest first. */
export function Errors({ device }: { device: Device }) {
  const api = useApi();
  const { state, reload } = usePolled(
    (signal) => api.get<{ items: DeviceErrorReport[] }>(errorsPath(device.id), signal).then((r) => errorRows(r.items)),
    [device.id],
    REFRESH_MS,
  );

  return (
    <section className="card" aria-labelledby="errors-title" data-testid="device-errors">
      <div className="card-head">
        <h2 id="errors-title">Errors the device sent</h2>
        <span className="muted">the last 50 refusals since the node started, newest first</span>
        <button type="button" onClick={reload}>
          Refresh
        </button>
      </div>
      <Loaded state={state} what="errors" retry={reload} empty={<p>Nothing refused since the node started.</p>}>
        {(rows) => (
          <Table className="device-errors" columns={['Time', 'Source', 'Reason', 'Property', 'Message']}>
            {rows.map((row) => (
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
          </Table>
        )}
      </Loaded>
    </section>
  );
}
