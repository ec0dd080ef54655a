// Test OAuth2 authorization server for bearer-refresh integration tests.
//
// It runs the real `oauth2-mock-server` package (pinned in package.json) and
// layers on top, through the package's own extension points, the behaviours
// the Rust tests need but the package does not implement: client
// authentication, refresh-token rotation and reuse detection, scope policing,
// a short configurable token lifetime, per-request statistics and failure
// injection.
//
// Extension points used (oauth2-mock-server 9.3.0; there is no Express any
// more since 9.0, so no middleware can be inserted in front of /token):
//   service.on('beforeTokenSigning', (token /* {header,payload} */, req) => {})
//   service.on('beforeResponse', (response /* {body,statusCode} */, req) => {})
//   service.addRoute(method, path, async (req, res) => {})  // req.body/req.query parsed
// In both token hooks `req` is Node's IncomingMessage with `req.body` already
// parsed (form-urlencoded or JSON) by the package.
//
// Usage:  node server.mjs            (spawn with stdin PIPED: EOF on stdin = exit)
// Prints exactly one stdout line once listening:  READY http://127.0.0.1:<port>
// Environment (all optional):
//   TOKEN_TTL_SECS     access-token lifetime: `expires_in` and JWT `exp` (default 3600)
//   CLIENT_ID, CLIENT_SECRET  when either is set, client auth is enforced
//   REFRESH_TOKENS=1   client_credentials responses also carry a refresh_token
//   SEED_REFRESH_TOKEN a refresh token that is valid (once) from the start
//   SEED_SCOPE         scope originally granted with SEED_REFRESH_TOKEN
//   ALLOWED_SCOPES     space separated; requesting anything else -> invalid_scope
//   EXIT_ON_STDIN_EOF=0  keep running when stdin closes (manual runs with </dev/null)

import { randomUUID } from 'node:crypto';
import { OAuth2Server, Events } from 'oauth2-mock-server';

const env = process.env;

// Lifetime: the Rust test holds our stdin pipe; when the test (or its Child
// handle) goes away the pipe closes and we must not linger as an orphan.
// Installed before anything else: a parent that sends SIGTERM right after
// reading READY must hit our handler (clean exit 0), not the default action.
const shutdown = () => process.exit(0);
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (process.env.EXIT_ON_STDIN_EOF !== '0') {
  process.stdin.on('end', shutdown);
  process.stdin.on('close', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume(); // flowing mode, otherwise 'end' is never emitted
}

const TTL = env.TOKEN_TTL_SECS ? Number.parseInt(env.TOKEN_TTL_SECS, 10) : 3600;
if (!Number.isInteger(TTL) || TTL < 0) {
  console.error(`bad TOKEN_TTL_SECS: ${env.TOKEN_TTL_SECS}`);
  process.exit(2);
}
// Either variable alone still turns enforcement on (missing half = ''), so a
// test that forgets one of them fails loudly instead of silently passing.
const ENFORCE_CLIENT = env.CLIENT_ID !== undefined || env.CLIENT_SECRET !== undefined;
const CLIENT_ID = env.CLIENT_ID ?? '';
const CLIENT_SECRET = env.CLIENT_SECRET ?? '';
const CC_REFRESH = env.REFRESH_TOKENS === '1';
const ALLOWED = env.ALLOWED_SCOPES !== undefined ? new Set(splitScope(env.ALLOWED_SCOPES)) : null;

// ---------------------------------------------------------------- state ----

// refresh token -> { used: bool, scope: string|undefined }. Tokens are never
// deleted, only marked used, so a second presentation can be told apart from
// an unknown token (both are invalid_grant; only reuse bumps the counter).
const refreshTokens = new Map();
if (env.SEED_REFRESH_TOKEN) {
  refreshTokens.set(env.SEED_REFRESH_TOKEN, { used: false, scope: env.SEED_SCOPE || undefined });
}
let rtCounter = 0;
let jtiCounter = 0;

let stats = freshStats();
function freshStats() {
  return { grants: {}, requests: [], reused_refresh_tokens: 0 };
}

// Failure injection, set through POST /control.
let failNext = 0;
let failStatus = 503;
let failBody = null;

// One decision per token request. Both hooks receive the same `req` object,
// and beforeTokenSigning runs first (and runs twice for grants that also
// mint an id_token), so the decision is memoised per request: side effects
// such as consuming a refresh token or counting stats must happen once.
const decisions = new WeakMap();

// --------------------------------------------------------------- helpers ----

function splitScope(s) {
  return (s ?? '').split(' ').filter(Boolean);
}

// application/x-www-form-urlencoded decoding of one Basic credential half
// (RFC 6749 §2.3.1 says id and secret are form-encoded before base64).
// The package itself uses `basic-auth`, which does NOT do this; we parse the
// header ourselves rather than reuse its result.
function formDecode(s) {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return null; // malformed %-escape: treated as failed authentication
  }
}

