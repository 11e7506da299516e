/**
 * The composition root: builds a node from its configuration. The only module that imports
 * adapters (SQLite, Aedes, fastify) and wires them to the domain modules.
 */

// The data directory as a whole (backup, restore, a lost admin key) is the SQLite adapter's; the CLI reaches it here.
export {
  type BackupManifest,
  backupDataDirectory,
  type DataDirectoryProgress,
  resetAdminKey,
  restoreDataDirectory,
} from '../store/sqlite/index.js';
export { type NodeOptions, type RunningNode, StartupError, startCloudNode } from './cloud-node.js';
export { ConfigError, howToSet, type NodeConfig, type ResolvedConfig, resolveConfig, SETTINGS, type SettingSpec } from './config.js';
export { VERSION } from './version.js';
