//! Opaque page tokens for keyset pagination.
//!
//! A token carries the last key a page ended on (`id`, `createdAt`), the target it
//! was issued for and a fingerprint of the query's filters, encrypted and then
//! authenticated with keys derived from the API's `ACTIVITY_TOKEN_KEY`. A caller
//! can neither forge a key (defect of the old service: the raw base64 DynamoDB key
//! was accepted back) nor carry a token from one target or filter set to another,
//! nor read it: the key a page stopped on may belong to a record the caller may not
//! see. Every failure is a distinct [`TokenError`] the API answers with 400.
//!
//! Encryption is HMAC-SHA256 in counter mode over a random 16-byte nonce (a PRF
//! used as a stream cipher), so it needs no primitive beyond the one that signs.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of MAC kept at the end of a token: 128 bits is far beyond guessing.
const MAC_LEN: usize = 16;
/// Bytes of filter fingerprint carried in the token.
const FINGERPRINT_LEN: usize = 8;
/// Version 2: encrypted payload. Version 1 tokens (readable) are no longer issued
/// or accepted; a caller holding one starts its walk again.
const VERSION: u8 = 2;
/// Bytes of the per-token random nonce the keystream is drawn from.
const NONCE_LEN: usize = 16;

/// The HMAC key tokens are signed with (`ACTIVITY_TOKEN_KEY`). Debug hides it.
#[derive(Clone)]
pub struct TokenKey(Vec<u8>);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A key from configured bytes; at least 16 bytes so it cannot be guessed.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Option<Self> {
        let b = bytes.into();
        (b.len() >= 16).then_some(Self(b))
    }

    /// A random key, for a process that was not given one: its tokens die with it.
    pub fn random() -> Self {
        Self((0..4).flat_map(|_| *Uuid::new_v4().as_bytes()).collect())
    }

    fn mac(&self, data: &[u8]) -> [u8; MAC_LEN] {
        let full = hmac(&self.0, &[data]);
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// XORs `data` with the keystream of `nonce`: encrypts and decrypts alike. The
    /// keystream's key is derived apart from the signing key.
    fn apply_keystream(&self, nonce: &[u8], data: &mut [u8]) {
        let stream_key = hmac(&self.0, &[b"page-token encryption"]);
        for (block, chunk) in data.chunks_mut(32).enumerate() {
            let counter = (block as u32).to_be_bytes();
            let pad = hmac(&stream_key, &[nonce, &counter]);
            chunk.iter_mut().zip(pad).for_each(|(b, p)| *b ^= p);
        }
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length; this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// Where the previous page ended: the key DynamoDB resumes after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageKey {
    /// Sort key of the table: the activity id.
    #[serde(rename = "i")]
    pub id: String,
    /// Sort key of the index: `createdAt`, absent when paging the base table.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    #[serde(rename = "t")]
    target: Uuid,
    #[serde(rename = "q", with = "hex8")]
    query: [u8; FINGERPRINT_LEN],
    #[serde(rename = "k")]
    key: PageKey,
}

mod hex8 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(v: &[u8; 8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 8], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 8];
        if s.len() != 16 {
            return Err(D::Error::custom("bad fingerprint"));
        }
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(s.get(i * 2..i * 2 + 2).unwrap_or("zz"), 16)
                .map_err(|_| D::Error::custom("bad fingerprint"))?;
        }
        Ok(out)
    }
}

/// Why a page token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not base64url text.
    #[error("paginationToken is not a token this service issued (not base64url)")]
    Malformed,
    /// Too short to hold a signature: cut off when copied.
    #[error("paginationToken is truncated; pass the nextToken value exactly as returned")]
    Truncated,
    /// The signature does not match: altered, or from another deployment.
    #[error("paginationToken has been altered or was issued by another deployment")]
    BadSignature,
    /// Issued for another target.
    #[error("paginationToken belongs to a different targetId")]
    ForeignTarget,
    /// Issued for the same target with other filters.
    #[error(
        "paginationToken was issued for different filters (type, from, to or order); start again without it"
    )]
    ForeignQuery,
}

/// A short digest of a query's canonical filter string, so that a token only
/// resumes the query it came from.
fn fingerprint(query: &str) -> [u8; FINGERPRINT_LEN] {
    let d = Sha256::digest(query.as_bytes());
    let mut out = [0u8; FINGERPRINT_LEN];
    out.copy_from_slice(&d[..FINGERPRINT_LEN]);
    out
}

