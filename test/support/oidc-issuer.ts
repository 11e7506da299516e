/**
 * A local OpenID Connect provider in its own process (test/support/oidc-issuer-process.ts), and a
 * scripted browser for it: follows the provider's redirects with fetch, keeps its cookies, fills
 * in the login and consent forms, and stops at the relying party's redirect URI.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { IssuerSetup } from './oidc-issuer-process.js';
import { REPO_ROOT } from './process-node.js';

export type { IssuerSetup };

/** Only guards against hangs: a cold tsx start on a loaded machine. */
const START_LIMIT_MS = 30_000;

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

export interface OidcIssuer {
  url: URL;
  /** Kills the process and waits for it to end. */
  stop(): Promise<void>;
}

export async function startOidcIssuer(setup: IssuerSetup): Promise<OidcIssuer> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/oidc-issuer-process.ts', JSON.stringify(setup)], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const exited = new Promise<void>((resolve) => {
    child.once('close', () => {
      children.delete(child);
      resolve();
    });
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const url = await new Promise<URL>((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`the OIDC issuer did not start: ${stderr}`)), START_LIMIT_MS);
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const match = /oidc issuer at (\S+)/.exec(stdout);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(new URL(match[1]));
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`the OIDC issuer exited before it listened: ${stderr}`));
    });
  });
  return {
    url,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Cookies by name: the provider's cookies have distinct names, so paths can be ignored. */
class CookieJar {
  private readonly cookies = new Map<string, string>();

  take(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const pair = line.split(';', 1)[0] ?? '';
      const at = pair.indexOf('=');
      if (at < 1) continue;
      const name = pair.slice(0, at);
      const value = pair.slice(at + 1);
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  header(): string {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }
}

/**
 * Signs `account` in at the provider, starting from the authorization URL the relying party
 * built, and returns the URL the provider sends the browser back to (the redirect URI with a
 * code and state, or an error).
 */
export async function signInAtIssuer(authorizationUrl: URL, account: string, redirectUri: string): Promise<URL> {
  const jar = new CookieJar();
  let next: { url: URL; init: RequestInit } = { url: authorizationUrl, init: { method: 'GET' } };
  for (let step = 0; step < 20; step++) {
    if (next.url.href.startsWith(redirectUri)) return next.url;
    const response = await fetch(next.url, {
      ...next.init,
      redirect: 'manual',
      headers: { ...(next.init.headers as Record<string, string> | undefined), cookie: jar.header() },
    });
    jar.take(response);
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location) {
      await response.body?.cancel();
      next = { url: new URL(location, next.url), init: { method: 'GET' } };
      continue;
    }
    const page = await response.text();
    const action = /<form[^>]*action="([^"]+)"/.exec(page)?.[1];
    const prompt = /name="prompt" value="([^"]+)"/.exec(page)?.[1];
    if (response.status !== 200 || !action || !prompt) {
      throw new Error(`the provider answered ${response.status} without a form to fill: ${page.slice(0, 500)}`);
    }
    const form = new URLSearchParams({ prompt });
    if (prompt === 'login') {
      form.set('login', account);
      form.set('password', 'any password');
    }
    next = {
      url: new URL(action.replaceAll('&amp;', '&'), next.url),
      init: { method: 'POST', body: form.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } },
    };
  }
  throw new Error('the provider kept redirecting');
}
