/**
 * Tenancy: who the node's users are and what they may do. Tenants (and their quotas), people
 * with passwords or an OpenID Connect subject, their sign-in sessions, API keys for programs,
 * the one policy table of roles and permissions, and the audit trail of who did what from where.
 * Storage is behind ports; the SQLite adapter lives in store/sqlite/tenancy.ts.
 */

export * from './policy.js';
