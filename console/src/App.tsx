import { type MouseEvent, useCallback, useMemo, useState } from 'react';
import { ApiClient, type ApiError } from './api/client';
import { href, navigate, type Route, useRoute } from './lib/router';
import { ApiContext, storedKey, storeKey } from './lib/session';
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

export function App() {
  const [key, setKey] = useState<string | null>(storedKey);
  const [message, setMessage] = useState<string | undefined>();
  const route = useRoute();

  const signOut = useCallback((why?: string) => {
    storeKey(null);
    setKey(null);
    setMessage(why);
  }, []);

  const api = useMemo(
    () =>
      key
        ? new ApiClient(key, (error: ApiError) => signOut(`Your session ended: the API key was refused (${error.message}). Sign in again.`))
        : null,
    [key, signOut],
  );

  if (!api) {
    return (
      <SignIn
        message={message}
        onSignedIn={(next) => {
          storeKey(next);
          setMessage(undefined);
          setKey(next);
        }}
      />
    );
  }

  return (
    <ApiContext.Provider value={api}>
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
          <button type="button" className="link" onClick={() => signOut('Signed out.')}>
            Sign out
          </button>
        </header>
        <main id="main" tabIndex={-1}>
          <Screen route={route} />
        </main>
      </div>
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
