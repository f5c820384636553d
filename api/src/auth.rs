//! Bearer JWT verification, for real (the old service decoded tokens without
//! checking their signature).
//!
//! HS256 with a shared secret, or RS256/ES256 with keys from a JWKS file or URL.
//! The algorithm a token claims must match the kind of key that verifies it, so an
//! RSA public key can never be used as an HMAC secret (algorithm confusion), and
//! unsigned tokens (`alg: none`) are refused. `exp` is required, and so are `iss`
//! and `aud` when an issuer or audience is configured; `exp` and `nbf` are enforced
//! with 30 s of leeway for clock skew. Keys are fetched again when a token names an
//! unknown one, outside the lock that verification reads, so a slow identity
//! provider never holds up tokens signed with keys already known.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation, decode, decode_header};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use crate::error::ApiError;

/// Where RS256/ES256 verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWKS document on disk.
    File(std::path::PathBuf),
    /// A JWKS document served over HTTPS (or plain HTTP from this machine), e.g.
    /// an identity provider's `jwks_uri`.
    Url(String),
}

impl JwksSource {
    /// `http://` or `https://` is a URL; anything else a file path.
    pub fn parse(s: &str) -> Self {
        if s.starts_with("http://") || s.starts_with("https://") {
            Self::Url(s.to_owned())
        } else {
            Self::File(s.into())
        }
    }
}

/// Whether keys may be fetched from `url`: over TLS, or over plain HTTP only from
/// this machine (a local identity provider, a test). A key fetched in the clear
/// from elsewhere could be swapped by anyone on the path, and with it the proof of
/// every token.
pub fn jwks_url_is_trusted(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    match (url.scheme(), url.host_str()) {
        ("https", Some(_)) => true,
        ("http", Some(host)) => is_loopback(host),
        _ => false,
    }
}

/// `localhost`, 127.0.0.0/8 or `[::1]`, as a parsed URL writes its host.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// How soon an unknown `kid` may trigger another JWKS fetch, unless configured.
pub const REFETCH_AFTER: Duration = Duration::from_secs(60);

/// What the verifier is configured with.
#[derive(Clone)]
pub struct AuthConfig {
    /// HS256 shared secret.
    pub hs256_secret: Option<Vec<u8>>,
    /// RS256/ES256 keys.
    pub jwks: Option<JwksSource>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// A caller must be in one of these groups (`groups` claim), when not empty.
    pub allowed_groups: Vec<String>,
    /// How soon a token naming an unknown key may fetch the JWKS again: bounds the
    /// fetches a stream of made-up `kid`s can cause. [`REFETCH_AFTER`] by default.
    pub jwks_refetch_after: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            hs256_secret: None,
            jwks: None,
            issuer: None,
            audience: None,
            allowed_groups: Vec::new(),
            jwks_refetch_after: REFETCH_AFTER,
        }
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("jwks", &self.jwks)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("allowed_groups", &self.allowed_groups)
            .field("jwks_refetch_after", &self.jwks_refetch_after)
            .finish()
    }
}

/// The claims the API reads (docs/contracts.md §4).
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    /// Subject: logged as who asked.
    #[serde(default)]
    pub sub: Option<String>,
    /// Groups the caller belongs to; a missing or null claim is no groups, a single
    /// string one group.
    #[serde(default, deserialize_with = "groups")]
    pub groups: Vec<String>,
}

fn groups<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Groups {
        Many(Vec<String>),
        One(String),
        Nothing(()),
    }
    Ok(match Option::<Groups>::deserialize(d)? {
        Some(Groups::Many(v)) => v,
        Some(Groups::One(s)) => vec![s],
        Some(Groups::Nothing(())) | None => Vec::new(),
    })
}

/// The verification keys of one JWKS document.
#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, (Algorithm, DecodingKey)>,
    unnamed: Vec<(Algorithm, DecodingKey)>,
}

