// Header-injecting proxy for the MCP conformance suite.
//
// The suite cannot send access tokens and mcp-server has no auth-off switch,
// so the suite talks to this proxy, which obtains a real token from the
// oauth-server (client_credentials, client_secret_basic), adds
// `Authorization: Bearer …` to every request and forwards it unchanged
// otherwise: Host and Origin are kept (the DNS-rebinding scenario depends on
// them) and responses, SSE streams included, are streamed back as they come.
//
// Configuration (environment; the secret never appears in argv):
//   PROXY_PORT, UPSTREAM (host:port of mcp-server), TOKEN_URL,
//   CLIENT_ID, CLIENT_SECRET, RESOURCE, SCOPE (optional)
// Prints "proxy ready on <port>" once listening.

import http from 'node:http';

const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`proxy: ${name} is not set`);
    process.exit(2);
  }
  return v;
};
const port = Number(env('PROXY_PORT'));
const [upHost, upPort] = env('UPSTREAM').split(':');
const tokenUrl = env('TOKEN_URL');
const basic = Buffer.from(`${encodeURIComponent(env('CLIENT_ID'))}:${encodeURIComponent(env('CLIENT_SECRET'))}`).toString('base64');
const resource = env('RESOURCE');
const scope = process.env.SCOPE;

let token = null;
let renewAt = 0;

async function accessToken() {
  if (token && Date.now() < renewAt) return token;
  const form = new URLSearchParams({ grant_type: 'client_credentials', resource });
  if (scope) form.set('scope', scope);
  const resp = await fetch(tokenUrl, {
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: form,
  });
  const body = await resp.json();
  if (!resp.ok || !body.access_token) {
    throw new Error(`token request failed: HTTP ${resp.status} ${JSON.stringify(body)}`);
  }
  token = body.access_token;
  // Renew at half-life so a long run never sends an expired token.
  renewAt = Date.now() + (Number(body.expires_in) || 60) * 500;
  return token;
}

// Hop-by-hop headers are per connection (RFC 9110 §7.6.1).
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);
const endToEnd = (headers) => Object.fromEntries(Object.entries(headers).filter(([k]) => !HOP.has(k.toLowerCase())));

const server = http.createServer(async (req, res) => {
  let bearer;
  try {
    bearer = await accessToken();
  } catch (e) {
    console.error(`proxy: ${e.message}`);
    res.writeHead(502, { 'content-type': 'text/plain' }).end('proxy: no access token');
    return;
  }
  const headers = { ...endToEnd(req.headers), authorization: `Bearer ${bearer}` };
  const upstream = http.request({ host: upHost, port: Number(upPort), method: req.method, path: req.url, headers }, (up) => {
    res.writeHead(up.statusCode ?? 502, endToEnd(up.headers));
    res.flushHeaders();
    up.pipe(res);
  });
  upstream.on('error', (e) => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`proxy: upstream error: ${e.message}`);
  });
  // A client that goes away (e.g. closes an SSE stream) closes the upstream request too.
  res.on('close', () => upstream.destroy());
  req.pipe(upstream);
});

// Dual-stack when the machine has IPv6 ("localhost" may resolve to ::1), else IPv4.
server.once('error', () => server.listen(port, '127.0.0.1'));
server.listen({ port, host: '::', ipv6Only: false });
server.on('listening', async () => {
  try {
    await accessToken();
  } catch (e) {
    console.error(`proxy: ${e.message}`);
    process.exit(1);
  }
  console.log(`proxy ready on ${port}`);
});
