import { useEffect, useState } from 'react';

export type Route =
  | { name: 'overview' }
  | { name: 'devices'; query: URLSearchParams }
  | { name: 'device'; id: string }
  | { name: 'models' }
  | { name: 'model'; id: string }
  | { name: 'agents' }
  | { name: 'agent'; id: string; query: URLSearchParams }
  | { name: 'decision'; id: string }
  | { name: 'approvals' }
  | { name: 'alarms'; query: URLSearchParams }
  | { name: 'edges' }
  | { name: 'edge'; id: string }
  | { name: 'not-found'; path: string };

export function parseRoute(pathname: string, search: string): Route {
  const parts = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { name: 'overview' };
  if (parts[0] === 'devices' && parts.length === 1) return { name: 'devices', query: new URLSearchParams(search) };
  if (parts[0] === 'devices' && parts.length === 2) return { name: 'device', id: parts[1] as string };
  if (parts[0] === 'models' && parts.length === 1) return { name: 'models' };
  if (parts[0] === 'models' && parts.length === 2) return { name: 'model', id: parts[1] as string };
  if (parts[0] === 'agents' && parts.length === 1) return { name: 'agents' };
  if (parts[0] === 'agents' && parts.length === 2) return { name: 'agent', id: parts[1] as string, query: new URLSearchParams(search) };
  if (parts[0] === 'decisions' && parts.length === 2) return { name: 'decision', id: parts[1] as string };
  if (parts[0] === 'approvals' && parts.length === 1) return { name: 'approvals' };
  if (parts[0] === 'alarms' && parts.length === 1) return { name: 'alarms', query: new URLSearchParams(search) };
  if (parts[0] === 'edges' && parts.length === 1) return { name: 'edges' };
  if (parts[0] === 'edges' && parts.length === 2) return { name: 'edge', id: parts[1] as string };
  return { name: 'not-found', path: pathname };
}

export function navigate(to: string, replace = false): void {
  if (replace) window.history.replaceState(null, '', to);
  else window.history.pushState(null, '', to);
  window.dispatchEvent(new PopStateEvent('popstate'));
}

const read = () => parseRoute(window.location.pathname, window.location.search);

export function useRoute(): Route {
  const [route, setRoute] = useState<Route>(read);
  useEffect(() => {
    const onChange = () => setRoute(read());
    window.addEventListener('popstate', onChange);
    return () => window.removeEventListener('popstate', onChange);
  }, []);
  return route;
}

export const href = {
  overview: () => '/',
  devices: (query?: Record<string, string | undefined>) => {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query ?? {})) if (value) params.set(key, value);
    const text = params.toString();
    return text ? `/devices?${text}` : '/devices';
  },
  device: (id: string) => `/devices/${encodeURIComponent(id)}`,
  models: () => '/models',
  model: (id: string) => `/models/${encodeURIComponent(id)}`,
  agents: () => '/agents',
  agent: (id: string, query?: { device?: string }) =>
    `/agents/${encodeURIComponent(id)}${query?.device ? `?device=${encodeURIComponent(query.device)}` : ''}`,
  decision: (id: string) => `/decisions/${encodeURIComponent(id)}`,
  approvals: () => '/approvals',
  alarms: (query?: { view?: 'history' }) => (query?.view ? `/alarms?view=${query.view}` : '/alarms'),
  edges: () => '/edges',
  edge: (id: string) => `/edges/${encodeURIComponent(id)}`,
};
