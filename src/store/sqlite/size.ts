import type { SqliteDatabase } from './database.js';

/**
 * The bytes a database holds: its pages in use (page_count less the free list) times the page
 * size. Read from the pager, so committed pages still in the WAL count; freed pages do not, as
 * SQLite reuses them (a tenant whose old telemetry was swept may write again without a VACUUM).
 * Two pragma reads: cheap, but callers cache it rather than read it per message.
 */
export function databaseBytes(db: SqliteDatabase): number {
  const pages = Number(db.pragma('page_count', { simple: true }));
  const free = Number(db.pragma('freelist_count', { simple: true }));
  const pageSize = Number(db.pragma('page_size', { simple: true }));
  return Math.max(0, pages - free) * pageSize;
}
