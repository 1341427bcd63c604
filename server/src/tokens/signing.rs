//! Key material: generating key pairs, and signing with a key parsed once.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Cause, TokenError};
use crate::store::StoredKey;

pub(super) fn alg_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::EdDSA => "EdDSA",
        Algorithm::ES256 => "ES256",
        Algorithm::RS256 => "RS256",
        _ => "HS256",
    }
}

/// A fresh key pair; RSA generation takes a while, so it runs off the async runtime.
pub(super) async fn generate_key(
    algorithm: Algorithm,
    now: OffsetDateTime,
) -> Result<StoredKey, TokenError> {
    tokio::task::spawn_blocking(move || generate_key_blocking(algorithm, now))
        .await
        .map_err(|e| TokenError::KeyGeneration(e.into()))?
}

fn generate_key_blocking(
    algorithm: Algorithm,
    now: OffsetDateTime,
) -> Result<StoredKey, TokenError> {
    let failed = |e: Cause| TokenError::KeyGeneration(e);
    let kid = Uuid::new_v4().simple().to_string();
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let rng = SystemRandom::new();
    let (private_der, public) = match algorithm {
        Algorithm::EdDSA => {
            let pkcs8 =
                signature::Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| failed(e.into()))?;
            let pair = signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                .map_err(|e| failed(e.into()))?;
            let x = b64(pair.public_key().as_ref());
            (
                pkcs8.as_ref().to_vec(),
                json!({ "kty": "OKP", "crv": "Ed25519", "x": x }),
            )
        }
        Algorithm::ES256 => {
            let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
            let pkcs8 =
                signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|e| failed(e.into()))?;
            let pair = signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref())
                .map_err(|e| failed(e.into()))?;
            // Uncompressed point: 0x04 || x || y.
            let point = pair.public_key().as_ref();
            let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
            (
                pkcs8.as_ref().to_vec(),
                json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y }),
            )
        }
        Algorithm::RS256 => {
            use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|e| failed(e.into()))?;
            let pkcs8: Pkcs8V1Der = pair.as_der().map_err(|e| failed(e.into()))?;
            let public = pair.public_key();
            let n = b64(public.modulus().big_endian_without_leading_zero());
            let e = b64(public.exponent().big_endian_without_leading_zero());
            (
                pkcs8.as_ref().to_vec(),
                json!({ "kty": "RSA", "n": n, "e": e }),
            )
        }
        other => {
            return Err(TokenError::KeyGeneration(
                format!("{other:?} keys are not generated").into(),
            ))
        }
    };
    let mut jwk = public;
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(alg_name(algorithm));
    jwk["use"] = json!("sig");
    Ok(StoredKey {
        kid,
        alg: alg_name(algorithm).to_owned(),
        private_der,
        public_jwk: jwk.to_string(),
        created_at: now,
        activates_at: now,
        retired_at: None,
    })
}

/// A signing key parsed once. (`jsonwebtoken` parses the DER on every signature, which for
/// Ed25519 and ECDSA costs more than the signature itself.)
pub(super) enum Signer {
    Ed25519(signature::Ed25519KeyPair),
    Ecdsa(signature::EcdsaKeyPair),
    Rsa(signature::RsaKeyPair),
    /// Boxed: aws-lc's HMAC key holds its precomputed state inline (over a kilobyte).
    Hmac(Box<aws_lc_rs::hmac::Key>),
}

impl Signer {
    pub(super) fn from_der(algorithm: Algorithm, der: &[u8]) -> Result<Signer, Cause> {
        Ok(match algorithm {
            Algorithm::EdDSA => {
                Signer::Ed25519(signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)?)
            }
            Algorithm::ES256 => Signer::Ecdsa(signature::EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                der,
            )?),
            // PKCS#8 since keys are generated with aws-lc-rs; PKCS#1 from before.
            Algorithm::RS256 => Signer::Rsa(
                signature::RsaKeyPair::from_pkcs8(der)
                    .or_else(|_| signature::RsaKeyPair::from_der(der))?,
            ),
            other => return Err(format!("{other:?} keys are not stored").into()),
        })
    }

    pub(super) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, TokenError> {
        let failed = |e: aws_lc_rs::error::Unspecified| TokenError::Signing(e.into());
        let rng = SystemRandom::new();
        Ok(match self {
            Signer::Ed25519(key) => key.sign(message).as_ref().to_vec(),
            Signer::Ecdsa(key) => key.sign(&rng, message).map_err(failed)?.as_ref().to_vec(),
            Signer::Rsa(key) => {
                let mut signature = vec![0; key.public_key().modulus_len()];
                key.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(failed)?;
                signature
            }
            Signer::Hmac(key) => aws_lc_rs::hmac::sign(key, message).as_ref().to_vec(),
        })
    }
}
