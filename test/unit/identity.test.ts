import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import ipaddr from 'ipaddr.js';
import { DomainError } from '../../src/errors/index.js';
import {
  addressDevice,
  canonicalIpv6,
  DEFAULT_CODE_PREFIX,
  DEFAULT_IPV6_PREFIX,
  deriveIpv6,
  identificationCode,
  planIdentity,
} from '../../src/identity/index.js';

const plan = planIdentity(DEFAULT_CODE_PREFIX, DEFAULT_IPV6_PREFIX);
const inside = (address: string, prefix = DEFAULT_IPV6_PREFIX) => ipaddr.IPv6.parse(address).match(ipaddr.IPv6.parseCIDR(prefix));

function refusal(codePrefix: string, ipv6Prefix: string): DomainError {
  try {
    planIdentity(codePrefix, ipv6Prefix);
  } catch (error) {
    assert.ok(error instanceof DomainError, String(error));
    assert.equal(error.kind, 'invalid');
    return error;
  }
  assert.fail(`planIdentity(${codePrefix}, ${ipv6Prefix}) was accepted`);
}

describe('planIdentity', () => {
  test('accepts the defaults and other /64s', () => {
    assert.equal(plan.codePrefix, '88.100.1');
    assert.deepEqual([...plan.ipv6Network], [0xfd, 0x74, 0x6c, 0x70, 0x1f, 0x00, 0x00, 0x01]);
    const other = planIdentity('20.500.12345', '2001:db8:aa:bb::/64');
    assert.deepEqual([...other.ipv6Network], [0x20, 0x01, 0x0d, 0xb8, 0x00, 0xaa, 0x00, 0xbb]);
    assert.equal(planIdentity('ACME', 'FD00:0:0:1::/64').codePrefix, 'ACME');
  });

  test('refuses a prefix that is not a /64, with a message naming it', () => {
    for (const prefix of ['fd74:6c70:1f00::/48', 'fd74:6c70:1f00:1::/65', 'fd74:6c70:1f00:1::1/128']) {
      const error = refusal('88.100.1', prefix);
      assert.ok(error.message.includes(prefix), error.message);
      assert.match(error.message, /must be an IPv6 \/64/);
    }
  });

  test('refuses an IPv4 prefix', () => {
    for (const prefix of ['10.0.0.0/8', '192.168.1.0/24']) {
      const error = refusal('88.100.1', prefix);
      assert.match(error.message, /IPv6 \/64/);
      assert.ok(error.message.includes(prefix));
    }
  });

  test('refuses something that is not a CIDR at all', () => {
    for (const prefix of ['fd74:6c70:1f00:1::', 'banana', '', 'fd74::/sixtyfour', 'gggg::/64']) {
      const error = refusal('88.100.1', prefix);
      assert.match(error.message, /is not a CIDR such as fd74:6c70:1f00:1::\/64/, prefix);
    }
  });

  test('refuses a bad code prefix, showing the expected shape', () => {
    for (const prefix of ['', '88..1', '.88', '88.', '88/100', '88 100', '88.100.1/x', 'ü.1']) {
      const error = refusal(prefix, DEFAULT_IPV6_PREFIX);
      assert.ok(error.message.includes(`"${prefix}"`), error.message);
      assert.match(error.message, /dot-separated segments like 88\.100\.1/);
    }
  });
});

describe('device addressing', () => {
  test('the identification code is {prefix}/{id}', () => {
    assert.equal(identificationCode(plan, 'pump-0001'), '88.100.1/pump-0001');
    assert.equal(addressDevice(plan, 'pump-0001').code, '88.100.1/pump-0001');
  });

  test('deriveIpv6 is deterministic and inside the prefix', () => {
    const first = deriveIpv6(plan, 'pump-0001');
    assert.equal(deriveIpv6(plan, 'pump-0001'), first);
    assert.equal(deriveIpv6(planIdentity('88.100.1', DEFAULT_IPV6_PREFIX), 'pump-0001'), first, 'any node computes the same');
    assert.ok(inside(first));
    const other = planIdentity('88.100.1', '2001:db8:aa:bb::/64');
    assert.ok(inside(deriveIpv6(other, 'pump-0001'), '2001:db8:aa:bb::/64'));
  });

  test('deriveIpv6 differs per device and per attempt, and clears the universal/local bit', () => {
    const addresses = new Set<string>();
    for (let n = 0; n < 500; n++) {
      const address = deriveIpv6(plan, `dev-${n}`);
      addresses.add(address);
      const bytes = ipaddr.IPv6.parse(address).toByteArray();
      assert.equal((bytes[8] as number) & 0x02, 0, address);
      assert.ok(inside(address), address);
    }
    assert.equal(addresses.size, 500);
    const attempts = [0, 1, 2, 3].map((attempt) => deriveIpv6(plan, 'pump-0001', attempt));
    assert.equal(new Set(attempts).size, 4);
    assert.equal(deriveIpv6(plan, 'pump-0001', 2), attempts[2]);
    for (const address of attempts) assert.ok(inside(address));
  });

  test('addressDevice returns the canonical spelling', () => {
    const { ipv6 } = addressDevice(plan, 'pump-0001', 1);
    assert.equal(ipv6, canonicalIpv6(deriveIpv6(plan, 'pump-0001', 1)));
    assert.equal(ipv6, ipv6.toLowerCase());
    assert.ok(!/(^|:)0[0-9a-f]/.test(ipv6), `no leading zeros in ${ipv6}`);
  });
});

describe('canonicalIpv6', () => {
  test('every valid spelling maps to the RFC 5952 form', () => {
    assert.equal(canonicalIpv6('FD74:6C70:1F00:0001:0000:0000:0000:00AB'), 'fd74:6c70:1f00:1::ab');
    assert.equal(canonicalIpv6('fd74:6c70:1f00:1:0:0:0:ab'), 'fd74:6c70:1f00:1::ab');
    assert.equal(canonicalIpv6('fd74:6c70:1f00:1::ab'), 'fd74:6c70:1f00:1::ab');
    assert.equal(canonicalIpv6('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1', 'the first longest zero run is compressed');
    assert.equal(canonicalIpv6('2001:0db8:0000:0001:0000:0000:0000:0001'), '2001:db8:0:1::1');
    assert.equal(canonicalIpv6('::'), '::');
  });

  test('anything else is undefined', () => {
    for (const text of ['', '1.2.3.4', '88.100.1/pump-1', 'fd74::g', 'fd74:6c70:1f00:1::/64', ':::', '1:2:3:4:5:6:7:8:9']) {
      assert.equal(canonicalIpv6(text), undefined, text);
    }
  });
});
