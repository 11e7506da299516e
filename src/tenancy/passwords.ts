/**
 * Password hashing with scrypt (node:crypto, memory-hard). The stored form carries its own
 * parameters (`$scrypt$ln=15,r=8,p=3$salt$hash`, PHC style), so the defaults can be raised later:
 * old hashes still verify with the parameters they were made with, and are rehashed with the new
 * ones at the next successful sign-in.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { invalid } from '../errors/index.js';

export interface ScryptParameters {
  /** log2 of the cost N. */
  logN: number;
  r: number;
  p: number;
}

/**
 * One of OWASP's scrypt settings (N=2^15, r=8, p=3): 32 MiB per hash, tens of milliseconds on a
 * server core, on libuv's pool so the event loop never waits for it.
 */
export const DEFAULT_SCRYPT: ScryptParameters = { logN: 15, r: 8, p: 3 };
export const MIN_PASSWORD_LENGTH = 12;
/** scrypt takes any length, but hashing megabytes per guess would be a cheap way to load the node. */
export const MAX_PASSWORD_LENGTH = 1024;

const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** Bounds on parameters read back from storage: a corrupted row must not make one check take minutes. */
const MAX_LOG_N = 20;
const MAX_R = 32;
const MAX_P = 16;

/** The password as it is hashed (NFC, so the same characters typed on two systems match), or an invalid error. */
export function acceptablePassword(password: unknown): string {
  if (typeof password !== 'string') throw invalid('a password must be a string');
  const normalized = password.normalize('NFC');
  const length = [...normalized].length;
  if (length < MIN_PASSWORD_LENGTH) throw invalid(`a password must have at least ${MIN_PASSWORD_LENGTH} characters`);
  if (length > MAX_PASSWORD_LENGTH) throw invalid(`a password must have at most ${MAX_PASSWORD_LENGTH} characters`);
  return normalized;
}

function derive(password: string, salt: Buffer, parameters: ScryptParameters): Promise<Buffer> {
  const N = 2 ** parameters.logN;
  // Node refuses more than 32 MiB unless told: allow what these parameters need, with room.
  const maxmem = 256 * N * parameters.r + 1024 * 1024;
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, KEY_BYTES, { N, r: parameters.r, p: parameters.p, maxmem }, (error, key) =>
      error ? reject(error) : resolve(key),
    );
  });
}

export async function hashPassword(password: string, parameters: ScryptParameters = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, parameters);
  return `$scrypt$ln=${parameters.logN},r=${parameters.r},p=${parameters.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

const STORED = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

interface StoredHash {
  parameters: ScryptParameters;
  salt: Buffer;
  key: Buffer;
}

function parse(stored: string): StoredHash | undefined {
  const match = STORED.exec(stored);
  if (!match) return undefined;
  const parameters = { logN: Number(match[1]), r: Number(match[2]), p: Number(match[3]) };
  if (parameters.logN < 1 || parameters.logN > MAX_LOG_N || parameters.r < 1 || parameters.r > MAX_R) return undefined;
  if (parameters.p < 1 || parameters.p > MAX_P) return undefined;
  const key = Buffer.from(match[5] as string, 'base64');
  if (key.length < 16) return undefined;
  return { parameters, salt: Buffer.from(match[4] as string, 'base64'), key };
}

/** The parameters a stored hash was made with; undefined when it is not one this module wrote. */
export function passwordParameters(stored: string): ScryptParameters | undefined {
  return parse(stored)?.parameters;
}

/** Compares in constant time; a malformed stored hash never matches. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parse(stored);
  if (!parsed) return false;
  const key = await derive(password, parsed.salt, parsed.parameters);
  return key.length === parsed.key.length && timingSafeEqual(key, parsed.key);
}

/** True when a hash was made with less work than `wanted` in any parameter (rehash it). */
export function weakerThan(stored: ScryptParameters, wanted: ScryptParameters): boolean {
  return stored.logN < wanted.logN || stored.r < wanted.r || stored.p < wanted.p;
}

/**
 * A hash that verifies nothing, made once with the current parameters: sign-in for an unknown
 * user checks against it, so an attacker cannot tell unknown usernames by the answer's speed.
 */
export async function decoyHash(parameters: ScryptParameters): Promise<string> {
  return hashPassword(randomBytes(32).toString('base64'), parameters);
}