impl Keys {
    /// The RS256/ES256 signing keys of a JWKS document.
    fn from_json(text: &str) -> Result<Self, AuthSetupError> {
        let set: JwkSet =
            serde_json::from_str(text).map_err(|e| AuthSetupError::Jwks(e.to_string()))?;
        let mut keys = Self::default();
        for jwk in &set.keys {
            let (Some(alg), Ok(key)) = (key_algorithm(&jwk.algorithm), DecodingKey::from_jwk(jwk))
            else {
                continue; // keys of other kinds (e.g. encryption keys) are not ours to use
            };
            match &jwk.common.key_id {
                Some(kid) => {
                    keys.by_kid.insert(kid.clone(), (alg, key));
                }
                None => keys.unnamed.push((alg, key)),
            }
        }
        if keys.by_kid.is_empty() && keys.unnamed.is_empty() {
            return Err(AuthSetupError::Jwks(
                "no RS256 or ES256 signing key in the set".into(),
            ));
        }
        Ok(keys)
    }

    /// The key named `kid` for `alg`; with no `kid`, the only key for `alg`.
    fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
        match kid {
            Some(k) => self
                .by_kid
                .get(k)
                .filter(|(a, _)| *a == alg)
                .map(|(_, d)| d.clone()),
            None => {
                let mut candidates = self
                    .by_kid
                    .values()
                    .chain(self.unnamed.iter())
                    .filter(|(a, _)| *a == alg);
                match (candidates.next(), candidates.next()) {
                    (Some((_, d)), None) => Some(d.clone()),
                    _ => None,
                }
            }
        }
    }
}

/// Verifies bearer tokens. Built once; shared by every request.
pub struct Verifier {
    config: AuthConfig,
    hs256: Option<DecodingKey>,
    /// What verification reads. Written only to swap in a fetched set, never held
    /// across a fetch, so known keys verify while a fetch is in flight.
    keys: RwLock<Keys>,
    /// Held by the one JWKS fetch in flight (tokens with unknown keys wait for it
    /// rather than start another); holds when the last fetch finished.
    last_fetch: Mutex<Instant>,
    http: reqwest::Client,
}

/// Why the verifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// Neither a secret nor a JWKS was configured: the API will not run open.
    #[error(
        "no way to verify tokens: set ACTIVITY_JWT_SECRET or ACTIVITY_JWKS (authentication cannot be turned off)"
    )]
    NoKeys,
    /// The secret is too short to resist guessing.
    #[error("ACTIVITY_JWT_SECRET must be at least 32 bytes")]
    WeakSecret,
    /// The JWKS URL would fetch keys where they could be swapped on the way.
    #[error(
        "ACTIVITY_JWKS {0} is not trusted: use https://, or http:// only to this machine (localhost, 127.0.0.0/8, [::1])"
    )]
    InsecureJwksUrl(String),
    /// The JWKS could not be read.
    #[error("loading JWKS: {0}")]
    Jwks(String),
}

/// Most redirects a JWKS fetch follows, each to a trusted URL only.
const MAX_REDIRECTS: usize = 5;

fn key_algorithm(params: &AlgorithmParameters) -> Option<Algorithm> {
    match params {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Some(Algorithm::ES256)
        }
        _ => None,
    }
}

/// The JWKS client: a 5 s limit per fetch, and redirects followed only to URLs
/// that [`jwks_url_is_trusted`] accepts, so a redirect cannot downgrade to plain HTTP.
fn jwks_client() -> Result<reqwest::Client, AuthSetupError> {
    let redirects = reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if jwks_url_is_trusted(attempt.url().as_str()) {
            attempt.follow()
        } else {
            attempt.error("redirected to an untrusted JWKS URL")
        }
    });
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(redirects)
        .build()
        .map_err(|e| AuthSetupError::Jwks(e.to_string()))
}

