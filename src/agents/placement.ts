import type { DeviceRecord } from '../registry/index.js';
import type { DecisionRecord } from './decision.js';
import type { AgentStore } from './engine.js';

/** Where agents run for a device, and who hears of their decisions: what differs between a cloud and an edge. */
export interface AgentPlacement {
  /** Whether this node runs agents for a device. */
  evaluates(device: DeviceRecord): boolean;
  /** Called after a decision is stored or updated (an edge forwards it to the cloud). */
  onDecision?(decision: DecisionRecord): void;
}

/** An agent store that also reports every stored decision. */
export function reportingDecisions(store: AgentStore, onDecision: (decision: DecisionRecord) => void): AgentStore {
  return Object.assign(Object.create(store) as AgentStore, {
    async insertDecision(decision: DecisionRecord) {
      await store.insertDecision(decision);
      onDecision(decision);
    },
    async updateDecision(decision: DecisionRecord) {
      await store.updateDecision(decision);
      onDecision(decision);
    },
  });
}

/** The store the engine gets under a placement: decisions reported when the placement asks for them. */
export function placedStore(store: AgentStore, placement: AgentPlacement): AgentStore {
  return placement.onDecision ? reportingDecisions(store, placement.onDecision) : store;
}
