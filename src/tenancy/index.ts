/**
 * Tenancy: who owns what and who may do what. Tenants own devices, models, agents, edges and
 * their data; people (a password here, or an OpenID Connect subject) and programs (API keys) act
 * in a tenant with a role; one policy table says what each role may do; an audit trail records
 * who did it and from where. Storage is behind ports; the SQLite adapter is store/sqlite/tenancy.ts.
 */
export * from './audit.js';
export * from './identity.js';
export * from './keys.js';
export * from './oidc.js';
export * from './passwords.js';
export * from './policy.js';
export * from './quotas.js';
export * from './sessions.js';
export * from './tenancy.js';
export * from './tenants.js';
export * from './users.js';
