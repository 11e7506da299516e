/**
 * The console's only way to the node: every request carries the bearer of the sign-in (a session
 * token or an API key), every failure becomes an ApiError with a kind and a sentence that says
 * what to do.
 */

export type ErrorKind =
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'invalid'
  | 'too_large'
  | 'unavailable'
  | 'precondition'
  | 'network'
  | 'internal';

export class ApiError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly status: number,
    readonly details?: unknown,
    /** The server's own sentence, without the console's advice: for screens that explain a refusal themselves. */
    readonly serverMessage?: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const KIND_BY_STATUS: Record<number, ErrorKind> = {
  400: 'invalid',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  413: 'too_large',
  428: 'precondition',
  503: 'unavailable',
};

/** Maps a failed response (status and parsed body, if any) to an ApiError with advice. */
export function toApiError(status: number, body: unknown): ApiError {
  const record = body && typeof body === 'object' ? (body as { error?: unknown; message?: unknown; details?: unknown }) : {};
  const serverMessage = typeof record.message === 'string' ? record.message : undefined;
  const kind: ErrorKind = KIND_BY_STATUS[status] ?? (status >= 500 ? 'internal' : 'invalid');
  const advice: Record<ErrorKind, string> = {
    unauthorized: 'You are not signed in, or your session has ended. Sign in again.',
    forbidden: 'Your role may not do that: ask an administrator of this tenant.',
    not_found: 'Not found: it may have been deleted.',
    conflict: 'Someone else changed this first. Reload and try again.',
    invalid: 'The request was refused.',
    too_large: 'The request is too large.',
    unavailable: 'The node is not ready (starting or shutting down). Try again in a moment.',
    precondition: 'The current version is needed. Reload and try again.',
    network: 'The node cannot be reached.',
    internal: 'The node failed to answer; its log has the details.',
  };
  const message = serverMessage ? `${advice[kind]} (${serverMessage})` : `${advice[kind]} (HTTP ${status})`;
  return new ApiError(kind, kind === 'invalid' && serverMessage ? serverMessage : message, status, record.details, serverMessage);
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export class ApiClient {
  constructor(
    /** Bearer of the sign-in; '' sends none (signing in, public endpoints). */
    private readonly bearer: string,
    /** Told of every 401 (the sign-in ended) and 403 (the role may not: it may have changed). */
    private readonly onRefused: (error: ApiError) => void = () => {},
    private readonly fetcher: FetchLike = (input, init) => fetch(input, init),
    readonly baseUrl = '',
  ) {}

  async request<T>(path: string, options: RequestOptions = {}): Promise<T> {
    const headers: Record<string, string> = { ...this.authorization(), accept: 'application/json', ...options.headers };
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    let response: Response;
    try {
      response = await this.fetcher(`${this.baseUrl}${path}`, { method: options.method ?? 'GET', headers, body, signal: options.signal });
    } catch (error) {
      if ((error as Error).name === 'AbortError') throw error;
      throw new ApiError('network', 'The node cannot be reached. Check that it is running, then retry.', 0);
    }
    const text = await response.text();
    let parsed: unknown;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    if (!response.ok) {
      const error = toApiError(response.status, parsed);
      if (error.kind === 'unauthorized' || error.kind === 'forbidden') this.onRefused(error);
      throw error;
    }
    return parsed as T;
  }

  private authorization(): Record<string, string> {
    return this.bearer ? { authorization: `Bearer ${this.bearer}` } : {};
  }

  get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return this.request<T>(path, { signal });
  }

  /** Plain text (Prometheus /metrics). */
  async text(path: string, signal?: AbortSignal): Promise<string> {
    const response = await this.fetcher(`${this.baseUrl}${path}`, { headers: this.authorization(), signal });
    if (!response.ok) throw toApiError(response.status, undefined);
    return response.text();
  }

  /**
   * ws(s):// URL of a device's live telemetry stream. Browsers cannot set headers on WebSockets, and
   * a bearer in a URL ends up in logs and histories: the bearer buys a single-use ticket (in a header) instead.
   */
  async streamUrl(deviceId: string, location: { protocol: string; host: string } = window.location): Promise<string> {
    const { ticket } = await this.request<{ ticket: string }>('/api/v1/stream-tickets', { method: 'POST' });
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/api/v1/devices/${encodeURIComponent(deviceId)}/stream?ticket=${encodeURIComponent(ticket)}`;
  }
}

export const path = {
  device: (id: string) => `/api/v1/devices/${encodeURIComponent(id)}`,
};
