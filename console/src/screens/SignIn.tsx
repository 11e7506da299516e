import { type FormEvent, useEffect, useState } from 'react';
import { DEFAULT_TENANT, OIDC_LOGIN_PATH, oidcOffered, signInWithPassword, whoAmI } from '../api/auth';
import { ApiClient, ApiError } from '../api/client';
import type { Credential, Me } from '../lib/session';

interface SignInProps {
  message?: string;
  onSignedIn: (credential: Credential, me: Me) => void;
}

type Mode = 'password' | 'key';

function messageOf(caught: unknown, refused: string): string {
  if (caught instanceof ApiError && caught.kind === 'unauthorized') return refused;
  return caught instanceof Error ? caught.message : String(caught);
}

/**
 * People sign in with a username and password (or their organisation's sign-in, when the node
 * offers it); programs' API keys still work, as the secondary way in. The credential is checked
 * against the node (GET /api/v1/me) before the console keeps it for this tab.
 */
export function SignIn({ message, onSignedIn }: SignInProps) {
  const [mode, setMode] = useState<Mode>('password');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [tenant, setTenant] = useState('');
  const [key, setKey] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const [oidc, setOidc] = useState(false);

  useEffect(() => {
    let current = true;
    oidcOffered().then(
      (offered) => current && setOidc(offered),
      () => undefined,
    );
    return () => {
      current = false;
    };
  }, []);

  const finish = async (credential: Credential) => {
    const me = await whoAmI(new ApiClient(credential.token));
    onSignedIn(credential, me);
  };

  const submitPassword = async (event: FormEvent) => {
    event.preventDefault();
    if (!username.trim() || !password) {
      setError('Enter your username and password.');
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      await finish(await signInWithPassword({ tenant, username, password }));
    } catch (caught) {
      setError(messageOf(caught, 'Unknown user or wrong password for this tenant (or the user is disabled). Check the tenant, too.'));
    } finally {
      setBusy(false);
    }
  };

  const submitKey = async (event: FormEvent) => {
    event.preventDefault();
    const trimmed = key.trim();
    if (!trimmed) {
      setError('Enter the API key: the node prints its admin key when it starts (or set it with THINGLOOP_ADMIN_KEY).');
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      await finish({ kind: 'key', token: trimmed });
    } catch (caught) {
      setError(messageOf(caught, 'That key was refused. Use a key issued for your tenant, or the admin key the node printed.'));
    } finally {
      setBusy(false);
    }
  };

  const switchTo = (next: Mode) => {
    setMode(next);
    setError(undefined);
  };

  const errorLine = error && (
    <p id="signin-error" className="field-error" role="alert">
      {error}
    </p>
  );
  const notice = message && (
    <p className="notice" role="alert">
      {message}
    </p>
  );
  const describedBy = error ? 'signin-error' : undefined;

  if (mode === 'key') {
    return (
      <main className="signin">
        <form onSubmit={submitKey} aria-labelledby="signin-title">
          <h1 id="signin-title">Thingloop</h1>
          <p>Sign in with an API key.</p>
          {notice}
          <label htmlFor="api-key">API key</label>
          <input
            id="api-key"
            name="api-key"
            type="password"
            autoComplete="current-password"
            value={key}
            onChange={(event) => setKey(event.target.value)}
            aria-invalid={error ? true : undefined}
            aria-describedby={describedBy}
          />
          {errorLine}
          <button type="submit" disabled={busy}>
            {busy ? 'Signing in…' : 'Sign in'}
          </button>
          <button type="button" className="secondary" onClick={() => switchTo('password')}>
            Use a username and password instead
          </button>
          <p className="hint">The key is kept only in this tab (session storage) and is sent with every request.</p>
        </form>
      </main>
    );
  }

  return (
    <main className="signin">
      <form onSubmit={submitPassword} aria-labelledby="signin-title">
        <h1 id="signin-title">Thingloop</h1>
        <p>Sign in to your tenant.</p>
        {notice}
        <label htmlFor="signin-username">Username</label>
        <input
          id="signin-username"
          name="username"
          autoComplete="username"
          value={username}
          onChange={(event) => setUsername(event.target.value)}
          aria-invalid={error ? true : undefined}
          aria-describedby={describedBy}
        />
        <label htmlFor="signin-password">Password</label>
        <input
          id="signin-password"
          name="password"
          type="password"
          autoComplete="current-password"
          value={password}
          onChange={(event) => setPassword(event.target.value)}
          aria-invalid={error ? true : undefined}
          aria-describedby={describedBy}
        />
        <label htmlFor="signin-tenant">
          Tenant <span className="muted">(optional)</span>
        </label>
        <input
          id="signin-tenant"
          name="tenant"
          autoComplete="organization"
          placeholder={DEFAULT_TENANT}
          value={tenant}
          onChange={(event) => setTenant(event.target.value)}
          aria-describedby="signin-tenant-hint"
        />
        <span id="signin-tenant-hint" className="hint">
          Left empty: the {DEFAULT_TENANT} tenant.
        </span>
        {errorLine}
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        {oidc && (
          <a className="button secondary" href={OIDC_LOGIN_PATH}>
            Sign in with your organisation
          </a>
        )}
        <button type="button" className="link-quiet" onClick={() => switchTo('key')}>
          Use an API key instead
        </button>
        <p className="hint">The session is kept only in this tab (session storage) and ends when you sign out.</p>
      </form>
    </main>
  );
}
