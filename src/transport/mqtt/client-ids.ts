/**
 * Which principal an MQTT client id belongs to. MQTT lets a new connection with a client id
 * take over the session of that id, so an id not bound to its device would let any device throw
 * another off the broker, or pick up its persistent session (subscriptions, queued messages).
 */

/** Who may hold client ids: one device of one tenant, an integration's key, or the platform admin. */
export type ClientIdOwner = string;

/**
 * Device ids repeat across tenants: the owner names both. (The client ids themselves are
 * scoped too: the broker mounts a non-default tenant's client ids under its topic mount.)
 */
export function deviceOwner(tenant: string, deviceId: string): ClientIdOwner {
  return `device:${tenant}/${deviceId}`;
}

/** An integration logged in with an API key: the key's holder, within its tenant. */
export function integrationOwner(tenant: string, actor: string): ClientIdOwner {
  return `integration:${tenant}/${actor}`;
}

export const ADMIN_OWNER: ClientIdOwner = 'admin';

interface Holding<S> {
  owner: ClientIdOwner;
  /** Sessions connected under the id: a takeover briefly has the old and the new one. */
  live: Set<S>;
  /** A clean=false session outlives its connection, and so does its owner's claim. */
  persistent: boolean;
}

/** The client ids in use and who holds them; `S` is whatever identifies one connection. */
export class ClientIdBook<S> {
  private readonly holdings = new Map<string, Holding<S>>();
  /** The ids of each owner, so deleting a device does not walk every id. */
  private readonly byOwner = new Map<ClientIdOwner, Set<string>>();

  /**
   * Claims `clientId` for `owner` on behalf of `session`. False when another owner holds it
   * (live, or last with a persistent session); the owner's own reconnect claims it again.
   */
  claim(clientId: string, owner: ClientIdOwner, session: S, persistent: boolean): boolean {
    const holding = this.holdings.get(clientId);
    if (holding && holding.owner !== owner) return false;
    if (holding) {
      holding.live.add(session);
      // The newest connection decides: clean=true discards the stored session.
      holding.persistent = persistent;
    } else {
      this.holdings.set(clientId, { owner, live: new Set([session]), persistent });
      const ids = this.byOwner.get(owner);
      if (ids) ids.add(clientId);
      else this.byOwner.set(owner, new Set([clientId]));
    }
    return true;
  }

  /** `session` has ended; a clean session's id is free once no connection uses it. */
  release(clientId: string, session: S): void {
    const holding = this.holdings.get(clientId);
    if (!holding?.live.delete(session)) return;
    if (holding.live.size === 0 && !holding.persistent) this.drop(clientId, holding.owner);
  }

  /** Every id of `owner` is free again (the device was deleted). */
  forgetOwner(owner: ClientIdOwner): void {
    for (const clientId of this.byOwner.get(owner) ?? []) this.holdings.delete(clientId);
    this.byOwner.delete(owner);
  }

  holder(clientId: string): ClientIdOwner | undefined {
    return this.holdings.get(clientId)?.owner;
  }

  private drop(clientId: string, owner: ClientIdOwner): void {
    this.holdings.delete(clientId);
    const ids = this.byOwner.get(owner);
    ids?.delete(clientId);
    if (ids?.size === 0) this.byOwner.delete(owner);
  }
}
