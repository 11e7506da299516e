/**
 * The in-process bus between the ingest pipeline and its consumers (twin, agents, live
 * streams, edge uplink). It is synchronous and typed: a consumer that needs durability
 * reads from the store, not from here. In scale-out mode an external broker's shared
 * subscriptions take this role behind the same event names.
 */

export type Listener<T> = (event: T) => void;

export class EventBus<Events extends Record<string, unknown>> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();
  /** Called when a listener throws: one broken consumer must not stop the others. */
  constructor(private readonly onListenerError: (error: unknown, event: keyof Events) => void = () => {}) {}

  on<K extends keyof Events>(name: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners.get(name);
    if (!set) {
      set = new Set();
      this.listeners.set(name, set);
    }
    set.add(listener as Listener<never>);
    return () => set.delete(listener as Listener<never>);
  }

  emit<K extends keyof Events>(name: K, event: Events[K]): void {
    const set = this.listeners.get(name);
    if (!set) return;
    for (const listener of set) {
      try {
        (listener as Listener<Events[K]>)(event);
      } catch (error) {
        this.onListenerError(error, name);
      }
    }
  }

  listenerCount(name: keyof Events): number {
    return this.listeners.get(name)?.size ?? 0;
  }
}
