//! secure-mcp's OAuth 2.1 authorization server.
//!
//! Issues short-lived, audience-bound, scoped RFC 9068 JWT access tokens to
//! pre-registered machine clients (client_credentials) and, through the
//! authorization code with PKCE, to users of interactive hosts (with
//! rotating refresh tokens).
//!
//! # Layout
//! - [`config`]: `Config::from_env()`, every variable and its default.
//! - [`app`]: `App::build` (registry, keys, stores, state) and the serve loop
//!   with graceful shutdown and key reloading.
//! - [`router`]: the route table and middleware stack, in one function.
//! - [`routes`]: one handler per endpoint (`token`, `revoke`, `introspect`,
//!   `metadata`, `jwks`, `health`, `authorize`, `register`); `routes/token/`
//!   holds one file per grant.
//! - [`pages`]: the login, consent and error pages of `/authorize` (maud, no
//!   JavaScript, strict CSP); [`session`]: the browser session cookie.
//! - [`client_auth`]: client_secret_basic / client_secret_post / private_key_jwt,
//!   and `none` for public clients (code and refresh grants, revocation).
//! - [`clients`]: the TOML client registry and secret hashes.
//! - [`argon`]: argon2id verification on a small dedicated thread pool, the
//!   equal-cost dummy for unknown ids, the memo of verified client secrets.
//! - [`users`]: the people who sign in (`UserDirectory`, `OAUTH_USERS_FILE`).
//! - [`directory`]: resolves a `client_id` from every source (file, dynamic
//!   registration, client ID metadata documents).
//! - [`registration`]: RFC 7591 registrations (stored, capped) and the policy
//!   every self-registered client gets; [`cimd`]: client ID metadata
//!   documents (fetched with [`ssrf`] guards, cached).
//! - [`codes`]: authorization codes (single use, bound, replay-recorded).
//! - [`refresh`]: refresh-token families (hashed at rest, rotated on every
//!   use, reuse revokes the family).
//! - [`keystore`]: signing keys on disk, the atomically swapped key ring, rotation.
//! - [`form`]: strict form bodies; [`error`]: RFC 6749 §5.2 errors.
//! - [`policy`]: the scope policy (intersection) and the RFC 8707 resource rule.
//! - [`limits`]: per-IP and per-client rate limits (brute-force protection).
//! - [`gate`]: `/token` and `/revoke` as one service (CORS, per-IP budget,
//!   handler).
//! - [`audit`]: `auth.*` audit events; [`cli`]: the non-serving subcommands.
//! - [`metrics`]: the Prometheus families (`OAUTH_METRICS_BIND`, a listener
//!   of its own started by [`app`]).
//!
//! # A token request
//! `POST /token` → [`gate`]: CORS → per-IP budget ([`limits::Limits::check_ip`]) → [`form::read_form`] (media type, 16 KiB cap, no repeated
//! parameters) → `grant_type` present → [`client_auth::authenticate`] →
//! the grant's file: grant allowed for the client → client_credentials: scope
//! policy and resource ([`policy`]); authorization_code: consume the code
//! ([`codes`]), check client, redirect URI, PKCE and resource;
//! refresh_token: check, consume and rotate ([`refresh`]) → claims → sign with
//! the current key (RSA off the async workers) → `auth.token_issued` → JSON
//! with `Cache-Control: no-store`.
//!
//! # A sign-in (authorization code)
//! `GET /authorize` → per-IP budget → client and redirect URI (HTML error
//! page until both are trusted) → response_type, PKCE S256, grant, resource,
//! scope (errors redirect with `state` and `iss`) → login page → `POST`
//! (session cookie + CSRF token bound to the pending request) → password
//! (argon2id on the dedicated threads; failures cost IP and username) → consent page
//! (or a remembered consent) → code → 303 to the client. See
//! [`routes::authorize`].

pub mod app;
pub mod argon;
pub mod audit;
pub mod cimd;
pub mod cli;
pub mod client_auth;
pub mod clients;
pub mod codes;
pub mod config;
pub mod directory;
pub mod error;
pub mod form;
pub mod gate;
pub mod keystore;
pub mod limits;
pub mod metrics;
pub mod pages;
pub mod policy;
pub mod refresh;
pub mod registration;
pub mod router;
pub mod routes;
pub mod session;
pub mod signer;
pub mod ssrf;
pub mod state;
pub mod users;

pub use app::App;
pub use config::Config;
