/**
 * Where each tenant's topics live inside the one embedded broker. Clients of every tenant speak
 * the public scheme (`things/{id}/…`); the broker mounts a non-default tenant's topics under
 * `$tenant/{tenant}/` on the way in and strips the mount on the way out. MQTT wildcards that
 * start a filter (`#`, `+/…`) never match a topic beginning with `$` (MQTT 3.1.1 §4.7.2, which
 * Aedes follows), and the broker refuses any filter or topic of a tenant's client that starts
 * with `$`, so no client reaches a mount other than its own. The default tenant's topics are not
 * mounted: a single-tenant install's topics are exactly the public scheme.
 */

import { DEFAULT_TENANT } from '../../tenancy/index.js';

export const TENANT_MOUNT_ROOT = '$tenant';

/** The prefix a tenant's topics and client ids carry inside the broker ('' for the default tenant). */
export function tenantMount(tenant: string): string {
  return tenant === DEFAULT_TENANT ? '' : `${TENANT_MOUNT_ROOT}/${tenant}/`;
}

/** A topic or filter as the client wrote it, as the broker routes it. */
export function mountTopic(tenant: string, topic: string): string {
  return `${tenantMount(tenant)}${topic}`;
}

/**
 * The topic or filter as the tenant's clients see it, or undefined when it lies outside the
 * tenant's mount (another tenant's, or a broker `$` topic).
 */
export function unmountTopic(tenant: string, topic: string): string | undefined {
  const mount = tenantMount(tenant);
  const inner = mount === '' ? topic : topic.startsWith(mount) ? topic.slice(mount.length) : undefined;
  return inner === undefined || inner.startsWith('$') ? undefined : inner;
}

/**
 * What a client of `tenant` wrote, as it is meant: already mounted (a persistent session's
 * stored subscriptions come back mounted), or in the public scheme. Undefined when it names
 * a `$` topic (another tenant's mount, the broker's own).
 */
export function tenantRelative(tenant: string, topic: string): string | undefined {
  return unmountTopic(tenant, topic) ?? (topic.startsWith('$') ? undefined : topic);
}

/** The tenant a platform-wide topic belongs to and the topic inside its mount (the platform admin's publishes). */
export function tenantOfTopic(topic: string): { tenant: string; topic: string } {
  const prefix = `${TENANT_MOUNT_ROOT}/`;
  if (!topic.startsWith(prefix)) return { tenant: DEFAULT_TENANT, topic };
  const end = topic.indexOf('/', prefix.length);
  if (end < 0) return { tenant: DEFAULT_TENANT, topic };
  return { tenant: topic.slice(prefix.length, end), topic: topic.slice(end + 1) };
}
