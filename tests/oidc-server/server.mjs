// The certified OpenID provider (npm `oidc-provider`, pinned in
// package.json) as the authorization server of bearer-refresh's DPoP,
// private_key_jwt and token-exchange tests. Nobody on the project wrote the
// protocol side: this file only configures it and records what it saw.
//
// Usage:  node server.mjs            (spawn with stdin PIPED: EOF on stdin = exit)
// Prints exactly one stdout line once listening:  READY http://127.0.0.1:<port>
// (the issuer; the token endpoint is <issuer>/token).
//
// Environment (all optional):
//   TOKEN_TTL_SECS        access-token lifetime (default 3600)
//   CLIENT_SECRET         secret of `secret-client` (default "secret")
//   RSA_CLIENT_KEY_PEM    a PEM of `rsa-client`'s key (private or public: only
//                         the public part is kept); without it, no such client
//   EC_CLIENT_KEY_PEM     the same for `ec-client` (P-256)
//   DPOP_REQUIRE_NONCE=0  accept DPoP proofs without a nonce (default: required)
//   EXIT_ON_STDIN_EOF=0   keep running when stdin closes (manual runs)
//
// Clients:
//   secret-client  client_secret_basic; client_credentials and token exchange
//   rsa-client     private_key_jwt with RSA_CLIENT_KEY_PEM; client_credentials, refresh_token
//   ec-client      private_key_jwt with EC_CLIENT_KEY_PEM; client_credentials, refresh_token
//   public-client  no authentication; refresh_token (seed one with /test/refresh-token)
//
// Token exchange (RFC 8693) is a registered grant: any subject token is
// accepted except one that starts with "expired" (invalid_grant), and the
// answer is a bearer access token for the authenticated client.
//
// Test-only routes:
//   GET  /test/stats           every token request: grant, client, the decoded
//                              client assertion and DPoP proof, status, error
//   POST /test/reset           clear the stats
//   POST /test/fail-next       {"count": n} -> the next n token requests are
//                              answered 503 before the provider sees them (they
//                              are recorded, with their client assertion)
//   POST /test/refresh-token   {"scope": "...", "client_id": "..."} ->
//                              {"refresh_token": "..."} for that client (default
//                              public-client; rotating on every use)

import crypto from 'node:crypto';
import http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const env = process.env;

// Installed first, so that a parent's SIGTERM right after READY exits cleanly.
const shutdown = () => process.exit(0);
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (env.EXIT_ON_STDIN_EOF !== '0') {
  process.stdin.on('end', shutdown);
  process.stdin.on('close', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}

const TTL = env.TOKEN_TTL_SECS ? Number.parseInt(env.TOKEN_TTL_SECS, 10) : 3600;
if (!Number.isInteger(TTL) || TTL <= 0) {
  console.error(`bad TOKEN_TTL_SECS: ${env.TOKEN_TTL_SECS}`);
  process.exit(2);
}
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const NO_REDIRECTS = { redirect_uris: [], response_types: [] };

// ------------------------------------------------------------- clients ----

function publicJwk(pem, kid) {
  const { kty, crv, x, y, n, e } = crypto.createPublicKey(pem).export({ format: 'jwk' });
  return Object.fromEntries(
    Object.entries({ kty, crv, x, y, n, e, kid, use: 'sig' }).filter(([, v]) => v !== undefined),
  );
}

const clients = [
  {
    client_id: 'secret-client',
    client_secret: env.CLIENT_SECRET ?? 'secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials', TOKEN_EXCHANGE],
    ...NO_REDIRECTS,
  },
  {
    client_id: 'public-client',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1/callback'],
  },
];
for (const [id, pem] of [['rsa-client', env.RSA_CLIENT_KEY_PEM], ['ec-client', env.EC_CLIENT_KEY_PEM]]) {
  if (pem) {
    clients.push({
      client_id: id,
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: { keys: [publicJwk(pem, `${id}-key`)] },
      // Refresh tokens too, for a confidential client's refresh grant
      // signed with private_key_jwt (seed one with /test/refresh-token).
      grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
    });
  }
}

// --------------------------------------------------------------- server ----

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

// RS256, the clients' default for the tokens the server signs.
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = { ...privateKey.export({ format: 'jwk' }), kid: 'server-1', use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingJwk] },
  clientAuthMethods: ['client_secret_basic', 'private_key_jwt', 'none'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    dPoP: {
      enabled: true,
      nonceSecret: crypto.randomBytes(32),
      requireNonce: () => env.DPOP_REQUIRE_NONCE !== '0',
    },
  },
  // Public clients' refresh tokens rotate on every use (the default does so
  // only while they are not sender-constrained).
  rotateRefreshToken: true,
  ttl: {
    AccessToken: TTL,
    ClientCredentials: TTL,
    RefreshToken: 24 * 3600,
    Grant: 24 * 3600,
  },
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
});

// ------------------------------------------------------- token exchange ----

