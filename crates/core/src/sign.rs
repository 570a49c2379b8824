//! Request signatures of the vendor APIs, as pure functions.
//!
//! The connections sign their requests with these and the sandbox verifies them with the very
//! same functions, so a signature bug cannot hide behind two implementations that agree with
//! each other: every function here is pinned by a test vector computed independently (a vendor's
//! published value, or `openssl`/`md5sum`/Python on the command line).
//!
//! - DingTalk custom robot: [`robot_sign`], [`robot_sign_query`].
//! - Feishu custom bot: [`feishu_bot_sign`].
//! - Jushuitan: [`jushuitan_sign`] (current open API), [`jushuitan_legacy_sign`].
//! - Kingdee API gateway: [`kingdee_string_to_sign`], [`kingdee_signature`], and the app-level
//!   [`kingdee_app_signature`].
//!
//! Nothing here logs or returns a secret; callers must not log the signed strings either, since
//! a DingTalk robot's string to sign contains its secret.

use std::collections::BTreeMap;

use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};
use md5::Digest as _;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// SHA-256's block size: HMAC keys are hashed down to or zero-padded up to this length.
const SHA256_BLOCK_BYTES: usize = 64;

/// HMAC-SHA256 of `message` keyed by `key`.
///
/// The key is normalised to one block here (RFC 2104: longer keys are hashed, shorter ones are
/// zero-padded), which is exactly what `Hmac::new_from_slice` would do; doing it ourselves makes
/// the construction infallible, so no error path exists for a case that cannot happen.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block_key = [0u8; SHA256_BLOCK_BYTES];
    if key.len() > SHA256_BLOCK_BYTES {
        let hashed = sha2::Sha256::digest(key);
        block_key[..hashed.len()].copy_from_slice(&hashed);
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let mut mac = HmacSha256::new(&block_key.into());
    mac.update(message);
    mac.finalize().into_bytes().into()
}

const LOWER_HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
const UPPER_HEX_DIGITS: &[u8; 16] = b"0123456789ABCDEF";

/// Append the two hexadecimal digits of `byte`, taken from `digits` (lower or upper case).
fn push_hex(out: &mut String, byte: u8, digits: &[u8; 16]) {
    out.push(char::from(digits[usize::from(byte >> 4)]));
    out.push(char::from(digits[usize::from(byte & 0x0f)]));
}

/// Lower-case hexadecimal of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        push_hex(&mut out, byte, LOWER_HEX_DIGITS);
    }
    out
}

/// Percent-encodes `input` byte by byte (UTF-8): bytes for which `keep` is true stay, a space
/// becomes `+` when `space_as_plus`, everything else becomes `%XX` in upper case.
fn percent_encode(input: &str, keep: impl Fn(u8) -> bool, space_as_plus: bool) -> String {
    let mut out = String::with_capacity(input.len());
    for byte in input.bytes() {
        if keep(byte) {
            out.push(char::from(byte));
        } else if byte == b' ' && space_as_plus {
            out.push('+');
        } else {
            out.push('%');
            push_hex(&mut out, byte, UPPER_HEX_DIGITS);
        }
    }
    out
}

/// RFC 3986 percent-encoding for a query value: only `A-Z a-z 0-9 - _ . ~` stay, a space is
/// `%20`. This is what a DingTalk robot's `sign` needs (`+`, `/`, `=` escaped).
pub fn url_encode(input: &str) -> String {
    percent_encode(input, is_unreserved, false)
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~')
}

// ---------------------------------------------------------------------------------------------
// DingTalk custom robot
// ---------------------------------------------------------------------------------------------

