// The official MCP TypeScript SDK (@modelcontextprotocol/sdk, pinned in
// scripts/sdk/package-lock.json) as a yardstick, the way an MCP host uses it.
//
//   .tools/conformance/node_modules/node/bin/node scripts/sdk/ts-sdk-flow.mjs MCP_URL \
//       [--issuer ISSUER] [--flow all|client_credentials|authorization_code]
//
// --issuer pins the authorization server: the client secret is only sent to
// it (the SDK's `expectedIssuer`), and the authorization response's `iss`
// must equal it. Without it the issuer is the one discovery found.
//
// client_credentials: the SDK's ClientCredentialsProvider (mcp-secure-client
//   and its documented dev secret) discovers the authorization server from the
//   401 (RFC 9728 -> RFC 8414), gets a token, and the client lists the tools
//   and calls get_customer_info {customer_id: "12345"}.
// authorization_code: an OAuthClientProvider for a public client that
//   registers itself (RFC 7591) and drives /authorize without a browser:
//   GET the login page (keeping its cookies), POST the login form as alice,
//   POST the consent form with decision=approve, read the code from the
//   Location of the redirect (never followed: nothing listens there), check
//   state and iss (RFC 9207), hand the code to transport.finishAuth(code);
//   then the same list and call on a new transport.
//
// Prints one JSON line ({"ok": true, ...}); on any failure the line has
// "ok": false and each flow's "error", the message also goes to stderr, and
// the exit status is 1.
//
// The SDK is loaded from .tools/sdk (git-ignored; scripts/install-ci-tools.sh
// installs it; MCP_SDK_DIR overrides), module by module through the package's
// own export map ("./*" -> "./dist/esm/*"), so this script needs no
// node_modules next to it.

import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const SDK_DIR = resolve(process.env.MCP_SDK_DIR ?? join(HERE, '../../.tools/sdk'));
const SDK_PKG = join(SDK_DIR, 'node_modules/@modelcontextprotocol/sdk');

const CLIENT_ID = 'mcp-secure-client';
// The dev client's documented secret (config/clients.toml); never a real one.
const CLIENT_SECRET = 'secure-client-secret-change-in-production';
const USER = { username: 'alice', password: 'alice-dev-password' };
// Loopback, any port (RFC 8252 §7.3): never listened on, the code is read from the Location.
const REDIRECT_URL = 'http://127.0.0.1:53682/callback';
const CUSTOMER_ID = '12345';
const MAX_FORM_STEPS = 8;

class Failed extends Error {
  constructor(step, message) {
    super(`${step}: ${message}`);
    this.step = step;
  }
}

function usage() {
  process.stderr.write('usage: ts-sdk-flow.mjs MCP_URL [--issuer ISSUER] [--flow all|client_credentials|authorization_code]\n');
  process.exit(2);
}

async function loadSdk() {
  let version;
  try {
    version = JSON.parse(readFileSync(join(SDK_PKG, 'package.json'), 'utf8')).version;
  } catch (e) {
    throw new Failed('sdk', `@modelcontextprotocol/sdk is not installed in ${SDK_DIR} (run scripts/install-ci-tools.sh): ${e.message}`);
  }
  const load = (p) => import(pathToFileURL(join(SDK_PKG, 'dist/esm', p)).href);
  const [{ Client }, { StreamableHTTPClientTransport }, { ClientCredentialsProvider }, { UnauthorizedError }] = await Promise.all([
    load('client/index.js'),
    load('client/streamableHttp.js'),
    load('client/auth-extensions.js'),
    load('client/auth.js')
  ]);
  return { version, Client, StreamableHTTPClientTransport, ClientCredentialsProvider, UnauthorizedError };
}

/** The cause chain of an error, one line (the SDK wraps fetch and Zod errors). */
function describe(e) {
  const parts = [];
  for (let x = e; x && parts.length < 5; x = x.cause) {
    parts.push(x instanceof Error ? `${x.name}: ${x.message}` : String(x));
  }
  // One line: Zod's messages are pretty-printed JSON.
  return parts.join(' <- ').replace(/\s+/g, ' ');
}

/** tools/list, then get_customer_info; returns what was seen. */
async function useTools(client, step) {
  step.at = 'tools/list';
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name);
  if (!names.includes('get_customer_info')) throw new Failed(step.at, `get_customer_info not listed: ${names}`);
  step.at = 'tools/call';
  const result = await client.callTool({ name: 'get_customer_info', arguments: { customer_id: CUSTOMER_ID } });
  const text = (result.content ?? []).map((c) => c.text ?? '').join('');
  if (result.isError || !text.includes(CUSTOMER_ID)) {
    throw new Failed(step.at, `get_customer_info answered isError=${result.isError}: ${text.slice(0, 300)}`);
  }
  return { tools: names, customer: text.slice(0, 200) };
}

