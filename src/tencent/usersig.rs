//! UserSig v2: generation and verification exactly as the official `tls-sig-api-v2` libraries do it.
//!
//! Owns the two secret-bearing types, [`SecretKey`] and [`UserSig`]. Their `Debug` output is
//! redacted and neither implements `Display`, so a secret can only leave through an explicit
//! `expose`/`as_str` call at the few places that must send or print it.

use std::fmt;
use std::io::{Read, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The app's secret key, as the console shows it. Used as HMAC key bytes verbatim (not hex-decoded).
#[derive(Clone)]
pub struct SecretKey(String);

impl SecretKey {
    /// Wraps a key read from a file or the environment; surrounding whitespace (a trailing newline
    /// from `echo key > file`) is not part of any key the console issues, so it is dropped.
    pub fn new(raw: &str) -> Option<Self> {
        let key = raw.trim();
        (!key.is_empty()).then(|| SecretKey(key.to_owned()))
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// A SHA-256 of the key: tells two keys apart (a rotated key file) without holding or
    /// comparing the secret itself anywhere else.
    pub(crate) fn fingerprint(&self) -> [u8; 32] {
        use sha2::Digest;
        Sha256::digest(self.bytes()).into()
    }
}

impl<'de> serde::Deserialize<'de> for SecretKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        SecretKey::new(&raw).ok_or_else(|| serde::de::Error::custom("the secret key is empty"))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// An app's credentials, without an endpoint: what a UserSig is made from (and, for the
/// emulator, what it accepts).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub sdkappid: u64,
    pub identifier: String,
    pub key: SecretKey,
}

/// A signed UserSig. Travels only in the request query string, which the client never logs.
#[derive(Clone, PartialEq, Eq)]
pub struct UserSig(String);

impl UserSig {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserSig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserSig(<redacted>)")
    }
}

/// Why a UserSig was refused, in the order the official verifiers check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum VerifyError {
    #[error(
        "the UserSig cannot be decoded ({0}); pass the whole string as `subsync usersig` printed it"
    )]
    Decode(String),
    #[error("the UserSig is for SDKAppID {found}, not {expected}; sign it for the right app")]
    AppId { expected: u64, found: u64 },
    #[error(
        "the UserSig is for identifier {found:?}, not {expected:?}; sign it for that identifier"
    )]
    Identifier { expected: String, found: String },
    #[error("the UserSig expired at {}; generate a fresh one", crate::clock::rfc3339(*expired_at))]
    Expired { expired_at: i64 },
    #[error("the UserSig signature does not match; it was signed with another secret key")]
    Signature,
}

/// The fields of a decoded UserSig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub(crate) identifier: String,
    pub(crate) sdkappid: u64,
    pub(crate) time: i64,
    pub(crate) expire: i64,
    pub(crate) userbuf: Option<String>,
    sig: String,
    /// The JSON text as found inside the UserSig, for `usersig decode`.
    pub(crate) json: serde_json::Value,
}

impl Decoded {
    /// Unix time after which the UserSig is no longer accepted.
    pub(crate) fn expires_at(&self) -> i64 {
        self.time.saturating_add(self.expire)
    }
}

/// Signs `identifier` for `sdkappid`, valid `expire` seconds from `time`.
pub fn generate(
    key: &SecretKey,
    sdkappid: u64,
    identifier: &str,
    time: i64,
    expire: i64,
) -> UserSig {
    let signed = Signed {
        identifier,
        sdkappid,
        time,
        expire,
        userbuf: None,
    };
    let sig = STANDARD.encode(signed.mac(key).finalize().into_bytes());
    // Field order and types as the official Python/Java libraries write them.
    let doc = serde_json::json!({
        "TLS.ver": "2.0",
        "TLS.identifier": identifier,
        "TLS.sdkappid": sdkappid,
        "TLS.expire": expire,
        "TLS.time": time,
        "TLS.sig": sig,
    });
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    // Writing into a Vec cannot fail.
    let compressed = encoder
        .write_all(doc.to_string().as_bytes())
        .and_then(|()| encoder.finish())
        .unwrap_or_default();
    UserSig(to_url_alphabet(&STANDARD.encode(compressed)))
}

