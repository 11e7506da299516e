/**
 * Thing models: what a kind of device is (W3C WoT Thing Model / Thing Description),
 * which properties, actions and events it has, with data schemas and units. Models are
 * versioned; validators are compiled once per version and shared by every message.
 */

export { canonicalJson, ModelCatalog, type ModelRepository, type ModelSummary, type PutModelResult } from './catalog.js';
export {
  type CompiledAction,
  type CompiledProperty,
  type CompiledThingModel,
  compileThingModel,
  type ValueCheck,
  type ValueProblem,
  type ValueRejectionReason,
} from './compiled-model.js';
export { findModelProblems } from './model-document.js';
export * from './thing-model.js';
export {
  findUnsafeInteger,
  findUnstorable,
  isShallowValue,
  isStorableString,
  MAX_VALUE_DEPTH,
  type UnstorableValue,
} from './values.js';