function parseBasic(header) {
  const m = /^\s*Basic\s+([A-Za-z0-9+/=]*)\s*$/i.exec(header ?? '');
  if (!m) return null;
  const raw = Buffer.from(m[1], 'base64').toString('utf8');
  const i = raw.indexOf(':');
  if (i < 0) return null;
  const id = formDecode(raw.slice(0, i));
  const secret = formDecode(raw.slice(i + 1));
  return id === null || secret === null ? null : { id, secret };
}

function oauthError(status, error, description) {
  return { status, body: { error, error_description: description } };
}

function newRefreshToken(scope) {
  // Counter + uuid: unique, and the counter makes transcripts readable.
  const rt = `rt-${++rtCounter}-${randomUUID()}`;
  refreshTokens.set(rt, { used: false, scope });
  return rt;
}

// ------------------------------------------------------------ decision ----

// Validates a token request and returns
//   { error: {status, body} }  or  { scope }   (scope = granted scope or undefined)
// plus bookkeeping. Called lazily from whichever hook sees the request first.
function decide(req) {
  let d = decisions.get(req);
  if (d) return d;

  const body = req.body ?? {};
  const grant = body.grant_type;
  const authz = req.headers.authorization;
  const basic = authz !== undefined ? parseBasic(authz) : null;
  const auth = authz !== undefined && /^\s*Basic\b/i.test(authz)
    ? 'basic'
    : body.client_secret !== undefined ? 'post' : 'none';

  const record = {
    grant_type: grant,
    auth,
    has_authorization_header: authz !== undefined,
    client_id: auth === 'basic' ? basic?.id ?? null : body.client_id ?? null,
    scope: body.scope ?? null,
    // The package only understands `aud` (client_credentials only); many
    // providers (Auth0 etc.) use `audience`. Record whichever was sent.
    audience: body.audience ?? body.aud ?? null,
    refresh_token: body.refresh_token ?? null,
    status: 200,
    error: null,
  };
  stats.grants[grant] = (stats.grants[grant] ?? 0) + 1;
  stats.requests.push(record);

  d = decideInner(body, grant, auth, basic);
  if (d.error) {
    record.status = d.error.status;
    record.error = d.error.body.error ?? null;
  }
  decisions.set(req, d);
  return d;
}

function decideInner(body, grant, auth, basic) {
  // Injected failures come first so they consume nothing (no refresh token
  // is burnt by a request the test made fail on purpose).
  if (failNext > 0) {
    failNext--;
    return {
      error: {
        status: failStatus,
        body: failBody ?? { error: 'temporarily_unavailable', error_description: 'injected failure' },
      },
    };
  }

  // RFC 6749 §2.3: a client MUST NOT use more than one auth method per request.
  // (client_id alone in the body next to Basic is tolerated, as many clients do that.)
  if (auth === 'basic' && body.client_secret !== undefined) {
    return { error: oauthError(400, 'invalid_request', 'multiple client authentication methods') };
  }

  if (ENFORCE_CLIENT) {
    let ok = false;
    if (auth === 'basic') {
      ok = basic !== null && basic.id === CLIENT_ID && basic.secret === CLIENT_SECRET;
      // If client_id is also in the body it must agree with the Basic one.
      if (ok && body.client_id !== undefined && body.client_id !== CLIENT_ID) ok = false;
    } else if (auth === 'post') {
      ok = body.client_id === CLIENT_ID && body.client_secret === CLIENT_SECRET;
    }
    if (!ok) {
      const why = auth === 'none' ? 'client authentication required' : 'client authentication failed';
      return { error: oauthError(401, 'invalid_client', why) };
    }
  }

  const requested = body.scope !== undefined ? splitScope(body.scope) : null;

  let original; // scope attached to the presented refresh token
  let rtEntry = null;
  if (grant === 'refresh_token') {
    if (typeof body.refresh_token !== 'string' || body.refresh_token === '') {
      return { error: oauthError(400, 'invalid_request', 'missing refresh_token') };
    }
    rtEntry = refreshTokens.get(body.refresh_token);
    if (!rtEntry) {
      return { error: oauthError(400, 'invalid_grant', 'unknown refresh token') };
    }
    if (rtEntry.used) {
      stats.reused_refresh_tokens++;
      return { error: oauthError(400, 'invalid_grant', 'refresh token already used') };
    }
    original = rtEntry.scope;
  }

  if (requested) {
    const bad = requested.filter((s) =>
      (ALLOWED && !ALLOWED.has(s)) ||
      // RFC 6749 §6: a refresh may narrow but never widen the original grant.
      (original !== undefined && !splitScope(original).includes(s)));
    if (bad.length > 0) {
      return { error: oauthError(400, 'invalid_scope', `scope not allowed: ${bad.join(' ')}`) };
    }
  }

  // Only now, with every check passed, burn the presented refresh token.
  if (rtEntry) rtEntry.used = true;

  // Omitted scope on refresh = the originally granted scope (RFC 6749 §6);
  // this replaces the package's hard-coded "dummy" default.
  const scope = requested ? requested.join(' ') : grant === 'refresh_token' ? original : undefined;
  return { scope };
}

