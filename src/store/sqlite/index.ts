/**
 * The embedded storage adapter: one SQLite file (WAL) in the data directory holds models,
 * devices, settings and telemetry. It implements the ports the domain modules declare.
 */

export { SqliteAgentStore, SqliteAlarms } from './agents.js';
export { type BackupProgress, backupDatabase, databaseInUse, databaseProblems } from './backup.js';
export {
  type BackupManifest,
  backupDataDirectory,
  type DataDirectoryProgress,
  resetAdminKey,
  restoreDataDirectory,
} from './data-directory.js';
export { type OpenOptions, openDatabase, type SqliteDatabase } from './database.js';
export { SqliteEdges, SqliteOutbox } from './edge.js';
export { type DeviceEventWriterOptions, SqliteDeviceEvents } from './events.js';
export { SqliteInvocations } from './invocations.js';
export { SqliteDevices, SqliteModels, SqliteSettings } from './metadata.js';
export { databaseBytes } from './size.js';
export { SqliteTelemetryStore, type TelemetryWriterOptions, type WriteMetrics } from './telemetry.js';
export {
  SqliteApiKeys,
  SqliteAuditTrail,
  SqliteSessions,
  SqliteTenants,
  SqliteUsers,
  sqliteTenancyStores,
} from './tenancy.js';
export { SqliteTwins } from './twins.js';
