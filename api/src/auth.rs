//! Bearer JWT verification, for real (the old service decoded tokens without
//! checking their signature).
//!
//! HS256 with a shared secret, or RS256/ES256 with keys from a JWKS file or URL.
//! The algorithm a token claims must match the kind of key that verifies it, so an
//! RSA public key can never be used as an HMAC secret (algorithm confusion), and
//! unsigned tokens (`alg: none`) are refused. `exp` is required; `exp` and `nbf` are
//! enforced with 30 s of leeway for clock skew.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use tokio::sync::RwLock;

use crate::error::ApiError;

/// Where RS256/ES256 verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWKS document on disk.
    File(std::path::PathBuf),
    /// A JWKS document served over HTTP(S), e.g. an identity provider's `jwks_uri`.
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

/// What the verifier is configured with.
#[derive(Clone, Default)]
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

struct Keys {
    by_kid: HashMap<String, (Algorithm, DecodingKey)>,
    unnamed: Vec<(Algorithm, DecodingKey)>,
    fetched: Instant,
}

/// Verifies bearer tokens. Built once; shared by every request.
pub struct Verifier {
    config: AuthConfig,
    hs256: Option<DecodingKey>,
    keys: RwLock<Keys>,
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
    /// The JWKS could not be read.
    #[error("loading JWKS: {0}")]
    Jwks(String),
}

/// How soon an unknown `kid` may trigger another JWKS fetch.
const REFETCH_AFTER: Duration = Duration::from_secs(60);

fn key_algorithm(params: &AlgorithmParameters) -> Option<Algorithm> {
    match params {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Some(Algorithm::ES256)
        }
        _ => None,
    }
}

impl Verifier {
    /// Builds a verifier, loading the JWKS once.
    pub async fn new(config: AuthConfig) -> Result<Self, AuthSetupError> {
        if config.hs256_secret.is_none() && config.jwks.is_none() {
            return Err(AuthSetupError::NoKeys);
        }
        let hs256 = match &config.hs256_secret {
            Some(s) if s.len() < 32 => return Err(AuthSetupError::WeakSecret),
            Some(s) => Some(DecodingKey::from_secret(s)),
            None => None,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| AuthSetupError::Jwks(e.to_string()))?;
        let v = Self {
            config,
            hs256,
            keys: RwLock::new(Keys {
                by_kid: HashMap::new(),
                unnamed: Vec::new(),
                fetched: Instant::now(),
            }),
            http,
        };
        if v.config.jwks.is_some() {
            let keys = v.load_jwks().await?;
            *v.keys.write().await = keys;
        }
        Ok(v)
    }

    async fn load_jwks(&self) -> Result<Keys, AuthSetupError> {
        let text = match &self.config.jwks {
            None => return Err(AuthSetupError::NoKeys),
            Some(JwksSource::File(p)) => std::fs::read_to_string(p)
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
        let set: JwkSet =
            serde_json::from_str(&text).map_err(|e| AuthSetupError::Jwks(e.to_string()))?;
        let mut keys = Keys {
            by_kid: HashMap::new(),
            unnamed: Vec::new(),
            fetched: Instant::now(),
        };
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

    async fn find_key(&self, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
        let lookup = |keys: &Keys| match kid {
            Some(k) => keys
                .by_kid
                .get(k)
                .filter(|(a, _)| *a == alg)
                .map(|(_, d)| d.clone()),
            None => {
                let mut candidates = keys
                    .by_kid
                    .values()
                    .chain(keys.unnamed.iter())
                    .filter(|(a, _)| *a == alg);
                match (candidates.next(), candidates.next()) {
                    (Some((_, d)), None) => Some(d.clone()),
                    _ => None,
                }
            }
        };
        {
            let keys = self.keys.read().await;
            if let Some(k) = lookup(&keys) {
                return Some(k);
            }
            if keys.fetched.elapsed() < REFETCH_AFTER {
                return None;
            }
        }
        // Unknown key: the provider may have rotated; fetch again, at most once a minute.
        let mut keys = self.keys.write().await;
        if keys.fetched.elapsed() >= REFETCH_AFTER {
            match self.load_jwks().await {
                Ok(fresh) => *keys = fresh,
                Err(e) => {
                    tracing::warn!(error = %e, "JWKS refresh failed; keeping the keys we have");
                    keys.fetched = Instant::now();
                }
            }
        }
        lookup(&keys)
    }

    /// Checks a bearer token; the error says why it was refused.
    pub async fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let unauthorized = |m: &str| ApiError::Unauthorized(m.to_owned());
        let header = decode_header(token).map_err(|_| {
            unauthorized(
                "the bearer token is not a signed JWT (unsigned tokens, alg none, are refused)",
            )
        })?;
        let key = match header.alg {
            Algorithm::HS256 => self
                .hs256
                .clone()
                .ok_or_else(|| unauthorized("HS256 tokens are not accepted here"))?,
            Algorithm::RS256 | Algorithm::ES256 if self.config.jwks.is_some() => self
                .find_key(header.kid.as_deref(), header.alg)
                .await
                .ok_or_else(|| {
                    unauthorized("the token's signing key (kid) is not one this API trusts")
                })?,
            other => {
                return Err(ApiError::Unauthorized(format!(
                    "tokens signed with {other:?} are not accepted here"
                )));
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = 30;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        match &self.config.issuer {
            Some(i) => validation.set_issuer(&[i]),
            None => validation.iss = None,
        }
        match &self.config.audience {
            Some(a) => validation.set_audience(&[a]),
            None => validation.validate_aud = false,
        }
        use jsonwebtoken::errors::ErrorKind as K;
        let data = decode::<Claims>(token, &key, &validation).map_err(|e| {
            unauthorized(match e.kind() {
                K::ExpiredSignature => "the token has expired",
                K::ImmatureSignature => "the token is not valid yet (nbf is in the future)",
                K::InvalidIssuer => "the token was issued by an issuer this API does not trust",
                K::InvalidAudience => "the token is meant for another audience",
                K::InvalidSignature => "the token's signature does not verify",
                K::MissingRequiredClaim(_) => "the token has no exp claim",
                _ => "the token is not valid",
            })
        })?;
        let claims = data.claims;
        let allowed = &self.config.allowed_groups;
        if !allowed.is_empty() && !claims.groups.iter().any(|g| allowed.contains(g)) {
            return Err(ApiError::Forbidden(format!(
                "this API requires membership of one of the groups: {}",
                allowed.join(", ")
            )));
        }
        Ok(claims)
    }
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
    match verifier.verify(&token).await {
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