provider.registerGrantType(
  TOKEN_EXCHANGE,
  async (ctx) => {
    const { params, client } = ctx.oidc;
    if (!params.subject_token || !params.subject_token_type) {
      throw new errors.InvalidRequest('subject_token and subject_token_type are required');
    }
    if (params.subject_token.startsWith('expired')) {
      throw new errors.InvalidGrant('the subject token has expired');
    }
    const token = new provider.ClientCredentials({ client, scope: params.scope || undefined });
    ctx.oidc.entity('ClientCredentials', token);
    const value = await token.save();
    ctx.body = {
      access_token: value,
      issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      token_type: 'Bearer',
      expires_in: token.expiration,
      ...(token.scope ? { scope: token.scope } : {}),
    };
  },
  ['subject_token', 'subject_token_type', 'audience', 'scope', 'requested_token_type', 'actor_token', 'actor_token_type'],
);

// ---------------------------------------------------------------- stats ----

let stats = { requests: [] };

function decodeJwt(jwt) {
  try {
    const [header, payload] = jwt.split('.').slice(0, 2)
      .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')));
    return { header, payload };
  } catch {
    return { malformed: true };
  }
}

// Records every token request once the provider has answered it: its
// parsed parameters are on ctx.oidc then.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.method !== 'POST' || ctx.path !== '/token') return;
  const params = ctx.oidc?.params ?? {};
  const authorization = ctx.get('authorization');
  const proof = ctx.get('dpop');
  const body = typeof ctx.body === 'object' && ctx.body !== null ? ctx.body : {};
  stats.requests.push({
    grant_type: params.grant_type ?? null,
    auth: /^basic /i.test(authorization) ? 'basic'
      : params.client_assertion ? 'jwt'
        : params.client_secret ? 'post' : 'none',
    client_id: ctx.oidc?.client?.clientId ?? params.client_id ?? null,
    client_assertion: params.client_assertion ? decodeJwt(params.client_assertion) : null,
    dpop: proof ? decodeJwt(proof) : null,
    subject_token: params.subject_token ?? null,
    subject_token_type: params.subject_token_type ?? null,
    audience: params.audience ?? null,
    resource: params.resource ?? null,
    requested_token_type: params.requested_token_type ?? null,
    scope: params.scope ?? null,
    status: ctx.status,
    error: body.error ?? null,
    token_type: body.token_type ?? null,
    dpop_nonce: ctx.response.get('dpop-nonce') || null,
  });
});

// ------------------------------------------------------ test-only routes ----

async function readText(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function readJson(req) {
  const text = await readText(req);
  return text ? JSON.parse(text) : {};
}

function reply(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function seedRefreshToken(input) {
  const client = await provider.Client.find(input.client_id ?? 'public-client');
  if (!client) throw new Error(`no client ${input.client_id}`);
  const scope = input.scope ?? 'openid offline_access';
  const grant = new provider.Grant({ clientId: client.clientId, accountId: 'user-1' });
  grant.addOIDCScope(scope);
  const grantId = await grant.save();
  const refreshToken = new provider.RefreshToken({
    client,
    accountId: 'user-1',
    grantId,
    scope,
    gty: 'authorization_code',
  });
  return { refresh_token: await refreshToken.save() };
}

let failNext = 0;

// A token request answered 503 in the provider's place: recorded as the
// stats middleware would, from the form it carried.
async function fail(req, res) {
  const params = Object.fromEntries(new URLSearchParams(await readText(req)));
  stats.requests.push({
    grant_type: params.grant_type ?? null,
    auth: params.client_assertion ? 'jwt' : 'other',
    client_id: params.client_id ?? null,
    client_assertion: params.client_assertion ? decodeJwt(params.client_assertion) : null,
    dpop: req.headers.dpop ? decodeJwt(req.headers.dpop) : null,
    subject_token: params.subject_token ?? null,
    status: 503,
    error: 'temporarily_unavailable',
  });
  return reply(res, 503, { error: 'temporarily_unavailable' });
}

const providerCallback = provider.callback();
server.on('request', async (req, res) => {
  try {
    if (req.url === '/token' && req.method === 'POST' && failNext > 0) {
      failNext -= 1;
      return await fail(req, res);
    }
    if (req.url === '/test/fail-next' && req.method === 'POST') {
      failNext = (await readJson(req)).count ?? 0;
      return reply(res, 200, {});
    }
    if (req.url === '/test/stats' && req.method === 'GET') return reply(res, 200, stats);
    if (req.url === '/test/reset' && req.method === 'POST') {
      stats = { requests: [] };
      return reply(res, 200, {});
    }
    if (req.url === '/test/refresh-token' && req.method === 'POST') {
      return reply(res, 200, await seedRefreshToken(await readJson(req)));
    }
  } catch (err) {
    return reply(res, 500, { error: String(err) });
  }
  return providerCallback(req, res);
});

process.stdout.write(`READY ${issuer}\n`);
