import type { DeviceRecord } from '../registry/index.js';
import type { BindingProtocol, DeviceMessage, DeviceUplink, MessageSource } from './contract.js';
import type { BindingRefusals, DeviceGateway, DeviceInbox, MessageOutcomes } from './gateway.js';

/**
 * The uplink of listeners shared by several tenants. A binding knows the device a message is
 * from (its record carries the tenant), so the message goes to that tenant's gateway and from
 * there only into that tenant's store, twins and agents.
 */
export class TenantUplink implements DeviceUplink, DeviceInbox {
  constructor(
    private readonly gatewayOf: (tenant: string) => DeviceGateway | undefined,
    private readonly refusals: BindingRefusals,
    private readonly clock: () => number,
  ) {}

  now(): number {
    return this.clock();
  }

  private gateway(device: DeviceRecord): DeviceGateway {
    const gateway = this.gatewayOf(device.tenant);
    // A device whose tenant is gone (deleted while its session lived): nothing may take its message.
    if (!gateway) throw new Error(`tenant "${device.tenant}" of device ${device.id} is not served by this node`);
    return gateway;
  }

  receive(device: DeviceRecord, message: DeviceMessage, source: MessageSource): Promise<void> {
    return this.gateway(device).receive(device, message, source);
  }

  accept<M extends DeviceMessage>(device: DeviceRecord, message: M, source: MessageSource): Promise<MessageOutcomes[M['kind']]> {
    return this.gateway(device).accept(device, message, source);
  }

  reportError(device: DeviceRecord, message: string, reason?: string): Promise<void> {
    return this.gatewayOf(device.tenant)?.reportError(device, message, reason) ?? Promise.resolve();
  }

  refused(protocol: BindingProtocol, reason: string): void {
    this.refusals.bindingRefused(protocol, reason);
  }
}
