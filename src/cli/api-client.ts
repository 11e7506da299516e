/**
 * The HTTP client of the daily-work commands: one node's API, with the admin key or an API key,
 * in one tenant. Every refusal becomes an `ApiError` whose message says what the person tried
 * and why it failed, in words the command can print as it is.
 */
import type { Command } from 'commander';

/** The header the platform admin names a tenant with (the node's access check reads it). */
const TENANT_HEADER = 'x-thingloop-tenant';

export interface ApiTarget {
  url: string;
  key: string;
  tenant?: string;
}

/** What a call is for, in words: "list devices", and the thing a 404 means is missing ('device "pump-1"'). */
export interface CallPurpose {
  doing: string;
  missing?: string;
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

interface ErrorReply {
  error?: unknown;
  message?: unknown;
  details?: unknown;
}

function isErrorReply(value: unknown): value is ErrorReply {
  return typeof value === 'object' && value !== null;
}

/** The server's problems (an invalid model lists each) as lines under the message. */
function detailLines(details: unknown): string {
  if (!Array.isArray(details) || details.length === 0) return '';
  const lines = details.slice(0, 20).map((detail) => {
    if (typeof detail === 'string') return detail;
    if (isErrorReply(detail) && typeof detail.message === 'string') {
      const where = 'path' in detail && typeof detail.path === 'string' && detail.path ? `${detail.path}: ` : '';
      return `${where}${detail.message}`;
    }
    return JSON.stringify(detail);
  });
  const more = details.length > 20 ? [`… and ${details.length - 20} more`] : [];
  return `\n${[...lines, ...more].map((line) => `  - ${line}`).join('\n')}`;
}

function explain(status: number, body: unknown, purpose: CallPurpose, target: ApiTarget): string {
  const said = isErrorReply(body) && typeof body.message === 'string' ? body.message : '';
  const details = isErrorReply(body) ? detailLines(body.details) : '';
  switch (status) {
    case 401:
      return `the node did not accept this key (401) to ${purpose.doing}: check --key or THINGLOOP_ADMIN_KEY`;
    case 403:
      return `this key cannot ${purpose.doing} (403)${said ? `: ${said}` : ''}`;
    case 404:
      if (purpose.missing && !/^no tenant "/.test(said))
        return `no ${purpose.missing}${target.tenant ? ` in tenant "${target.tenant}"` : ''} (404)`;
      return `cannot ${purpose.doing}: ${said || 'not found'} (404)`;
    case 429:
      return `the node is braking this address after too many wrong keys (429): wait and check --key`;
    default:
      return `cannot ${purpose.doing} (${status})${said ? `: ${said}` : ''}${details}`;
  }
}

export interface RequestOptions {
  body?: unknown;
  /** Sent as is with this content type (YAML agent definitions) instead of JSON. */
  text?: { contentType: string; content: string };
  /** Public routes (readiness) are called without the key. */
  anonymous?: boolean;
  /** Refusal statuses that are an answer here, not an error (503 from /readyz: not ready). */
  answers?: number[];
}

export class ApiClient {
  constructor(private readonly target: ApiTarget) {}

  get url(): string {
    return this.target.url;
  }

  /** Calls the node; returns the status and the parsed JSON reply (undefined for 204), throws an ApiError on 4xx/5xx. */
  async call<T>(method: string, path: string, purpose: CallPurpose, options: RequestOptions = {}): Promise<{ status: number; body: T }> {
    const headers: Record<string, string> = {};
    if (!options.anonymous) headers.authorization = `Bearer ${this.target.key}`;
    if (this.target.tenant !== undefined) headers[TENANT_HEADER] = this.target.tenant;
    let payload: string | undefined;
    if (options.text) {
      headers['content-type'] = options.text.contentType;
      payload = options.text.content;
    } else if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(options.body);
    }
    let response: Response;
    try {
      response = await fetch(new URL(path, this.target.url), { method, headers, ...(payload !== undefined ? { body: payload } : {}) });
    } catch (error) {
      const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
      throw new ApiError(`cannot reach the node at ${this.target.url} (${cause}): is it running? set --url or THINGLOOP_URL`, 0);
    }
    const text = await response.text();
    let body: unknown;
    if (text.length > 0) {
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
    }
    if (response.status >= 400 && !options.answers?.includes(response.status))
      throw new ApiError(explain(response.status, body, purpose, this.target), response.status);
    if (text.length > 0 && body === undefined) {
      throw new ApiError(`cannot ${purpose.doing}: ${this.target.url} answered with something other than JSON: is it a Thingloop node?`, 0);
    }
    return { status: response.status, body: body as T };
  }

  async get<T>(path: string, purpose: CallPurpose): Promise<T> {
    return (await this.call<T>('GET', path, purpose)).body;
  }
}

/** The options every API command has; `--json` is what scripts read. */
export interface ApiOptions {
  url?: string;
  key?: string;
  tenant?: string;
  json?: boolean;
}

const DEFAULT_URL = 'http://localhost:8080';

export function withApiOptions(command: Command): Command {
  return command
    .option('--url <url>', `the node's HTTP API (default THINGLOOP_URL, else ${DEFAULT_URL})`)
    .option('--key <key>', 'admin key or API key (default THINGLOOP_ADMIN_KEY; --key is visible to other users in ps)')
    .option('--tenant <id>', 'act in this tenant (the platform admin key only; API keys act in their own)')
    .option('--json', 'print JSON for scripts instead of a table');
}

/** The client for the command's options and environment; refuses without a key. */
export function clientFor(options: ApiOptions, env: NodeJS.ProcessEnv = process.env): ApiClient {
  const url = options.url ?? env.THINGLOOP_URL ?? DEFAULT_URL;
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('not http(s)');
  } catch {
    throw new Error(`--url "${url}" is not an http:// or https:// URL`);
  }
  const key = options.key ?? env.THINGLOOP_ADMIN_KEY;
  if (!key) throw new Error('no key: pass --key or set THINGLOOP_ADMIN_KEY (an admin key or an API key tlk_…)');
  return new ApiClient({ url, key, ...(options.tenant !== undefined ? { tenant: options.tenant } : {}) });
}
