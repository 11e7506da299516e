/**
 * Identity: "one object, one code, one number". Each device gets an identification code
 * (Handle-style `{prefix}/{id}`) and an IPv6 address in the site's /64, both derived
 * deterministically so any node computes the same answer. DIDs, keys, verifiable
 * credentials and the transparency log arrive here later.
 */
import { createHash } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { invalid } from '../errors/index.js';

/** A unique-local (fc00::/7) /64 so fresh installs never claim global address space. */
export const DEFAULT_IPV6_PREFIX = 'fd74:6c70:1f00:1::/64';
export const DEFAULT_CODE_PREFIX = '88.100.1';

const CODE_PREFIX_PATTERN = /^[0-9A-Za-z]+(\.[0-9A-Za-z]+)*$/;

export interface DeviceAddressing {
  code: string;
  ipv6: string;
}

export interface IdentityPlan {
  codePrefix: string;
  /** The network part of a /64, as 8 bytes. */
  ipv6Network: Uint8Array;
}

/** Validates the configured prefixes once, at start-up, with messages that name the setting. */
export function planIdentity(codePrefix: string, ipv6Prefix: string): IdentityPlan {
  if (!CODE_PREFIX_PATTERN.test(codePrefix)) {
    throw invalid(`identification code prefix "${codePrefix}" is invalid: use dot-separated segments like 88.100.1`);
  }
  let parsed: [ipaddr.IPv4 | ipaddr.IPv6, number];
  try {
    parsed = ipaddr.parseCIDR(ipv6Prefix);
  } catch {
    throw invalid(`IPv6 prefix "${ipv6Prefix}" is not a CIDR such as ${DEFAULT_IPV6_PREFIX}`);
  }
  const [address, length] = parsed;
  if (address.kind() !== 'ipv6' || length !== 64) {
    throw invalid(`IPv6 prefix "${ipv6Prefix}" must be an IPv6 /64 (devices take the low 64 bits)`);
  }
  return { codePrefix, ipv6Network: Uint8Array.from(address.toByteArray().slice(0, 8)) };
}

export function identificationCode(plan: IdentityPlan, deviceId: string): string {
  return `${plan.codePrefix}/${deviceId}`;
}

/**
 * A stable interface id from the device id (first 64 bits of SHA-256). `attempt` lets the
 * registry step past the astronomically rare collision while staying deterministic.
 */
export function deriveIpv6(plan: IdentityPlan, deviceId: string, attempt = 0): string {
  const digest = createHash('sha256')
    .update(attempt === 0 ? deviceId : `${deviceId}#${attempt}`)
    .digest();
  const bytes = [...plan.ipv6Network, ...digest.subarray(0, 8)];
  // Clear the universal/local bit as RFC 4291 asks of interface ids not derived from a MAC.
  bytes[8] = (bytes[8] as number) & 0xfd;
  return ipaddr.fromByteArray(bytes).toString();
}

/** The canonical (RFC 5952) form of an IPv6 address, or undefined if it is not one. */
export function canonicalIpv6(text: string): string | undefined {
  if (!ipaddr.IPv6.isValid(text)) return undefined;
  return ipaddr.IPv6.parse(text).toRFC5952String();
}

export function addressDevice(plan: IdentityPlan, deviceId: string, attempt = 0): DeviceAddressing {
  return { code: identificationCode(plan, deviceId), ipv6: canonicalIpv6(deriveIpv6(plan, deviceId, attempt)) as string };
}