async function clientCredentials(sdk, mcpUrl, issuer) {
  const step = { at: 'connect' };
  const provider = new sdk.ClientCredentialsProvider({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    ...(issuer ? { expectedIssuer: issuer } : {})
  });
  const client = new sdk.Client({ name: 'secure-mcp-ts-sdk-check', version: '1.0.0' });
  try {
    await client.connect(new sdk.StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider }));
    const seen = await useTools(client, step);
    return { ...seen, scope: provider.tokens()?.scope, protocol: client.getNegotiatedProtocolVersion?.() };
  } catch (e) {
    throw e instanceof Failed ? e : new Failed(step.at, describe(e));
  } finally {
    await client.close().catch(() => {});
  }
}

// --- authorization code ------------------------------------------------------

/** A cookie jar for one origin: name -> value, from Set-Cookie headers. */
class Jar {
  constructor() {
    this.cookies = new Map();
  }
  take(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq > 0) this.cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
  }
  header() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

function decodeEntities(s) {
  return s
    .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function attrs(tag) {
  const out = {};
  for (const m of tag.matchAll(/([a-zA-Z_:-]+)\s*=\s*("([^"]*)"|'([^']*)'|([^\s>]+))/g)) {
    out[m[1].toLowerCase()] = decodeEntities(m[3] ?? m[4] ?? m[5] ?? '');
  }
  return out;
}

/** The forms of a page: action, method, hidden fields, field names, submit buttons. */
function forms(html) {
  const out = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const form = { ...attrs(m[1]), hidden: {}, fields: [], buttons: [] };
    for (const t of m[2].matchAll(/<(input|button)\b([^>]*)>/gi)) {
      const a = attrs(t[2]);
      if (!a.name) continue;
      const type = (a.type ?? (t[1].toLowerCase() === 'button' ? 'submit' : 'text')).toLowerCase();
      if (type === 'hidden') form.hidden[a.name] = a.value ?? '';
      else if (type === 'submit') form.buttons.push({ name: a.name, value: a.value ?? '' });
      else form.fields.push(a.name);
    }
    out.push(form);
  }
  return out;
}

/** A short, tag-free excerpt of a page, for error messages. */
function excerpt(html) {
  if (!html.trim()) return '(empty body)';
  return html.replace(/<(script|style)[\s\S]*?<\/\1>/gi, '').replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 300);
}

/**
 * Drives /authorize like a user in a browser, without one: follows the
 * server's own redirects, submits the login and consent forms, and stops at
 * the redirect to REDIRECT_URL, returning its query parameters.
 */
async function driveAuthorization(authorizationUrl, log) {
  const jar = new Jar();
  const send = async (url, init = {}) => {
    const headers = { ...(init.headers ?? {}) };
    const cookie = jar.header();
    if (cookie) headers.cookie = cookie;
    const r = await fetch(url, { ...init, headers, redirect: 'manual' });
    jar.take(r);
    return r;
  };
  let response = await send(authorizationUrl);
  let url = new URL(authorizationUrl);
  for (let i = 0; i < MAX_FORM_STEPS; i++) {
    if (response.status >= 300 && response.status < 400) {
      const location = response.headers.get('location');
      if (!location) throw new Failed('authorize', `${response.status} without Location`);
      const next = new URL(location, url);
      if (next.href.startsWith(REDIRECT_URL)) {
        log.push('redirect');
        return next.searchParams;
      }
      log.push(`follow ${next.pathname}`);
      url = next;
      response = await send(next);
      continue;
    }
    const html = await response.text();
    if (response.status !== 200) {
      throw new Failed('authorize', `${url.pathname} answered ${response.status}: ${excerpt(html)}`);
    }
    const page = forms(html);
    const login = page.find((f) => f.fields.includes('username') && f.fields.includes('password'));
    const consent = page.find((f) => f.buttons.some((b) => b.name === 'decision' && b.value === 'approve'));
    let form;
    let body;
    if (login) {
      form = login;
      body = { ...login.hidden, ...USER };
      log.push('login');
    } else if (consent) {
      form = consent;
      body = { ...consent.hidden, decision: 'approve' };
      log.push('consent');
    } else {
      throw new Failed('authorize', `neither a login nor a consent form at ${url.pathname}: ${excerpt(html)}`);
    }
    for (const name of ['csrf_token', 'txn']) {
      if (!(name in form.hidden)) throw new Failed('authorize', `the ${log.at(-1)} form has no hidden ${name}`);
    }
    if ((form.method ?? 'post').toLowerCase() !== 'post') throw new Failed('authorize', `the ${log.at(-1)} form is not POST`);
    const action = new URL(form.action || url.pathname, url);
    url = action;
    response = await send(action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: action.origin },
      body: new URLSearchParams(body).toString()
    });
  }
  throw new Failed('authorize', `no redirect to the client after ${MAX_FORM_STEPS} steps (${log.join(', ')})`);
}

