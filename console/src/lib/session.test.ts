import { describe, expect, it, vi } from 'vitest';
import { deniedReason, describeMe, type Me, parseCredential, sessionFromFragment, takeSessionFromLocation } from './session';

const bob: Me = { tenant: 'bravo', role: 'viewer', actor: 'user:bob', permissions: ['devices:read', 'alarms:read'] };

describe('stored credential', () => {
  it('reads a session or a key back, and nothing else', () => {
    expect(parseCredential(JSON.stringify({ kind: 'session', token: 'tlu_1' }))).toEqual({ kind: 'session', token: 'tlu_1' });
    expect(parseCredential(JSON.stringify({ kind: 'key', token: 'tlk_1' }))).toEqual({ kind: 'key', token: 'tlk_1' });
    expect(parseCredential(null)).toBeNull();
    expect(parseCredential('')).toBeNull();
    expect(parseCredential('not json')).toBeNull();
    expect(parseCredential(JSON.stringify({ kind: 'cookie', token: 'x' }))).toBeNull();
    expect(parseCredential(JSON.stringify({ kind: 'session', token: '' }))).toBeNull();
    expect(parseCredential(JSON.stringify({ kind: 'session', token: 7 }))).toBeNull();
    expect(parseCredential('null')).toBeNull();
  });
});

describe('session handed back in the URL fragment', () => {
  it('finds #session=<token>, decoded, and ignores other fragments', () => {
    expect(sessionFromFragment('#session=tlu_abc%2Fdef')).toBe('tlu_abc/def');
    expect(sessionFromFragment('session=tlu_abc')).toBe('tlu_abc');
    expect(sessionFromFragment('#main')).toBeNull();
    expect(sessionFromFragment('')).toBeNull();
    expect(sessionFromFragment('#session=')).toBeNull();
  });

  it('takes the token and clears the fragment without a new history entry, keeping path and query', () => {
    const replaceState = vi.fn();
    const taken = takeSessionFromLocation(
      { hash: '#session=tlu_xyz', pathname: '/devices', search: '?q=pump' },
      { replaceState, state: { from: 'oidc' } },
    );
    expect(taken).toEqual({ kind: 'session', token: 'tlu_xyz' });
    expect(replaceState).toHaveBeenCalledExactlyOnceWith({ from: 'oidc' }, '', '/devices?q=pump');
  });

  it('leaves the address alone when there is no session in it', () => {
    const replaceState = vi.fn();
    expect(takeSessionFromLocation({ hash: '#main', pathname: '/', search: '' }, { replaceState, state: null })).toBeNull();
    expect(replaceState).not.toHaveBeenCalled();
  });
});

describe('what the role may do', () => {
  it('allows what /me lists and explains the rest', () => {
    expect(deniedReason(bob, 'alarms:read')).toBeUndefined();
    expect(deniedReason(bob, 'decisions:approve')).toBe(
      'Your role (viewer) may not approve or reject decisions: it needs the decisions:approve permission.',
    );
    expect(deniedReason(bob, 'alarms:ack')).toMatch(/acknowledge or clear alarms/);
    expect(deniedReason(bob, 'something:new')).toMatch(/may not do this: it needs the something:new permission/);
  });

  it('does not guess before /me answered (the server refuses anyway)', () => {
    expect(deniedReason(null, 'decisions:approve')).toBeUndefined();
  });

  it('says who is signed in where', () => {
    expect(describeMe(bob)).toBe('bravo · user:bob · viewer');
  });
});
