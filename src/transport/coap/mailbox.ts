import type { JsonValue } from '../../telemetry/index.js';

/** One action invocation as a CoAP device fetches it from `things/{id}/actions`. */
export interface PendingAction {
  id: string;
  action: string;
  input: JsonValue | null;
  /** Epoch ms by which the platform expects the result (after it the invocation expires). */
  deadline: number;
}

/**
 * The invocations handed to the binding for each device and not yet answered: a CoAP device
 * cannot be pushed to unless it observes, so delivered invocations wait here until it fetches
 * them (`GET things/{id}/actions`), answers them or their result deadline passes. Bounded per
 * device; expired entries go on every read. A device is named by the binding's key for it (its
 * tenant and id: ids repeat across tenants).
 */
export class ActionMailbox {
  private readonly boxes = new Map<string, Map<string, PendingAction>>();

  constructor(private readonly maxPerDevice: number) {}

  /** False when the device's box is full (the caller refuses the delivery; the action stays queued). */
  put(deviceId: string, action: PendingAction, now: number): boolean {
    const box = this.prune(deviceId, now) ?? new Map<string, PendingAction>();
    if (!box.has(action.id) && box.size >= this.maxPerDevice) return false;
    box.set(action.id, action);
    this.boxes.set(deviceId, box);
    return true;
  }

  /** The device's unanswered invocations, oldest delivery first. */
  pending(deviceId: string, now: number): PendingAction[] {
    return [...(this.prune(deviceId, now)?.values() ?? [])];
  }

  /** The device answered an invocation: it is no longer handed out. */
  answered(deviceId: string, id: string): void {
    const box = this.boxes.get(deviceId);
    if (!box) return;
    box.delete(id);
    if (box.size === 0) this.boxes.delete(deviceId);
  }

  forget(deviceId: string): void {
    this.boxes.delete(deviceId);
  }

  /** Invocations held for all devices. */
  size(): number {
    let total = 0;
    for (const box of this.boxes.values()) total += box.size;
    return total;
  }

  private prune(deviceId: string, now: number): Map<string, PendingAction> | undefined {
    const box = this.boxes.get(deviceId);
    if (!box) return undefined;
    for (const [id, action] of box) if (action.deadline <= now) box.delete(id);
    if (box.size === 0) {
      this.boxes.delete(deviceId);
      return undefined;
    }
    return box;
  }
}