/// Decodes a UserSig without checking anything but its form.
pub(crate) fn decode(usersig: &str) -> Result<Decoded, VerifyError> {
    let bad = |why: &str| VerifyError::Decode(why.to_owned());
    let standard = from_url_alphabet(usersig.trim());
    let compressed = STANDARD.decode(standard).map_err(|_| bad("not base64"))?;
    // A UserSig inflates to a few hundred bytes; the cap keeps a hostile input from costing memory.
    let mut text = Vec::new();
    ZlibDecoder::new(compressed.as_slice())
        .take(64 * 1024)
        .read_to_end(&mut text)
        .map_err(|_| bad("not zlib data"))?;
    let json: serde_json::Value = serde_json::from_slice(&text).map_err(|_| bad("not JSON"))?;
    let field = |name: &str| json.get(name).ok_or_else(|| bad(&format!("no {name}")));
    let string = |name: &str| -> Result<String, VerifyError> {
        field(name)?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| bad(&format!("{name} is not a string")))
    };
    // Some libraries write numbers as JSON strings; accept both.
    let number = |name: &str| -> Result<i64, VerifyError> {
        let value = field(name)?;
        value
            .as_i64()
            .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| bad(&format!("{name} is not a number")))
    };
    // An SDKAppID is unsigned: read it as such, not through `number`'s i64.
    let appid = field("TLS.sdkappid")?;
    let sdkappid = appid
        .as_u64()
        .or_else(|| appid.as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| bad("TLS.sdkappid is not an unsigned number"))?;
    let userbuf = match json.get("TLS.userbuf") {
        Some(v) => Some(
            v.as_str()
                .ok_or_else(|| bad("TLS.userbuf is not a string"))?
                .to_owned(),
        ),
        None => None,
    };
    Ok(Decoded {
        identifier: string("TLS.identifier")?,
        sdkappid,
        time: number("TLS.time")?,
        expire: number("TLS.expire")?,
        userbuf,
        sig: string("TLS.sig")?,
        json,
    })
}

/// Verifies a UserSig for `sdkappid`/`identifier` at Unix time `now`, checking in the official
/// verifiers' order: form, app, identifier, expiry, then the signature.
pub(crate) fn verify(
    usersig: &str,
    key: &SecretKey,
    sdkappid: u64,
    identifier: &str,
    now: i64,
) -> Result<Decoded, VerifyError> {
    let decoded = decode(usersig)?;
    if decoded.sdkappid != sdkappid {
        return Err(VerifyError::AppId {
            expected: sdkappid,
            found: decoded.sdkappid,
        });
    }
    if decoded.identifier != identifier {
        return Err(VerifyError::Identifier {
            expected: identifier.to_owned(),
            found: decoded.identifier,
        });
    }
    if now > decoded.expires_at() {
        return Err(VerifyError::Expired {
            expired_at: decoded.expires_at(),
        });
    }
    let userbuf = match &decoded.userbuf {
        Some(b64) => Some(
            STANDARD
                .decode(b64)
                .map_err(|_| VerifyError::Decode("TLS.userbuf is not base64".into()))?,
        ),
        None => None,
    };
    let signed = Signed {
        identifier: &decoded.identifier,
        sdkappid: decoded.sdkappid,
        time: decoded.time,
        expire: decoded.expire,
        userbuf: userbuf.as_deref(),
    };
    let expected = signed.mac(key);
    let given = STANDARD
        .decode(&decoded.sig)
        .map_err(|_| VerifyError::Signature)?;
    // verify_slice compares in constant time.
    expected
        .verify_slice(&given)
        .map_err(|_| VerifyError::Signature)?;
    Ok(decoded)
}

/// The fields the signature covers.
struct Signed<'a> {
    identifier: &'a str,
    sdkappid: u64,
    time: i64,
    expire: i64,
    userbuf: Option<&'a [u8]>,
}

impl Signed<'_> {
    /// HMAC-SHA256 keyed with the key's bytes over the documented text, every line ending in `\n`.
    fn mac(&self, key: &SecretKey) -> Hmac<Sha256> {
        let Signed {
            identifier,
            sdkappid,
            time,
            expire,
            userbuf,
        } = self;
        let mut text = format!(
            "TLS.identifier:{identifier}\nTLS.sdkappid:{sdkappid}\nTLS.time:{time}\nTLS.expire:{expire}\n"
        );
        if let Some(buf) = userbuf {
            text.push_str(&format!("TLS.userbuf:{}\n", STANDARD.encode(buf)));
        }
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(key.bytes()).unwrap_or_else(|_| unreachable!());
        mac.update(text.as_bytes());
        mac
    }
}

fn to_url_alphabet(standard: &str) -> String {
    standard
        .replace('+', "*")
        .replace('/', "-")
        .replace('=', "_")
}

