/**
 * Agents: closed loops that perceive (windows, joins, detectors), judge (hysteresis,
 * debounce), act (desired writes, actions) within a safety envelope, verify the plant
 * responded, and keep a decision record of all of it. Alarms live here too, with the shapes
 * their sinks send; agent definition files load from a directory here too.
 */
export * from './alarms.js';
export * from './decision.js';
export {
  type AgentDefinition,
  AgentDefinitionSchema,
  type AgentMode,
  type AgentSpec,
  compileAgent,
  DETECTOR_KINDS,
  type DefinitionProblem,
  type DetectorSpec,
  SEVERITIES,
  type Severity,
} from './definition.js';
export { type DetectorState, newDetector, observe, silence } from './detectors.js';
export {
  type AgentDeviceState,
  AgentEngine,
  type AgentEngineDependencies,
  type AgentEngineEvents,
  type AgentStore,
  type PlantAccess,
} from './engine.js';
export { compile as compileExpression, type Expression, ExpressionError, holds, numberOf, type Scope } from './expression.js';
export { definitionFiles, loadAgentFiles, parseDefinitionFile } from './files.js';
export { type JudgmentState, judge, NORMAL } from './judgment.js';
export { type AgentPlacement, placedStore, reportingDecisions } from './placement.js';
export { plantAccess } from './plant.js';
export { checkEnvelope, type PlannedWrite, type SafetyContext, type SafetyVerdict } from './safety.js';
export { type AlarmNotice, alarmNotice, postingSink, publishingSink } from './sinks.js';
export { aggregate, newWindow, pushWindow, type WindowState, windowValue } from './windows.js';
