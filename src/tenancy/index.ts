/**
 * Tenancy: who owns what and who may do what. Tenants own devices, models, agents, edges and
 * their data; people and integrations act in a tenant with a role; one policy table says what
 * each role may do; an audit trail records who did it and from where.
 */
export * from './policy.js';