fn from_url_alphabet(sig: &str) -> String {
    sig.replace('*', "+").replace('-', "/").replace('_', "=")
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR_KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
    const VECTOR_APP: u64 = 1_400_000_000;
    const VECTOR_TIME: i64 = 1_569_910_200;
    const VECTOR_EXPIRE: i64 = 15_552_000;
    const OFFICIAL_USERSIG: &str = "eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwjDB4pTsxIKCzBQlK0MTAyiAyKRWFGQWpQLFTU1NjeCiJZm5YDEzS0tDAyOYaHFmOtBM54KsUqeUwGLLqPK8UndHryCL-Lx8-1RPy7Ty1AijMk9f30hLk0x-r3CvSFulWgAPYy*9";

    fn key() -> SecretKey {
        SecretKey::new(VECTOR_KEY).unwrap()
    }

    fn vector_sig(userbuf: Option<&[u8]>) -> String {
        let signed = Signed {
            identifier: "0",
            sdkappid: VECTOR_APP,
            time: VECTOR_TIME,
            expire: VECTOR_EXPIRE,
            userbuf,
        };
        STANDARD.encode(signed.mac(&key()).finalize().into_bytes())
    }

    #[test]
    fn public_vector_signature_is_reproduced() {
        let sig = vector_sig(None);
        assert_eq!(sig, "CpjuBdQs9ZwnuGAJR8onoOeI9fweX2vIMMY94iOJWJY=");
    }

    #[test]
    fn public_vector_with_userbuf_is_reproduced() {
        let sig = vector_sig(Some(b"abc"));
        assert_eq!(sig, "bC3u5cuslSg8Ds7KY58mhSkTrxunrFu50dkdkCYH4i8=");
    }

    #[test]
    fn official_library_usersig_verifies_while_valid_and_expires_after() {
        let decoded = verify(OFFICIAL_USERSIG, &key(), VECTOR_APP, "0", VECTOR_TIME + 10).unwrap();
        assert_eq!(decoded.sig, "CpjuBdQs9ZwnuGAJR8onoOeI9fweX2vIMMY94iOJWJY=");
        let late = VECTOR_TIME + VECTOR_EXPIRE + 1;
        assert_eq!(
            verify(OFFICIAL_USERSIG, &key(), VECTOR_APP, "0", late),
            Err(VerifyError::Expired {
                expired_at: VECTOR_TIME + VECTOR_EXPIRE
            })
        );
    }

    #[test]
    fn generated_usersig_round_trips_and_matches_the_vector_signature() {
        let sig = generate(&key(), VECTOR_APP, "0", VECTOR_TIME, VECTOR_EXPIRE);
        let decoded = verify(sig.as_str(), &key(), VECTOR_APP, "0", VECTOR_TIME).unwrap();
        assert_eq!(decoded.sig, "CpjuBdQs9ZwnuGAJR8onoOeI9fweX2vIMMY94iOJWJY=");
        assert!(!sig.as_str().contains(['+', '/', '=']));
    }

    #[test]
    fn hand_built_usersig_with_spaces_and_other_key_order_is_accepted() {
        // As another official library writes it: spaces after separators, keys reordered.
        let json = format!(
            "{{ \"TLS.sig\" : \"{}\", \"TLS.time\" : {VECTOR_TIME}, \"TLS.ver\" : \"2.0\", \"TLS.expire\" : {VECTOR_EXPIRE}, \"TLS.sdkappid\" : {VECTOR_APP}, \"TLS.identifier\" : \"0\" }}",
            vector_sig(None)
        );
        let mut enc = ZlibEncoder::new(Vec::new(), Compression::best());
        enc.write_all(json.as_bytes()).unwrap();
        let sig = to_url_alphabet(&STANDARD.encode(enc.finish().unwrap()));
        assert!(verify(&sig, &key(), VECTOR_APP, "0", VECTOR_TIME).is_ok());
    }

    #[test]
    fn each_failure_has_its_own_reason() {
        let sig = generate(&key(), VECTOR_APP, "admin", 1000, 100);
        assert!(matches!(
            verify("%%%", &key(), VECTOR_APP, "admin", 1000),
            Err(VerifyError::Decode(_))
        ));
        assert!(matches!(
            verify("eJzLSM3JyQcABiwCFQ__", &key(), VECTOR_APP, "admin", 1000),
            Err(VerifyError::Decode(_))
        ));
        assert_eq!(
            verify(sig.as_str(), &key(), 1, "admin", 1000),
            Err(VerifyError::AppId {
                expected: 1,
                found: VECTOR_APP
            })
        );
        assert!(matches!(
            verify(sig.as_str(), &key(), VECTOR_APP, "other", 1000),
            Err(VerifyError::Identifier { .. })
        ));
        assert!(matches!(
            verify(sig.as_str(), &key(), VECTOR_APP, "admin", 1101),
            Err(VerifyError::Expired { .. })
        ));
        let other = SecretKey::new("another-key").unwrap();
        assert_eq!(
            verify(sig.as_str(), &other, VECTOR_APP, "admin", 1000),
            Err(VerifyError::Signature)
        );
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let sig = generate(&key(), VECTOR_APP, "admin", 1000, 100);
        assert_eq!(format!("{:?}", key()), "SecretKey(<redacted>)");
        assert_eq!(format!("{sig:?}"), "UserSig(<redacted>)");
    }
}