/** An interactive host's provider: public client, DCR, PKCE, in memory. */
class HeadlessHostProvider {
  constructor() {
    this.saved = {};
    this.expectedState = undefined;
    this.log = [];
    this.callback = undefined;
    this.authorizeError = undefined;
  }
  get redirectUrl() {
    return REDIRECT_URL;
  }
  get clientMetadata() {
    return {
      client_name: 'secure-mcp TS SDK check',
      redirect_uris: [REDIRECT_URL],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none'
    };
  }
  state() {
    this.expectedState = crypto.randomUUID();
    return this.expectedState;
  }
  clientInformation() {
    return this.saved.client;
  }
  saveClientInformation(info) {
    this.saved.client = info;
  }
  tokens() {
    return this.saved.tokens;
  }
  saveTokens(tokens) {
    this.saved.tokens = tokens;
  }
  saveCodeVerifier(v) {
    this.saved.verifier = v;
  }
  codeVerifier() {
    if (!this.saved.verifier) throw new Error('no PKCE code verifier saved');
    return this.saved.verifier;
  }
  saveDiscoveryState(s) {
    this.saved.discovery = s;
  }
  discoveryState() {
    return this.saved.discovery;
  }
  async redirectToAuthorization(authorizationUrl) {
    this.authorizationUrl = authorizationUrl;
    // The SDK turns anything thrown here into its own error; keep ours.
    try {
      this.callback = await driveAuthorization(authorizationUrl.href, this.log);
    } catch (e) {
      this.authorizeError = e;
      throw e;
    }
  }
}

async function authorizationCode(sdk, mcpUrl, expectedIssuer) {
  const step = { at: 'connect (discovery, registration, authorization request)' };
  const provider = new HeadlessHostProvider();
  let client = new sdk.Client({ name: 'secure-mcp-ts-sdk-check', version: '1.0.0' });
  try {
    const transport = new sdk.StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
    try {
      await client.connect(transport);
      throw new Failed(step.at, 'connected without authorization: the server did not ask for a token');
    } catch (e) {
      if (provider.authorizeError) throw provider.authorizeError;
      if (!(e instanceof sdk.UnauthorizedError)) throw e;
    }
    step.at = 'authorization response';
    const cb = provider.callback;
    if (!cb) throw new Failed(step.at, 'the SDK never asked to open the authorization URL');
    if (cb.get('error')) {
      throw new Failed(step.at, `error=${cb.get('error')} ${cb.get('error_description') ?? ''}`.trim());
    }
    const code = cb.get('code');
    if (!code) throw new Failed(step.at, `no code in the redirect (${[...cb.keys()]})`);
    if (cb.get('state') !== provider.expectedState) throw new Failed(step.at, 'state does not round-trip');
    const issuer = expectedIssuer ?? provider.saved.discovery?.authorizationServerMetadata?.issuer;
    if (!cb.get('iss') || cb.get('iss') !== issuer) {
      throw new Failed(step.at, `iss=${cb.get('iss')} is not the issuer ${issuer} (RFC 9207)`);
    }
    step.at = 'token (finishAuth)';
    await transport.finishAuth(code);
    await client.close().catch(() => {});
    step.at = 'connect with the token';
    client = new sdk.Client({ name: 'secure-mcp-ts-sdk-check', version: '1.0.0' });
    await client.connect(new sdk.StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider }));
    const seen = await useTools(client, step);
    const tokens = provider.tokens();
    return {
      ...seen,
      client_id: provider.clientInformation()?.client_id,
      steps: provider.log,
      scope: tokens?.scope,
      refresh_token: Boolean(tokens?.refresh_token)
    };
  } catch (e) {
    throw e instanceof Failed ? e : new Failed(step.at, describe(e));
  } finally {
    await client.close().catch(() => {});
  }
}

// --- main ----------------------------------------------------------------------

async function main() {
  const args = process.argv.slice(2);
  const mcpUrl = args.shift();
  if (!mcpUrl || mcpUrl.startsWith('--')) usage();
  let flow = 'all';
  let issuer;
  while (args.length) {
    const [opt, value] = [args.shift(), args.shift()];
    if (opt === '--flow' && ['all', 'client_credentials', 'authorization_code'].includes(value)) flow = value;
    else if (opt === '--issuer' && value) issuer = value;
    else usage();
  }
  const out = { mcp_url: mcpUrl, issuer, ok: true };
  let sdk;
  try {
    sdk = await loadSdk();
    out.sdk = `@modelcontextprotocol/sdk ${sdk.version}`;
  } catch (e) {
    out.ok = false;
    out.error = e.message;
    process.stdout.write(JSON.stringify(out) + '\n');
    process.stderr.write(`ts-sdk-flow: ${e.message}\n`);
    process.exit(1);
  }
  const flows = { client_credentials: clientCredentials, authorization_code: authorizationCode };
  for (const [name, run] of Object.entries(flows)) {
    if (flow !== 'all' && flow !== name) continue;
    try {
      out[name] = { ok: true, ...(await run(sdk, mcpUrl, issuer)) };
    } catch (e) {
      out.ok = false;
      out[name] = { ok: false, error: e.message };
      process.stderr.write(`ts-sdk-flow: ${name}: ${e.message}\n`);
    }
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(out.ok ? 0 : 1);
}

// Run as a script; imported (a throwaway check of the form driver), export it.
export { driveAuthorization, forms };
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((e) => {
    process.stderr.write(`ts-sdk-flow: unexpected: ${describe(e)}\n`);
    process.exit(1);
  });
}
