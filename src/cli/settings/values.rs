//! What a setting's value looks like: sizes (`4G`), durations (`5s`),
//! stream counts, metrics addresses, switches; parsed from a flag or an
//! `-o` option (the same parser for both) and printed back.
//!
//! Subtle: sizes are powers of 1024 whatever the suffix says (`512MB` is
//! 512 MiB), so that a unit has one meaning and [`format_size`] prints any
//! size back exactly; and a bare port as a metrics address means loopback,
//! so metrics never leave the machine unless the user names an interface.

use std::net::SocketAddr;

/// Bounds of `download_chunk_size`: below 64 KiB a request's round trip
/// outweighs its transfer; above 1 GiB a chunk is a whole file.
pub const CHUNK_SIZE_RANGE: (u64, u64) = (64 << 10, 1 << 30);
/// Bounds of `download_streams`.
pub const STREAMS_RANGE: (usize, usize) = (1, 16);

/// Parse `123`, `64K`, `512M`, `4G`, `1T` (powers of 1024; `KiB`, `MB` ... accepted).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| format!("not a size: {s:?}"))?;
    let mult: u64 = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches('B')
        .trim_end_matches('I')
    {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("unknown size unit in {s:?} (use K, M, G or T)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size too large: {s:?}"))
}

/// `4294967296` → `4G`: the largest unit that divides the size exactly.
pub fn format_size(n: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if n != 0 && n % (1u64 << shift) == 0 {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

/// A `download_chunk_size` value: a size within [`CHUNK_SIZE_RANGE`].
pub fn parse_chunk_size(s: &str) -> Result<u64, String> {
    check_chunk_size(parse_size(s)?)
}

pub fn check_chunk_size(n: u64) -> Result<u64, String> {
    let (lo, hi) = CHUNK_SIZE_RANGE;
    if (lo..=hi).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "a chunk size from {} to {} (e.g. 8M), not {n} bytes",
            format_size(lo),
            format_size(hi)
        ))
    }
}

/// A `download_streams` value: a count within [`STREAMS_RANGE`].
pub fn parse_streams(s: &str) -> Result<usize, String> {
    let (lo, hi) = STREAMS_RANGE;
    match s.trim().parse::<usize>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(format!("a number of streams from {lo} to {hi}, not {s:?}")),
    }
}

/// A `metrics_addr` value: `HOST:PORT` with HOST an IP address, or a bare
/// `PORT` (or `:PORT`), which means loopback: metrics are for the machine's
/// own scraper unless the user names another interface.
pub fn parse_metrics_addr(s: &str) -> Result<SocketAddr, String> {
    let t = s.trim();
    let port = t.strip_prefix(':').unwrap_or(t);
    if let Ok(p) = port.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], p)));
    }
    if let Some(p) = t.strip_prefix("localhost:") {
        if let Ok(p) = p.parse::<u16>() {
            return Ok(SocketAddr::from(([127, 0, 0, 1], p)));
        }
    }
    t.parse::<SocketAddr>().map_err(|_| {
        format!("an address like 127.0.0.1:9101 (an IP address and a port) or a port, not {s:?}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("64kb"), Ok(64 << 10));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn sizes_format() {
        assert_eq!(format_size(4 << 30), "4G");
        assert_eq!(format_size(512 << 20), "512M");
        assert_eq!(format_size(1000), "1000");
        assert_eq!(format_size(0), "0");
    }
}
