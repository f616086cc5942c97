// The person in the conformance suite's authorization-code-grant scenario
// (scripts/conformance.sh): the suite prints an authorization URL and waits
// for a browser to reach its loopback callback. This script reads that URL
// from the suite's output file, opens it with a cookie jar, submits the
// login form as the given user and the consent form with "approve", exactly
// as a browser without JavaScript would (every field of the form, the
// clicked button's name and value), and finally GETs the Location of the
// last redirect, which is the suite's callback.
//
//   LOGIN_PASSWORD=... node login.mjs --output FILE --username alice [--pid PID] [--timeout 60]
//
// --output  the suite's stdout, polled until the URL appears
// --pid     the suite's process: stop waiting when it has exited
// Node 22, no dependencies. Never prints the password, the code or a cookie.

import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";

const { values: opts } = parseArgs({
  options: {
    output: { type: "string" },
    username: { type: "string" },
    pid: { type: "string" },
    timeout: { type: "string", default: "60" },
  },
});
const password = process.env.LOGIN_PASSWORD;
if (!opts.output || !opts.username || !password) {
  fail("usage: LOGIN_PASSWORD=... node login.mjs --output FILE --username USER [--pid PID] [--timeout SECS]");
}
const deadline = Date.now() + Number(opts.timeout) * 1000;

function log(msg) {
  console.log(`login.mjs: ${msg}`);
}

function fail(msg) {
  console.error(`login.mjs: ${msg}`);
  process.exit(1);
}

// --- 1. the URL the suite asks a person to open -----------------------------

// The suite prints "Access the following URL in your browser ..." and the URL
// on the next line.
async function authorizationUrl() {
  for (;;) {
    let text = "";
    try {
      text = await readFile(opts.output, "utf8");
    } catch (e) {
      if (e.code !== "ENOENT") throw e;
    }
    const lines = text.split("\n");
    const i = lines.findIndex((l) => l.includes("Access the following URL"));
    if (i >= 0 && i + 1 < lines.length && lines[i + 1].trim() !== "") {
      const url = new URL(lines[i + 1].trim());
      if (url.searchParams.get("response_type") !== "code") {
        fail(`the suite printed an unexpected URL: ${url.origin}${url.pathname}`);
      }
      return url;
    }
    if (opts.pid && !alive(Number(opts.pid))) {
      fail("the suite exited without printing an authorization URL");
    }
    if (Date.now() > deadline) fail(`no authorization URL in ${opts.output} within ${opts.timeout} s`);
    await sleep(100);
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// --- 2. a browser's worth of HTTP: cookies, redirects, forms ----------------

/** Cookies the authorization server set (name -> value); sent back to it only. */
const jar = new Map();

function storeCookies(res) {
  for (const line of res.headers.getSetCookie()) {
    const [pair, ...attrs] = line.split(";");
    const eq = pair.indexOf("=");
    if (eq <= 0) continue;
    const name = pair.slice(0, eq).trim();
    const expired = attrs.some((a) => /^\s*max-age\s*=\s*(0|-\d+)\s*$/i.test(a));
    if (expired) jar.delete(name);
    else jar.set(name, pair.slice(eq + 1).trim());
  }
}

async function request(url, init = {}) {
  const headers = { ...init.headers, accept: "text/html" };
  if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
  const res = await fetch(url, { ...init, headers, redirect: "manual", signal: AbortSignal.timeout(20_000) });
  storeCookies(res);
  return res;
}

function decodeEntities(s) {
  const named = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, e) => {
    if (e[0] === "#") {
      const n = e[1] === "x" || e[1] === "X" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return String.fromCodePoint(n);
    }
    return named[e.toLowerCase()] ?? m;
  });
}

