/**
 * A real OpenID Connect provider (`oidc-provider`) for the sign-in tests, run as its own process
 * by test/support/oidc-issuer.ts: `node --import tsx test/support/oidc-issuer-process.ts '<json>'`.
 * It listens on a free port of 127.0.0.1, prints `oidc issuer at <url>` and serves until killed.
 * The login and consent pages are the provider's development interactions: any listed account
 * signs in with any password, which a test submits with fetch.
 */
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

export interface IssuerClient {
  clientId: string;
  clientSecret: string;
  redirectUris: string[];
}

export interface IssuerSetup {
  clients: IssuerClient[];
  /** Accounts by id (the `sub`), with the claims the provider releases for them. */
  accounts: Record<string, Record<string, unknown>>;
  /**
   * Accounts whose ID token is re-signed, with the provider's own key, for another audience:
   * what a token minted for a different client looks like to this one.
   */
  foreignAudience?: Record<string, string>;
}

const setup = JSON.parse(process.argv[2] ?? '{}') as IssuerSetup;

const EMAIL_CLAIMS = ['email', 'email_verified'];
const PROFILE_CLAIMS = ['preferred_username', 'name'];
const otherClaims = [...new Set(Object.values(setup.accounts).flatMap((claims) => Object.keys(claims)))].filter(
  (name) => !EMAIL_CLAIMS.includes(name) && !PROFILE_CLAIMS.includes(name),
);

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key', alg: 'RS256', use: 'sig' };

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: setup.clients.map((client) => ({
      client_id: client.clientId,
      client_secret: client.clientSecret,
      redirect_uris: client.redirectUris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
    })),
    jwks: { keys: [signingKey] },
    cookies: { keys: ['oidc-issuer-test-cookie-key'] },
    // The accounts' other claims (tenant, role) come with `openid`, as a claim mapper of a real
    // issuer would add them; like a strict issuer, this one keeps scope claims out of the ID token.
    claims: {
      openid: ['sub', ...otherClaims],
      email: [...EMAIL_CLAIMS],
      profile: [...PROFILE_CLAIMS],
    },
    features: { devInteractions: { enabled: true } },
    findAccount: async (_ctx: unknown, sub: string) => {
      const claims = setup.accounts[sub];
      if (!claims) return undefined;
      return { accountId: sub, claims: async () => ({ ...claims, sub }) };
    },
  });
  const handle = provider.callback();
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    if (setup.foreignAudience && request.method === 'POST' && request.url?.startsWith('/token')) {
      forgeAudience(response, setup.foreignAudience, privateKey);
    }
    handle(request, response);
  });
  process.stdout.write(`oidc issuer at ${issuer}\n`);
});

/** Rewrites the `aud` of the ID token in a token response for the listed accounts, re-signed. */
function forgeAudience(response: ServerResponse, audiences: Record<string, string>, key: KeyObject): void {
  const chunks: Buffer[] = [];
  const write = response.write.bind(response);
  const end = response.end.bind(response);
  response.write = ((chunk: unknown) => {
    if (chunk) chunks.push(Buffer.from(chunk as Buffer));
    return true;
  }) as typeof response.write;
  response.end = ((chunk?: unknown) => {
    if (chunk && typeof chunk !== 'function') chunks.push(Buffer.from(chunk as Buffer));
    let body = Buffer.concat(chunks).toString('utf8');
    try {
      const tokens = JSON.parse(body) as { id_token?: string };
      if (tokens.id_token) {
        const [header, payload] = tokens.id_token.split('.');
        const claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8')) as { sub: string; aud: string };
        const audience = audiences[claims.sub];
        if (audience) {
          const forged = `${header}.${Buffer.from(JSON.stringify({ ...claims, aud: audience })).toString('base64url')}`;
          tokens.id_token = `${forged}.${sign('sha256', Buffer.from(forged), key).toString('base64url')}`;
          body = JSON.stringify(tokens);
        }
      }
    } catch {
      // Not a token response (an error page): passed on unchanged.
    }
    response.setHeader('content-length', Buffer.byteLength(body));
    write(body);
    return end();
  }) as typeof response.end;
}