/// Why a token the library refused was refused, in words a caller can act on.
fn refusal(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf is in the future)".into(),
        ErrorKind::InvalidIssuer => {
            "the token was issued by an issuer this API does not trust".into()
        }
        ErrorKind::InvalidAudience => "the token is meant for another audience".into(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim} claim"),
        _ => "the token is not valid".into(),
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::Unauthorized(message.to_owned())
}

impl Verifier {
    /// Builds a verifier, loading the JWKS once.
    pub async fn new(config: AuthConfig) -> Result<Self, AuthSetupError> {
        if config.hs256_secret.is_none() && config.jwks.is_none() {
            return Err(AuthSetupError::NoKeys);
        }
        if let Some(JwksSource::Url(u)) = &config.jwks
            && !jwks_url_is_trusted(u)
        {
            return Err(AuthSetupError::InsecureJwksUrl(u.clone()));
        }
        let hs256 = match &config.hs256_secret {
            Some(s) if s.len() < 32 => return Err(AuthSetupError::WeakSecret),
            Some(s) => Some(DecodingKey::from_secret(s)),
            None => None,
        };
        let v = Self {
            config,
            hs256,
            keys: RwLock::new(Keys::default()),
            last_fetch: Mutex::new(Instant::now()),
            http: jwks_client()?,
        };
        if v.config.jwks.is_some() {
            *v.keys.write().await = v.load_jwks().await?;
        }
        Ok(v)
    }

