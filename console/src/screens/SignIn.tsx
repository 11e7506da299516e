import { type FormEvent, useState } from 'react';
import { ApiClient, ApiError } from '../api/client';

interface SignInProps {
  message?: string;
  onSignedIn: (key: string) => void;
}

/** Asks for the admin key and checks it against the node before keeping it for this browser tab. */
export function SignIn({ message, onSignedIn }: SignInProps) {
  const [key, setKey] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const trimmed = key.trim();
    if (!trimmed) {
      setError('Enter the API key: the node prints it when it starts (or set it with THINGLOOP_ADMIN_KEY).');
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      await new ApiClient(trimmed).get('/api/v1/node');
      onSignedIn(trimmed);
    } catch (caught) {
      setError(
        caught instanceof ApiError && caught.kind === 'unauthorized'
          ? 'That key was refused. Use the admin key the node printed when it started.'
          : caught instanceof Error
            ? caught.message
            : String(caught),
      );
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="signin">
      <form onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">Thingloop</h1>
        <p>Sign in with the node's admin API key.</p>
        {message && (
          <p className="notice" role="alert">
            {message}
          </p>
        )}
        <label htmlFor="api-key">API key</label>
        <input
          id="api-key"
          name="api-key"
          type="password"
          autoComplete="current-password"
          value={key}
          onChange={(event) => setKey(event.target.value)}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? 'signin-error' : undefined}
        />
        {error && (
          <p id="signin-error" className="field-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <p className="hint">The key is kept only in this tab (session storage) and is sent with every request.</p>
      </form>
    </main>
  );
}