function attributes(tag) {
  const out = {};
  for (const m of tag.matchAll(/([^\s"'>\/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g)) {
    out[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? "");
  }
  return out;
}

/** Every <form> with its inputs and buttons (attributes only). */
function forms(html) {
  return [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form\s*>/gi)].map((m) => {
    const body = m[2];
    return {
      ...attributes(m[1]),
      inputs: [...body.matchAll(/<input\b([^>]*)>/gi)].map((x) => attributes(x[1])),
      buttons: [...body.matchAll(/<button\b([^>]*)>/gi)].map((x) => ({ type: "submit", ...attributes(x[1])})),
    };
  });
}

function isSubmit(control) {
  return control.type === "submit";
}

/** The form data a browser sends: every named control except buttons and
 *  unchecked boxes, `fill` over it, and the clicked button's name=value. */
function formData(form, fill, clicked) {
  const data = new URLSearchParams();
  for (const input of form.inputs) {
    const type = (input.type ?? "text").toLowerCase();
    if (!input.name || ["submit", "button", "image", "reset", "file"].includes(type)) continue;
    if ((type === "checkbox" || type === "radio") && !("checked" in input)) continue;
    if (input.name in fill) continue;
    data.append(input.name, input.value ?? "");
  }
  for (const [k, v] of Object.entries(fill)) data.append(k, v);
  if (clicked?.name) data.append(clicked.name, clicked.value ?? "");
  return data;
}

function pageText(html) {
  return decodeEntities(
    html
      .replace(/<(script|style)\b[\s\S]*?<\/\1\s*>/gi, " ")
      .replace(/<[^>]+>/g, " ")
      .replace(/\s+/g, " "),
  ).trim().slice(0, 600);
}

/** GET the client's redirect URI. The suite prints the URL before its
 *  callback listener is bound, so a refused connection is retried briefly. */
async function callback(url) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fetch(url, { redirect: "manual", signal: AbortSignal.timeout(20_000) });
    } catch (e) {
      if (e.cause?.code !== "ECONNREFUSED" || attempt >= 50) throw e;
      await sleep(100);
    }
  }
}

// --- 3. the person ------------------------------------------------------------

const start = await authorizationUrl();
const origin = start.origin;
log(`opening ${start.origin}${start.pathname} for client ${start.searchParams.get("client_id")}`);

let url = start;
let res = await request(url);
let loggedIn = false;
let approved = false;
for (let step = 0; step < 12; step++) {
  if (Date.now() > deadline) fail(`gave up after ${opts.timeout} s`);
  if ([301, 302, 303, 307, 308].includes(res.status)) {
    const next = new URL(res.headers.get("location") ?? "", url);
    if (next.origin !== origin) {
      // The authorization response: the client's redirect URI (the suite).
      const names = [...next.searchParams.keys()].join(", ");
      log(`${res.status} to the client's redirect ${next.origin}${next.pathname} with ${names}`);
      if (next.searchParams.has("error")) {
        log(`the server answered the client with error=${next.searchParams.get("error")}`);
      }
      const cb = await callback(next);
      log(`callback answered ${cb.status}`);
      process.exit(cb.ok && !next.searchParams.has("error") ? 0 : 1);
    }
    if (res.status === 307 || res.status === 308) fail(`unexpected ${res.status} within the server to ${next.pathname}`);
    url = next;
    res = await request(url);
    continue;
  }
  const html = await res.text();
  if (res.status !== 200) fail(`${url.pathname} answered ${res.status}: ${pageText(html)}`);
  const all = forms(html);
  const consent = all.find((f) => f.buttons.concat(f.inputs).some((b) => b.name === "decision" && b.value === "approve"));
  const login = all.find((f) => f.inputs.some((i) => i.name === "password"));
  let form, fill, clicked;
  if (consent) {
    if (approved) fail(`the consent page again after approving: ${pageText(html)}`);
    approved = true;
    form = consent;
    fill = {};
    clicked = form.buttons.concat(form.inputs).find((b) => b.name === "decision" && b.value === "approve");
    log(`consent page: approve`);
  } else if (login) {
    if (loggedIn) fail(`the login page again after logging in: ${pageText(html)}`);
    loggedIn = true;
    form = login;
    fill = { username: opts.username, password };
    clicked = form.buttons.concat(form.inputs).find(isSubmit);
    log(`login page: signing in as ${opts.username}`);
  } else {
    fail(`${url.pathname}: neither a login nor a consent form: ${pageText(html)}`);
  }
  const action = new URL(form.action || url.href, url);
  if (action.origin !== origin) fail(`a form posts to another origin: ${action.origin}`);
  const method = (form.method ?? "get").toLowerCase();
  const data = formData(form, fill, clicked);
  if (method === "post") {
    url = action;
    res = await request(url, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", origin },
      body: data.toString(),
    });
  } else {
    url = new URL(action);
    url.search = data.toString();
    res = await request(url);
  }
}
fail("too many steps without reaching the client's redirect");
