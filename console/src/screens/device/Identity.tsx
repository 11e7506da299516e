import type { Device, Presence } from '../../api/types';
import { formatAgo, formatSpan, formatTime } from '../../lib/format';

/** Who the device is: identification code, IPv6 address, network profile, attributes. */
export function Identity({ device, presence }: { device: Device; presence: Presence }) {
  const network = presence.network;
  const attributes = Object.entries(device.attributes);
  return (
    <section className="card" aria-labelledby="identity-title">
      <h2 id="identity-title">Identity and network</h2>
      <dl className="facts" data-testid="identity">
        <dt>Device id</dt>
        <dd>
          <code>{device.id}</code>
        </dd>
        <dt>Identification code</dt>
        <dd>
          <code>{device.code}</code>
        </dd>
        <dt>IPv6 address</dt>
        <dd>
          <code>{device.ipv6}</code>
        </dd>
        <dt>Network profile</dt>
        <dd>
          {network.profile ?? '—'}
          {network.sleepy ? ' (sleepy)' : ''}
        </dd>
        {network.reportIntervalMs !== undefined && (
          <>
            <dt>Report interval</dt>
            <dd>{formatSpan(network.reportIntervalMs)}</dd>
          </>
        )}
        {network.keepAliveMs !== undefined && (
          <>
            <dt>Keep-alive</dt>
            <dd>{formatSpan(network.keepAliveMs)}</dd>
          </>
        )}
        {network.psmPeriodMs !== undefined && (
          <>
            <dt>PSM period</dt>
            <dd>{formatSpan(network.psmPeriodMs)}</dd>
          </>
        )}
        {network.edrxCycleMs !== undefined && (
          <>
            <dt>eDRX cycle</dt>
            <dd>{formatSpan(network.edrxCycleMs)}</dd>
          </>
        )}
        <dt>Presence</dt>
        <dd>
          {presence.status}, {presence.connected ? 'connected' : 'not connected'}, last seen {formatAgo(presence.lastSeen)}
          {presence.nextWindowExpected ? `; next window expected ${formatTime(presence.nextWindowExpected)}` : ''}
        </dd>
        <dt>Registered</dt>
        <dd>{formatTime(device.createdAt)}</dd>
        {attributes.map(([key, value]) => (
          <div key={key} className="attr">
            <dt>{key}</dt>
            <dd>{String(value)}</dd>
          </div>
        ))}
      </dl>
    </section>
  );
}
