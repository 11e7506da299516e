/** One JSON call against a node's HTTP API, as the tests make it. */
export interface ApiInit {
  method?: string;
  body?: unknown;
  /** Bearer secret; `null` sends none. Without it the caller's default applies. */
  auth?: string | null;
  raw?: string | Buffer;
  headers?: Record<string, string>;
}

/** Sends the request and hands back the status and the body (parsed when it is JSON, else the text). */
export async function callApi<T>(
  baseUrl: string,
  path: string,
  init: ApiInit,
  defaultAuth: string | null,
): Promise<{ status: number; body: T }> {
  const headers: Record<string, string> = { ...init.headers };
  const auth = init.auth === undefined ? defaultAuth : init.auth;
  if (auth !== null) headers.authorization = `Bearer ${auth}`;
  let body: string | Buffer | undefined;
  if (init.raw !== undefined) {
    body = init.raw;
    headers['content-type'] ??= 'application/json';
  } else if (init.body !== undefined) {
    body = JSON.stringify(init.body);
    headers['content-type'] = 'application/json';
  }
  const response = await fetch(`${baseUrl}${path}`, { method: init.method ?? 'GET', headers, body });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON (metrics text): hand it back as is
  }
  return { status: response.status, body: parsed as T };
}