/// The `sign` of a DingTalk custom robot request: standard base64 of
/// HMAC-SHA256(secret, `"{timestamp_ms}\n{secret}"`), not yet URL-encoded.
pub fn robot_sign(secret: &str, timestamp_ms: i64) -> String {
    let string_to_sign = format!("{timestamp_ms}\n{secret}");
    let digest = hmac_sha256(secret.as_bytes(), string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// The query suffix a signed robot request carries: `timestamp={ms}&sign={url-encoded sign}`.
pub fn robot_sign_query(secret: &str, timestamp_ms: i64) -> String {
    format!(
        "timestamp={timestamp_ms}&sign={}",
        url_encode(&robot_sign(secret, timestamp_ms))
    )
}

// ---------------------------------------------------------------------------------------------
// Feishu custom bot
// ---------------------------------------------------------------------------------------------

/// The `sign` of a Feishu custom bot message: standard base64 of HMAC-SHA256 keyed by
/// `"{timestamp_secs}\n{secret}"` over an empty message (Feishu's documented construction; the
/// key, not the message, carries the secret).
pub fn feishu_bot_sign(secret: &str, timestamp_secs: i64) -> String {
    let key = format!("{timestamp_secs}\n{secret}");
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(key.as_bytes(), b""))
}

// ---------------------------------------------------------------------------------------------
// Jushuitan
// ---------------------------------------------------------------------------------------------

/// The `sign` of a Jushuitan open-API request: lower-case hex MD5 of the app secret followed by
/// `key + value` for every parameter in ascending key order, `sign` itself excluded. Empty
/// values take part (the vendor does not skip them).
pub fn jushuitan_sign(app_secret: &str, params: &BTreeMap<String, String>) -> String {
    let mut hasher = md5::Md5::new();
    hasher.update(app_secret.as_bytes());
    for (key, value) in params.iter().filter(|(key, _)| key.as_str() != "sign") {
        hasher.update(key.as_bytes());
        hasher.update(value.as_bytes());
    }
    to_hex(&hasher.finalize())
}

/// The `sign` of a legacy Jushuitan request (`/api/open/query.aspx`):
/// MD5 of `method + partnerid + "token" + token + "ts" + ts + partnerkey`, lower-case hex.
pub fn jushuitan_legacy_sign(
    method: &str,
    partner_id: &str,
    token: &str,
    ts: &str,
    partner_key: &str,
) -> String {
    let plain = format!("{method}{partner_id}token{token}ts{ts}{partner_key}");
    to_hex(&md5::Md5::digest(plain.as_bytes()))
}

// ---------------------------------------------------------------------------------------------
// Kingdee API gateway
// ---------------------------------------------------------------------------------------------

/// The gateway's own encoder: keeps `A-Z a-z 0-9 - _ . ~`, a space becomes `+`, everything else
/// `%XX` (upper case, UTF-8). Used for the path, for keys, and for the second pass over the query.
fn kingdee_enc(input: &str) -> String {
    percent_encode(input, is_unreserved, true)
}

/// `java.net.URLEncoder.encode(value, "UTF-8")`: keeps `A-Z a-z 0-9 - _ . *` (note: `*` kept,
/// `~` escaped), a space becomes `+`.
fn java_url_encode(input: &str) -> String {
    percent_encode(
        input,
        |byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'*'),
        true,
    )
}

/// The string the Kingdee gateway signs, as the official Java client (apigwclient) builds it:
///
/// ```text
/// METHOD \n enc(path) \n query \n (lowercase(header):value \n)*
/// ```
///
/// `query` encodes each parameter as `enc(key) = URLEncoder(value)`, sorts those strings (whole
/// `k=v` strings, so `a-b=..` sorts before `a=..`), then encodes both sides again with `enc()`
/// and joins them with `&`. `headers` are the signed headers (normally `X-Api-Nonce` and
/// `X-Api-TimeStamp`) in any order; they are emitted sorted by lower-case name, each line ending
/// with a newline, so the string always ends with one.
pub fn kingdee_string_to_sign(
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &[(String, String)],
) -> String {
    let mut pairs: Vec<String> = query
        .iter()
        .map(|(key, value)| format!("{}={}", kingdee_enc(key), java_url_encode(value)))
        .collect();
    pairs.sort();
    let query_part = pairs
        .iter()
        .map(|pair| {
            // Neither side can contain a raw `=` after the first pass, so the first `=` splits.
            let (key, value) = pair.split_once('=').unwrap_or((pair.as_str(), ""));
            format!("{}={}", kingdee_enc(key), kingdee_enc(value))
        })
        .collect::<Vec<_>>()
        .join("&");

    let mut signed_headers: Vec<(String, &str)> = headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.as_str()))
        .collect();
    signed_headers.sort();

    let mut out = format!(
        "{}\n{}\n{}\n",
        method.to_ascii_uppercase(),
        kingdee_enc(path),
        query_part
    );
    for (name, value) in signed_headers {
        out.push_str(&name);
        out.push(':');
        out.push_str(value);
        out.push('\n');
    }
    out
}

