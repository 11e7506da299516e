import { type MouseEvent, useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { signOut as endSession, whoAmI } from './api/auth';
import { ApiClient, ApiError } from './api/client';
import { Loading } from './components/states';
import { href, navigate, type Route, useRoute } from './lib/router';
import { ApiContext, type Credential, type Me, MeContext, storeCredential, storedCredential, takeSessionFromLocation } from './lib/session';
import { AgentDetail, Agents } from './screens/Agents';
import { Alarms } from './screens/Alarms';
import { Approvals } from './screens/Approvals';
import { Decision } from './screens/Decision';
import { DeviceDetail } from './screens/DeviceDetail';
import { Devices } from './screens/Devices';
import { EdgeDetail, Edges } from './screens/Edges';
import { ModelDetail, Models } from './screens/Models';
import { Overview } from './screens/Overview';
import { SignIn } from './screens/SignIn';

const NAV: { label: string; to: string; active: (route: Route) => boolean }[] = [
  { label: 'Overview', to: href.overview(), active: (r) => r.name === 'overview' },
  { label: 'Devices', to: href.devices(), active: (r) => r.name === 'devices' || r.name === 'device' },
  { label: 'Edges', to: href.edges(), active: (r) => r.name === 'edges' || r.name === 'edge' },
  { label: 'Models', to: href.models(), active: (r) => r.name === 'models' || r.name === 'model' },
  { label: 'Agents', to: href.agents(), active: (r) => r.name === 'agents' || r.name === 'agent' || r.name === 'decision' },
  { label: 'Approvals', to: href.approvals(), active: (r) => r.name === 'approvals' },
  { label: 'Alarms', to: href.alarms(), active: (r) => r.name === 'alarms' },
];

/** Same-origin links navigate inside the app; modified clicks keep the browser's behaviour. */
function onLinkClick(event: MouseEvent) {
  const anchor = (event.target as HTMLElement).closest('a');
  if (!anchor || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(anchor.href, window.location.href);
  if (url.origin !== window.location.origin || url.pathname.startsWith('/api/') || anchor.target) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
}

/** The credential this tab starts with: one an organisation sign-in just handed back in the URL, else the stored one. */
function initialCredential(): Credential | null {
  const returned = takeSessionFromLocation();
  if (returned) {
    storeCredential(returned);
    return returned;
  }
  return storedCredential();
}

export function App() {
  const [credential, setCredential] = useState<Credential | null>(initialCredential);
  const [me, setMe] = useState<Me | null>(null);
  const [meError, setMeError] = useState<unknown>();
  const [attempt, setAttempt] = useState(0);
  const [message, setMessage] = useState<string | undefined>();
  const route = useRoute();

  const forget = useCallback((why?: string) => {
    storeCredential(null);
    setCredential(null);
    setMe(null);
    setMeError(undefined);
    setMessage(why);
  }, []);

  // A 403 may mean the role changed since /me answered: ask again, so the header and controls follow.
  const recheckRef = useRef<() => void>(() => undefined);
  const api = useMemo(
    () =>
      credential
        ? new ApiClient(credential.token, (error: ApiError) => {
            if (error.kind === 'forbidden') recheckRef.current();
            else
              forget(
                `Your session ended: the node no longer accepts it (${error.serverMessage ?? `HTTP ${error.status}`}). Sign in again.`,
              );
          })
        : null,
    [credential, forget],
  );
  recheckRef.current = () => {
    if (api && me) whoAmI(api).then(setMe, () => undefined);
  };

  // A stored or returned credential: ask the node who it is before showing anything it decides.
  // biome-ignore lint/correctness/useExhaustiveDependencies: a new attempt (Retry) asks again
  useEffect(() => {
    if (!api || me) return;
    const controller = new AbortController();
    whoAmI(api, controller.signal).then(
      (answer) => {
        if (!controller.signal.aborted) setMe(answer);
      },
      (error: unknown) => {
        // A 401 has signed out already (onRefused); anything else is shown with a retry.
        if (!controller.signal.aborted && !(error instanceof ApiError && error.kind === 'unauthorized')) setMeError(error);
      },
    );
    return () => controller.abort();
  }, [api, me, attempt]);

  const signOut = async () => {
    if (credential) await endSession(credential);
    forget('Signed out.');
  };

  if (!api) {
    return (
      <SignIn
        message={message}
        onSignedIn={(next, who) => {
          storeCredential(next);
          setMessage(undefined);
          setMe(who);
          setCredential(next);
        }}
      />
    );
  }

  if (!me) {
    return (
      <main className="signin">
        {meError === undefined ? (
          <Loading what="your sign-in" />
        ) : (
          <div className="state error" role="alert">
            <p>{meError instanceof Error ? meError.message : String(meError)}</p>
            <div className="buttons">
              <button
                type="button"
                onClick={() => {
                  setMeError(undefined);
                  setAttempt((n) => n + 1);
                }}
              >
                Retry
              </button>
              <button type="button" className="secondary" onClick={() => forget()}>
                Sign in again
              </button>
            </div>
          </div>
        )}
      </main>
    );
  }

  return (
    <ApiContext.Provider value={api}>
      <MeContext.Provider value={me}>
        {/* biome-ignore lint/a11y/useKeyWithClickEvents lint/a11y/noStaticElementInteractions: delegates link clicks; links stay keyboard-native */}
        <div className="layout" onClick={onLinkClick}>
          <a className="skip" href="#main">
            Skip to content
          </a>
          <header className="topbar">
            <span className="brand">Thingloop</span>
            <nav aria-label="Main">
              <ul>
                {NAV.map((item) => (
                  <li key={item.to}>
                    <a href={item.to} aria-current={item.active(route) ? 'page' : undefined}>
                      {item.label}
                    </a>
                  </li>
                ))}
              </ul>
            </nav>
            <p className="whoami" data-testid="whoami">
              <span className="sr-only">Signed in: tenant, who, role</span>
              <span data-testid="me-tenant" title="Tenant">
                {me.tenant}
              </span>
              <span data-testid="me-actor" title={credential?.kind === 'key' ? 'API key' : 'User'}>
                {me.actor}
              </span>
              <span className="role" data-testid="me-role" title="Role">
                {me.role}
              </span>
            </p>
            <button type="button" className="link" onClick={signOut}>
              Sign out
            </button>
          </header>
          <main id="main" tabIndex={-1}>
            <Screen route={route} />
          </main>
        </div>
      </MeContext.Provider>
    </ApiContext.Provider>
  );
}

function Screen({ route }: { route: Route }) {
  switch (route.name) {
    case 'overview':
      return <Overview />;
    case 'devices':
      return <Devices query={route.query} />;
    case 'device':
      return <DeviceDetail key={route.id} id={route.id} />;
    case 'models':
      return <Models />;
    case 'model':
      return <ModelDetail key={route.id} id={route.id} />;
    case 'agents':
      return <Agents />;
    case 'agent':
      return <AgentDetail key={route.id} id={route.id} query={route.query} />;
    case 'decision':
      return <Decision key={route.id} id={route.id} />;
    case 'edges':
      return <Edges />;
    case 'edge':
      return <EdgeDetail key={route.id} id={route.id} />;
    case 'approvals':
      return <Approvals />;
    case 'alarms':
      return <Alarms key={route.query.get('view') ?? 'active'} query={route.query} />;
    default:
      return (
        <section>
          <h1>Page not found</h1>
          <p>
            Nothing lives at <code>{route.path}</code>. Go to the <a href={href.overview()}>overview</a>.
          </p>
        </section>
      );
  }
}
