/**
 * The one policy: which role may do what. Routes and MQTT topics declare the permission they
 * need; this table is the only place that says who has it. A plain table rather than a rules
 * engine: six fixed roles and a few dozen permissions are read and audited best as data.
 */

export const ROLES = ['platform-admin', 'tenant-admin', 'operator', 'engineer', 'viewer', 'integration'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/**
 * What a route or topic needs. `…:read` permissions are reads, the rest change something (the
 * audit trail records every change, and the reads a route marks sensitive).
 */
export const PERMISSIONS = [
  'node:read',
  'devices:read',
  'devices:write',
  'telemetry:read',
  /** Publish or post a device's telemetry, events and reports on its behalf (integrations). */
  'telemetry:write',
  'twins:read',
  'twins:write',
  'actions:read',
  'actions:invoke',
  'models:read',
  'models:write',
  'agents:read',
  'agents:write',
  /** Stop every agent at once (the kill switch): an emergency control, so operators have it too. */
  'agents:halt',
  /** Approve or reject a decision that waits for a person. */
  'decisions:approve',
  'alarms:read',
  'alarms:ack',
  'edges:read',
  'edges:write',
  'keys:read',
  'keys:write',
  'users:read',
  'users:write',
  'audit:read',
  'metrics:read',
  /** Create, list and change tenants: the platform's own operators only. */
  'tenants:read',
  'tenants:write',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

export function isPermission(value: unknown): value is Permission {
  return typeof value === 'string' && (PERMISSIONS as readonly string[]).includes(value);
}

const READS: Permission[] = [
  'node:read',
  'devices:read',
  'telemetry:read',
  'twins:read',
  'actions:read',
  'models:read',
  'agents:read',
  'alarms:read',
  'edges:read',
];

/**
 * Everything in its own tenant. Not the node's metrics: they count every tenant's traffic and name
 * tenants in labels (quota refusals), so they are the platform's, like the tenants themselves.
 */
const TENANT_ADMIN: Permission[] = PERMISSIONS.filter((permission) => !permission.startsWith('tenants:') && permission !== 'metrics:read');

/** The table. A role not listed for a permission does not have it. */
export const ROLE_PERMISSIONS: Record<Role, ReadonlySet<Permission>> = {
  'platform-admin': new Set(PERMISSIONS),
  'tenant-admin': new Set(TENANT_ADMIN),
  // Runs the plant: acts on devices, approves what agents propose, acknowledges alarms.
  operator: new Set([...READS, 'actions:invoke', 'twins:write', 'decisions:approve', 'alarms:ack', 'agents:halt']),
  // Builds what runs: thing models, agents, device bindings and edges; does not operate.
  engineer: new Set([...READS, 'devices:write', 'models:write', 'agents:write', 'agents:halt', 'edges:write']),
  viewer: new Set(READS),
  // A program: reads and writes device data and invokes actions, nothing about people or agents.
  integration: new Set([
    'devices:read',
    'telemetry:read',
    'telemetry:write',
    'twins:read',
    'twins:write',
    'actions:read',
    'actions:invoke',
    'models:read',
    'alarms:read',
  ]),
};

export function permits(role: Role, permission: Permission): boolean {
  return ROLE_PERMISSIONS[role].has(permission);
}

/** Roles a holder of `role` may hand out (keys, users): never more than it has. */
export function mayGrant(role: Role, granted: Role): boolean {
  if (role === 'platform-admin') return true;
  if (role !== 'tenant-admin') return false;
  return granted !== 'platform-admin';
}

/** A tenant id: lowercase, short, safe in a path and an MQTT topic level. */
export const TENANT_ID_PATTERN = '^[a-z0-9][a-z0-9-]{0,62}$';
export const DEFAULT_TENANT = 'default';

export function isTenantId(value: string): boolean {
  return new RegExp(TENANT_ID_PATTERN).test(value);
}
