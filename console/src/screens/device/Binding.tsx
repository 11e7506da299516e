import type { BindingHealth, Device } from '../../api/types';
import { Loaded } from '../../components/states';
import { bindingFacts, bindingPath } from '../../lib/bindingHealth';
import { useApi } from '../../lib/session';
import { usePolled } from '../../lib/useApi';

const REFRESH_MS = 5_000;

/** How the node reaches the device: protocol, addressing, and the binding's health (state, last good read, poll latency, errors). */
export function Binding({ device }: { device: Device }) {
  const api = useApi();
  const { state, reload } = usePolled((signal) => api.get<BindingHealth>(bindingPath(device.id), signal), [device.id], REFRESH_MS);

  return (
    <section className="card" aria-labelledby="binding-title" data-testid="device-binding">
      <div className="card-head">
        <h2 id="binding-title">Binding</h2>
        <span className="muted">how the node reaches the device, refreshed every {REFRESH_MS / 1000} s</span>
        <button type="button" onClick={reload}>
          Refresh
        </button>
      </div>
      <Loaded state={state} what="binding health" retry={reload}>
        {(health) => (
          <dl className="facts">
            {bindingFacts(device, health).map((fact) => (
              <div key={fact.label} className="attr" data-testid={`binding-${fact.label.toLowerCase().replaceAll(' ', '-')}`}>
                <dt>{fact.label}</dt>
                <dd className={fact.label === 'State' ? `binding-state ${health.state}` : undefined}>{fact.text}</dd>
              </div>
            ))}
          </dl>
        )}
      </Loaded>
    </section>
  );
}
