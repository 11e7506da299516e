/**
 * Digital twins (device shadows): reported state, desired state, the delta between them,
 * per-key timestamps, versions for optimistic concurrency, and a history of every change
 * with who made it. Desired writes are validated against the device's thing model.
 */

export {
  type DesiredWrite,
  type TwinActor,
  type TwinDependencies,
  type TwinEvents,
  type TwinHistoryEntry,
  type TwinRepository,
  TwinService,
} from './service.js';
export * from './twin.js';