/// Issues a token resuming after `key` for `target` and the query described by
/// `query` (a canonical rendering of its filters).
pub fn encode(key: &TokenKey, target: Uuid, query: &str, page: &PageKey) -> String {
    let payload = Payload {
        target,
        query: fingerprint(query),
        key: page.clone(),
    };
    let nonce = *Uuid::new_v4().as_bytes();
    // Serialising these plain types to JSON cannot fail.
    let mut secret = serde_json::to_vec(&payload).unwrap_or_default();
    key.apply_keystream(&nonce, &mut secret);
    let mut bytes = vec![VERSION];
    bytes.extend_from_slice(&nonce);
    bytes.extend(secret);
    let mac = key.mac(&bytes);
    bytes.extend_from_slice(&mac);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Checks a token against the request it came with and returns where to resume.
pub fn decode(
    key: &TokenKey,
    target: Uuid,
    query: &str,
    token: &str,
) -> Result<PageKey, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim().trim_end_matches('='))
        .map_err(|e| match e {
            // A base64url text cut at an arbitrary character has a bad length or
            // stray bits in its last symbol.
            base64::DecodeError::InvalidLength(_) | base64::DecodeError::InvalidLastSymbol(..) => {
                TokenError::Truncated
            }
            _ => TokenError::Malformed,
        })?;
    if bytes.len() <= MAC_LEN + NONCE_LEN + 1 {
        return Err(TokenError::Truncated);
    }
    let (body, mac) = bytes.split_at(bytes.len() - MAC_LEN);
    // Constant-time comparison through the hmac crate.
    let mut m =
        <HmacSha256 as Mac>::new_from_slice(&key.0).map_err(|_| TokenError::BadSignature)?;
    m.update(body);
    m.verify_truncated_left(mac)
        .map_err(|_| TokenError::BadSignature)?;
    if body.first() != Some(&VERSION) {
        return Err(TokenError::BadSignature);
    }
    let (nonce, sealed) = body[1..].split_at(NONCE_LEN);
    let mut plain = sealed.to_vec();
    key.apply_keystream(nonce, &mut plain);
    let payload: Payload = serde_json::from_slice(&plain).map_err(|_| TokenError::BadSignature)?;
    if payload.target != target {
        return Err(TokenError::ForeignTarget);
    }
    if payload.query != fingerprint(query) {
        return Err(TokenError::ForeignQuery);
    }
    Ok(payload.key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> TokenKey {
        TokenKey::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap()
    }
    fn target() -> Uuid {
        Uuid::parse_str("6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7").unwrap()
    }
    fn page() -> PageKey {
        PageKey {
            id: "a5b4c3d2-e1f0-4a5b-8c7d-6e5f4a3b2c1d".into(),
            created_at: Some("2021-09-14T10:02:31.5738462Z".into()),
        }
    }

    #[test]
    fn a_token_resumes_the_query_it_came_from() {
        let t = encode(&key(), target(), "order=desc", &page());
        assert_eq!(decode(&key(), target(), "order=desc", &t), Ok(page()));
        assert!(
            !t.contains("a5b4c3d2"),
            "the key is not readable in the token"
        );
    }

    #[test]
    fn cross_target_and_cross_query_use_is_refused() {
        let t = encode(&key(), target(), "order=desc", &page());
        assert_eq!(
            decode(&key(), Uuid::nil(), "order=desc", &t),
            Err(TokenError::ForeignTarget)
        );
        assert_eq!(
            decode(&key(), target(), "order=asc", &t),
            Err(TokenError::ForeignQuery)
        );
    }

    #[test]
    fn truncated_and_garbage_tokens_are_refused() {
        let t = encode(&key(), target(), "", &page());
        assert_eq!(
            decode(&key(), target(), "", &t[..8]),
            Err(TokenError::Truncated)
        );
        // Cut anywhere, a token is refused: too short, or its signature no longer fits.
        for n in 0..t.len() {
            let r = decode(&key(), target(), "", &t[..n]);
            assert!(
                matches!(r, Err(TokenError::Truncated | TokenError::BadSignature)),
                "cut at {n}: {r:?}"
            );
        }
        assert_eq!(
            decode(&key(), target(), "", "%%%"),
            Err(TokenError::Malformed)
        );
        assert_eq!(decode(&key(), target(), "", ""), Err(TokenError::Truncated));
    }

    #[test]
    fn token_from_another_key_is_refused() {
        let other = TokenKey::new(b"another-key-of-32-bytes-long!!!!".to_vec()).unwrap();
        let t = encode(&other, target(), "", &page());
        assert_eq!(
            decode(&key(), target(), "", &t),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn forged_raw_key_in_the_old_services_format_is_refused() {
        // The old service accepted base64 of the DynamoDB key itself.
        let forged = URL_SAFE_NO_PAD
            .encode(br#"{"id":"x","targetId":"6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7"}"#);
        assert_eq!(
            decode(&key(), target(), "", &forged),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn short_keys_are_not_accepted() {
        assert!(TokenKey::new(b"short".to_vec()).is_none());
        assert!(format!("{:?}", key()).contains(".."));
    }

    proptest! {
        #[test]
        fn any_single_byte_change_is_detected(pos in 0usize..200, bit in 0u8..8) {
            let t = encode(&key(), target(), "q", &page());
            let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
            let i = pos % raw.len();
            raw[i] ^= 1 << bit;
            let tampered = URL_SAFE_NO_PAD.encode(raw);
            prop_assert_eq!(decode(&key(), target(), "q", &tampered), Err(TokenError::BadSignature));
        }
    }

    #[test]
    fn a_token_does_not_show_the_key_it_resumes_after() {
        let hidden = PageKey {
            id: "a-record-the-caller-may-not-see".into(),
            created_at: Some("2024-03-10T10:20:00.0000220Z".into()),
        };
        let t = encode(&key(), target(), "q", &hidden);
        let raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(
            !text.contains("a-record") && !text.contains("2024-03-10"),
            "{text}"
        );
        assert!(!text.contains(&target().to_string()));
        assert_eq!(decode(&key(), target(), "q", &t), Ok(hidden.clone()));
        // Two tokens for the same place differ: nothing repeats to compare.
        assert_ne!(encode(&key(), target(), "q", &hidden), t);
    }
}
