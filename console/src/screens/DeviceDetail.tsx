import type { Device, ModelVersion, Presence } from '../api/types';
import { DetailPending } from '../components/states';
import { href } from '../lib/router';
import { useApi } from '../lib/session';
import { useLoad } from '../lib/useApi';
import { Actions } from './device/Actions';
import { Binding } from './device/Binding';
import { Errors } from './device/Errors';
import { Events } from './device/Events';
import { Identity } from './device/Identity';
import { Telemetry } from './device/Telemetry';
import { TwinPanel } from './device/TwinPanel';

export function DeviceDetail({ id }: { id: string }) {
  const api = useApi();
  const base = `/api/v1/devices/${encodeURIComponent(id)}`;
  const { state, reload } = useLoad(
    async (signal) => {
      const device = await api.get<Device>(base, signal);
      const [model, presence] = await Promise.all([
        api.get<ModelVersion>(`/api/v1/models/${encodeURIComponent(device.model)}?version=${device.modelVersion}`, signal),
        api.get<Presence>(`${base}/presence`, signal),
      ]);
      return { device, model, presence };
    },
    [id],
  );

  if (state.status !== 'ready') {
    return (
      <DetailPending
        state={state}
        what={`device ${id}`}
        title={id}
        retry={reload}
        back={{ href: href.devices(), label: 'Back to the device list' }}
      />
    );
  }
  const { device, model, presence } = state.data;
  return (
    <section aria-labelledby="device-title" className="device">
      <p className="crumbs">
        <a href={href.devices()}>Devices</a> / {device.id}
      </p>
      <header className="device-head">
        <h1 id="device-title">{device.name || device.id}</h1>
        <span className={`badge ${presence.status}`} data-testid="presence">
          {presence.status}
        </span>
        <span className="muted">
          {device.id} · <a href={href.model(device.model)}>{model.document.title ?? device.model}</a> v{device.modelVersion} ·{' '}
          <span data-testid="protocol">{device.binding.protocol}</span>
        </span>
      </header>
      <Telemetry device={device} model={model.document} />
      <div className="columns">
        <TwinPanel device={device} model={model.document} />
        <Actions device={device} model={model.document} />
      </div>
      <Events device={device} model={model.document} />
      <Binding device={device} />
      <Errors device={device} />
      <Identity device={device} presence={presence} />
    </section>
  );
}