// --------------------------------------------------------------- server ----

const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');

server.service.on(Events.BeforeTokenSigning, (token, req) => {
  const d = decide(req);
  const p = token.payload;
  p.exp = p.iat + TTL; // package hard-codes iat + 3600
  // Without a jti two tokens minted in the same second are byte-identical,
  // which would make "did we get a new token?" assertions meaningless.
  p.jti = `${++jtiCounter}-${randomUUID()}`;
  // The access token is the one the package gives a `scope` key (possibly
  // undefined); the id_token minted for refresh/password/code grants has none.
  if ('scope' in p && !d.error) {
    if (d.scope === undefined) delete p.scope;
    else p.scope = d.scope;
    // Map `audience` (ignored by the package) to the aud claim, unless the
    // package-native `aud` parameter was given.
    const b = req.body ?? {};
    if (b.aud === undefined && b.audience !== undefined) p.aud = b.audience;
  }
});

server.service.on(Events.BeforeResponse, (response, req) => {
  const d = decide(req);
  if (d.error) {
    // The access token was already signed; it is simply thrown away.
    response.statusCode = d.error.status;
    response.body = d.error.body;
    return;
  }
  const b = response.body;
  b.expires_in = TTL;
  if (d.scope === undefined) delete b.scope;
  else b.scope = d.scope;

  // The package answers refresh/password/code grants with an untracked
  // random uuid refresh token and client_credentials with none. Replace /
  // add our own tracked one so that rotation and reuse detection work.
  const grant = req.body.grant_type;
  if ('refresh_token' in b || (grant === 'client_credentials' && CC_REFRESH)) {
    b.refresh_token = newRefreshToken(d.scope);
  }
});

// Test-only introspection of what the server saw.
server.service.addRoute('GET', '/stats', (_req, res) => {
  const body = JSON.stringify(stats);
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(body);
});

// Test-only control. JSON body, all fields optional:
//   {"fail_next": N, "status": 503, "body": {...}}  next N token requests fail
//   {"reset_stats": true}                           clear /stats
//   {"add_refresh_token": "rt", "scope": "a b"}      register a valid refresh token
server.service.addRoute('POST', '/control', (req, res) => {
  const c = req.body ?? {};
  if (c.fail_next !== undefined) {
    failNext = Number(c.fail_next) || 0;
    failStatus = c.status !== undefined ? Number(c.status) : 503;
    failBody = c.body ?? null;
  }
  if (c.reset_stats) stats = freshStats();
  if (typeof c.add_refresh_token === 'string') {
    refreshTokens.set(c.add_refresh_token, { used: false, scope: c.scope ?? undefined });
  }
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ fail_next: failNext, status: failStatus }));
});

await server.start(0, '127.0.0.1');
const base = `http://127.0.0.1:${server.address().port}`;
// The package would set the issuer to http://localhost:<port> for 127.x hosts;
// make `iss` and the discovery document agree with the URL we advertise.
server.issuer.url = base;

process.stdout.write(`READY ${base}\n`);