/// `X-Api-Signature`: base64 of the lower-case hex of HMAC-SHA256(client_secret, string_to_sign).
/// (The hex text is what gets base64-encoded, not the raw digest.)
pub fn kingdee_signature(client_secret: &str, string_to_sign: &str) -> String {
    let hex = to_hex(&hmac_sha256(
        client_secret.as_bytes(),
        string_to_sign.as_bytes(),
    ));
    base64::engine::general_purpose::STANDARD.encode(hex)
}

/// `app_signature` for `kingdee_auth_token`: base64(hex(HMAC-SHA256(app_secret, app_key))).
pub fn kingdee_app_signature(app_key: &str, app_secret: &str) -> String {
    kingdee_signature(app_secret, app_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn sign_hmac_matches_rfc4231_including_long_keys() {
        // RFC 4231 test case 2 (short key) and 6 (131-byte key, hashed first).
        assert_eq!(
            to_hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            to_hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn sign_robot_vector() {
        // python3: base64(hmac.new(b'SEC123', b'1577262236757\nSEC123', sha256).digest())
        assert_eq!(
            robot_sign("SEC123", 1_577_262_236_757),
            "Z/IOagKYTkrnYtxAsTKneRe0bzmlPCH3ZDJPTD2h9QA="
        );
        assert_eq!(
            robot_sign_query("SEC123", 1_577_262_236_757),
            "timestamp=1577262236757&sign=Z%2FIOagKYTkrnYtxAsTKneRe0bzmlPCH3ZDJPTD2h9QA%3D"
        );
    }

    #[test]
    fn sign_feishu_bot_vector() {
        // python3: base64(hmac.new('1599360473\ndemo-secret 飞书'.encode(), b'', sha256).digest())
        assert_eq!(
            feishu_bot_sign("demo-secret 飞书", 1_599_360_473),
            "WoCn18JQg94XAOGuPKs8gGBslw/re6xHVWPbsqw2F38="
        );
    }

    /// The parameters of the Jushuitan vectors.
    fn jushuitan_params() -> BTreeMap<String, String> {
        pairs(&[
            ("timestamp", "100"),
            ("app_key", "app"),
            ("charset", "utf-8"),
        ])
        .into_iter()
        .collect()
    }

    #[test]
    fn sign_jushuitan_vector() {
        let params = jushuitan_params();
        assert_eq!(
            jushuitan_sign("secret", &params),
            "706427ca94e342781ac36d501151cb10"
        );
    }

    #[test]
    fn sign_jushuitan_skips_sign_but_not_empty_values() {
        let mut params = jushuitan_params();
        params.insert("sign".into(), "whatever".into());
        assert_eq!(
            jushuitan_sign("secret", &params),
            "706427ca94e342781ac36d501151cb10"
        );
        params.insert("biz".into(), String::new());
        // printf 'secretapp_keyappbizcharsetutf-8timestamp100' | md5sum
        assert_eq!(
            jushuitan_sign("secret", &params),
            "584a162e159cb5c63d97cc3a78292eca"
        );
    }

    #[test]
    fn sign_jushuitan_legacy_public_vector() {
        // printf 'shops.queryywv5jGT8ge6Pvlq3FZSPol345asdtoken181ee8952a88f5a57db52587472c3798ts1540370062ywv5jGT8ge6Pvlq3FZSPol2323' | md5sum
        assert_eq!(
            jushuitan_legacy_sign(
                "shops.query",
                "ywv5jGT8ge6Pvlq3FZSPol345asd",
                "181ee8952a88f5a57db52587472c3798",
                "1540370062",
                "ywv5jGT8ge6Pvlq3FZSPol2323"
            ),
            "aebf9d0146764d578d9c86e3b7783204"
        );
    }

    #[test]
    fn sign_kingdee_app_signature_vector() {
        assert_eq!(
            kingdee_app_signature("abc", "abc123"),
            "ZDljMTI3NGIyNTE1MTRkYzlkNjc1MDNhYjUzMzgzNWMyY2M4YTdjMzdmNmM3YTVlNDkxMTkzNjdiOTFjNzUyZQ=="
        );
    }

    #[test]
    fn sign_kingdee_string_to_sign_plain_request() {
        let s = kingdee_string_to_sign(
            "post",
            "/jdyconnector/app_management/push_app_authorize",
            &pairs(&[("outerInstanceId", "219672488890732544")]),
            // Out of order on purpose: the function sorts by lower-case name.
            &pairs(&[
                ("X-Api-TimeStamp", "1700000000000"),
                ("X-Api-Nonce", "abc123"),
            ]),
        );
        assert_eq!(
            s,
            "POST\n%2Fjdyconnector%2Fapp_management%2Fpush_app_authorize\n\
             outerInstanceId=219672488890732544\n\
             x-api-nonce:abc123\nx-api-timestamp:1700000000000\n"
        );
    }

    #[test]
    fn sign_kingdee_string_to_sign_double_encoding() {
        // By hand:
        //   name    = "a b*c~" -> first pass  name=a+b*c%7E   (URLEncoder keeps *, escapes ~)
        //   key two = "/中"    -> first pass  key+two=%2F%E4%B8%AD
        //   a       = "1"      -> first pass  a=1
        // sorted: a=1 < key+two=... < name=...; second pass enc() on both sides:
        //   key+two -> key%2Btwo ; %2F%E4%B8%AD -> %252F%25E4%25B8%25AD
        //   a+b*c%7E -> a%2Bb%2Ac%257E
        let s = kingdee_string_to_sign(
            "GET",
            "/api/测试 v1~x",
            &pairs(&[("name", "a b*c~"), ("key two", "/中"), ("a", "1")]),
            &pairs(&[("X-Api-Nonce", "n"), ("X-Api-TimeStamp", "1")]),
        );
        assert_eq!(
            s,
            "GET\n%2Fapi%2F%E6%B5%8B%E8%AF%95+v1~x\n\
             a=1&key%2Btwo=%252F%25E4%25B8%25AD&name=a%2Bb%2Ac%257E\n\
             x-api-nonce:n\nx-api-timestamp:1\n"
        );
    }

    #[test]
    fn sign_kingdee_string_to_sign_sorts_whole_pairs_not_keys() {
        // "a-b=1" < "a=2" because '-' (0x2D) < '=' (0x3D), although key "a" < key "a-b";
        // "a_c=3" comes last because '_' (0x5F) > '='.
        let s = kingdee_string_to_sign(
            "GET",
            "/x",
            &pairs(&[("a_c", "3"), ("a", "2"), ("a-b", "1")]),
            &[],
        );
        assert_eq!(s, "GET\n%2Fx\na-b=1&a=2&a_c=3\n");
    }

    #[test]
    fn sign_kingdee_string_to_sign_empty_query_keeps_its_line() {
        let s = kingdee_string_to_sign(
            "GET",
            "/",
            &[],
            &pairs(&[("X-Api-Nonce", "q"), ("X-Api-TimeStamp", "2")]),
        );
        assert_eq!(s, "GET\n%2F\n\nx-api-nonce:q\nx-api-timestamp:2\n");
    }

    #[test]
    fn sign_kingdee_signature_is_base64_of_hex() {
        // python3: base64(hmac.new(b'kd-secret', s, sha256).hexdigest().encode())
        let s = "POST\n%2Fjdyconnector%2Fapp_management%2Fpush_app_authorize\n\
                 outerInstanceId=219672488890732544\n\
                 x-api-nonce:abc123\nx-api-timestamp:1700000000000\n";
        assert_eq!(kingdee_signature("kd-secret", s), KINGDEE_SIGNATURE_VECTOR);
    }

    /// Computed with Python's hmac/hashlib/base64 for the string in the test above.
    const KINGDEE_SIGNATURE_VECTOR: &str =
        "N2M5ZmQyZWM0NWY1NmE0ZjliZDJkYzkwNjYwYWVkNjE4NjczYTA5MTc3NzM0ZTU5YzIwMDg1NTBlYzQ3NGY0Zg==";

    #[test]
    fn sign_url_encode_escapes_reserved() {
        assert_eq!(url_encode("a+b/c=d e~"), "a%2Bb%2Fc%3Dd%20e~");
    }
}
