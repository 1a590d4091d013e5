//! The raw query string, percent-decoded by hand.
//!
//! Why not axum's `Query` extractor: a query it cannot deserialize would be
//! answered by axum, without the spec's Error body, and the request log and
//! the redaction of the API key need the query as it was sent. So the raw
//! query is kept, and decoded here leniently: `+` is a space and a `%` that
//! does not start an escape stays a `%`, so nothing is refused at this stage
//! (a bad value is a 400 of the operation that reads it).

/// Percent-decode one key or value (`+` is a space).
pub(crate) fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encode everything but the unreserved characters: the form a
/// client would send the key in, so it can be redacted in that form too.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Query pairs, percent-decoded.
pub(crate) fn query_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The first value of a parameter.
pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The name of a raw `key=value` pair, decoded.
pub(crate) fn pair_name(raw_pair: &str) -> String {
    decode(raw_pair.split('=').next().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        assert_eq!(decode("a%20b+c%2"), "a b c%2");
        assert_eq!(decode("%5Fapikey"), "_apikey");
    }
}
