/**
 * Commands: device actions as tracked invocations. An invocation is validated against the
 * thing model, queued while the device is asleep or offline, delivered on
 * `things/{id}/actions/{name}`, answered on `…/result`, and expires with a reason.
 */
export * from './invocation.js';
export {
  type ActionChannel,
  type CommandDependencies,
  type CommandEvents,
  type CommandMetrics,
  CommandService,
  type InsertOutcome,
  type InvocationRepository,
  type InvokeOutcome,
  type InvokeRequest,
} from './service.js';
