/**
 * Storage. The ports themselves live with the domain modules that need them
 * (`ModelRepository` in model/, `DeviceRepository` in registry/, `TelemetryStore` in
 * telemetry/, `SettingsRepository` in access/); adapters sit in sub-folders:
 * `store/sqlite` (embedded default) and, later, `store/postgres` (scale-out). Only the
 * node composition root imports an adapter.
 */

export type { SettingsRepository } from '../access/index.js';
export type { ModelRepository } from '../model/index.js';
export type { DeviceRepository } from '../registry/index.js';
export type { TelemetryStore } from '../telemetry/index.js';