    async fn load_jwks(&self) -> Result<Keys, AuthSetupError> {
        let text = match &self.config.jwks {
            None => return Err(AuthSetupError::NoKeys),
            Some(JwksSource::File(p)) => tokio::fs::read_to_string(p)
                .await
                .map_err(|e| AuthSetupError::Jwks(format!("{}: {e}", p.display())))?,
            Some(JwksSource::Url(u)) => self
                .http
                .get(u)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| AuthSetupError::Jwks(format!("{u}: {e}")))?
                .text()
                .await
                .map_err(|e| AuthSetupError::Jwks(format!("{u}: {e}")))?,
        };
        Keys::from_json(&text)
    }

    async fn find_key(&self, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
        let known = self.keys.read().await.lookup(kid, alg);
        if known.is_some() {
            return known;
        }
        self.refresh_and_find(kid, alg).await
    }

    /// An unknown key: the provider may have rotated its keys, so fetch them again
    /// (at most once per `jwks_refetch_after`). One fetch runs at a time, holding
    /// `last_fetch` but not `keys`; a token that arrives meanwhile with an unknown
    /// key waits for that fetch and uses its result instead of fetching again.
    async fn refresh_and_find(&self, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
        let asked = Instant::now();
        let mut last_fetch = self.last_fetch.lock().await;
        let fetched_since_asked = *last_fetch >= asked;
        if !fetched_since_asked && last_fetch.elapsed() >= self.config.jwks_refetch_after {
            match self.load_jwks().await {
                Ok(fresh) => *self.keys.write().await = fresh,
                Err(e) => {
                    tracing::warn!(error = %e, "JWKS refresh failed; keeping the keys we have");
                }
            }
            *last_fetch = Instant::now();
        }
        drop(last_fetch);
        self.keys.read().await.lookup(kid, alg)
    }

    /// The key that must have signed a token with `header`.
    async fn key_for(&self, header: &Header) -> Result<DecodingKey, ApiError> {
        match header.alg {
            Algorithm::HS256 => self
                .hs256
                .clone()
                .ok_or_else(|| unauthorized("HS256 tokens are not accepted here")),
            Algorithm::RS256 | Algorithm::ES256 if self.config.jwks.is_some() => self
                .find_key(header.kid.as_deref(), header.alg)
                .await
                .ok_or_else(|| {
                    unauthorized("the token's signing key (kid) is not one this API trusts")
                }),
            other => Err(ApiError::Unauthorized(format!(
                "tokens signed with {other:?} are not accepted here"
            ))),
        }
    }

    /// What a token signed with `alg` must satisfy.
    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = 30;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // The library checks `iss` and `aud` only when the token carries them, so a
        // configured issuer or audience is also required: leaving the claim out
        // must not be a way round the check.
        let mut required = vec!["exp"];
        match &self.config.issuer {
            Some(i) => {
                validation.set_issuer(&[i]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.config.audience {
            Some(a) => {
                validation.set_audience(&[a]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    /// Checks a bearer token and the caller's groups; the error says why it was
    /// refused.
    pub async fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let claims = self.authenticate(token).await?;
        if !self.in_allowed_group(&claims) {
            return Err(not_in_allowed_group());
        }
        Ok(claims)
    }

    /// Whether the caller is in one of `ACTIVITY_ALLOWED_GROUPS` (any group when
    /// none is configured).
    pub fn in_allowed_group(&self, claims: &Claims) -> bool {
        let allowed = &self.config.allowed_groups;
        allowed.is_empty() || claims.groups.iter().any(|g| allowed.contains(g))
    }

    /// Checks a bearer token's signature and claims, not the caller's groups.
    pub async fn authenticate(&self, token: &str) -> Result<Claims, ApiError> {
        let header = decode_header(token).map_err(|_| {
            unauthorized(
                "the bearer token is not a signed JWT (unsigned tokens, alg none, are refused)",
            )
        })?;
        let key = self.key_for(&header).await?;
        let claims = decode::<Claims>(token, &key, &self.validation(header.alg))
            .map_err(|e| ApiError::Unauthorized(refusal(e.kind())))?
            .claims;
        Ok(claims)
    }
}

/// The 403 of a caller in no allowed group. The allowed groups' names are not
/// told: they map the council's access model for anyone holding any valid token.
fn not_in_allowed_group() -> ApiError {
    ApiError::Forbidden("the caller is in none of the groups allowed to read history".into())
}

/// Middleware for protected routes.
pub async fn require(State(verifier): State<Arc<Verifier>>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    let Some(token) = token else {
        return ApiError::Unauthorized("send the header Authorization: Bearer <JWT>".into())
            .into_response();
    };
    match verifier.authenticate(&token).await {
        Ok(claims) if !verifier.in_allowed_group(&claims) => {
            // Refused, and still accounted for: a known caller asked for data.
            let sub = claims.sub.as_deref().unwrap_or("");
            crate::access::AccessLog::refused(sub, req.method(), req.uri()).write(403);
            not_in_allowed_group().into_response()
        }
        Ok(claims) => {
            tracing::info!(
                caller = claims.sub.as_deref().unwrap_or(""),
                "caller authenticated"
            );
            // The read routes take the caller's sub and groups from here.
            let mut req = req;
            req.extensions_mut().insert(claims);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fetched_over_https_from_anywhere() {
        assert!(jwks_url_is_trusted(
            "https://idp.example/.well-known/jwks.json"
        ));
        assert!(jwks_url_is_trusted("https://10.0.0.5:8443/keys"));
    }

    #[test]
    fn plain_http_is_trusted_only_from_this_machine() {
        for local in [
            "http://localhost/jwks",
            "http://LOCALHOST:8080/jwks",
            "http://127.0.0.1:9000/jwks",
            "http://127.8.9.10/jwks",
            "http://[::1]:9000/jwks",
        ] {
            assert!(jwks_url_is_trusted(local), "{local}");
        }
        for remote in [
            "http://idp.example/jwks",
            "http://10.0.0.5/jwks",
            "http://169.254.169.254/latest",
            "http://localhost.evil.example/jwks",
            "http://127.0.0.1.nip.io/jwks",
            "http://[::ffff:10.0.0.1]/jwks",
            "ftp://localhost/jwks",
            "not a url",
        ] {
            assert!(!jwks_url_is_trusted(remote), "{remote}");
        }
    }
}
