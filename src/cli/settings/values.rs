//! What a setting's value looks like in each form: as the text of a flag
//! or an `-o` option (one parser serves both), as a config-file value
//! (TOML, see [`from_toml`]), as `importfs config` prints it and as the
//! background mount's command line passes it on ([`Value`]).
//!
//! Subtle: sizes are powers of 1024 whatever the suffix says (`512MB` is
//! 512 MiB), so that a unit has one meaning and [`format_size`] prints any
//! size back exactly; and a bare port as a metrics address means loopback,
//! so metrics never leave the machine unless the user names an interface.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::dirs::expand_path;

/// Bounds of `download_chunk_size`: below 64 KiB a request's round trip
/// outweighs its transfer; above 1 GiB a chunk is a whole file.
pub const CHUNK_SIZE_RANGE: (u64, u64) = (64 << 10, 1 << 30);
/// Bounds of `download_streams`.
pub const STREAMS_RANGE: (usize, usize) = (1, 16);

/// How a mount reaches the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// FUSE: fuser on Linux, macFUSE on macOS (the `macfuse` feature).
    Fuse,
    /// A loopback NFSv3 server, mounted with the OS's own NFS client.
    Nfs,
}

impl Backend {
    /// FUSE on Linux; NFS on macOS, whose FUSE is a kernel extension
    /// (`platform::NFS_BY_DEFAULT`).
    pub fn default_for_os() -> Backend {
        if crate::platform::NFS_BY_DEFAULT {
            Backend::Nfs
        } else {
            Backend::Fuse
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Fuse => "fuse",
            Backend::Nfs => "nfs",
        }
    }
}

/// A poll interval: `0` (off), or a duration of at least a second.
pub fn parse_poll_interval(s: &str) -> Result<Duration, String> {
    let d = if s.trim() == "0" {
        Duration::ZERO
    } else {
        parse_duration(s)?
    };
    if !d.is_zero() && d < Duration::from_secs(1) {
        return Err(format!("{s}: at least 1s (or 0 to turn polling off)"));
    }
    Ok(d)
}

/// `fuse` or `nfs`.
pub fn parse_backend(s: &str) -> Result<Backend, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "fuse" => Ok(Backend::Fuse),
        "nfs" => Ok(Backend::Nfs),
        _ => Err(format!("not a backend: {s:?} (fuse or nfs)")),
    }
}

/// A proxy's URL, which may hold its credentials: shown with them
/// redacted (`importfs config`, Debug), and never put on a command line,
/// where `ps` would show it (a background mount gets it through its stdin,
/// with the key).
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl(pub String);

impl std::fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::api::redact_url(&self.0))
    }
}

/// An http:// or https:// proxy URL.
pub fn parse_proxy(s: &str) -> Result<ProxyUrl, String> {
    let shown = crate::api::redact_url(s);
    let url = reqwest::Url::parse(s.trim()).map_err(|_| format!("not a proxy URL: {shown}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "not a proxy URL: {shown} (http://HOST:PORT or https://HOST:PORT)"
        ));
    }
    Ok(ProxyUrl(s.trim().to_owned()))
}

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
        if n != 0 && n.is_multiple_of(1u64 << shift) {
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

/// A duration as humantime writes it (`5s`, `1m30s`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 5s, 1m)"))
}

/// A switch's value in an `-o` option (`ro=false`); a bare flag means true.
pub fn parse_switch(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

/// What a setting's type does besides parsing (clap and serde do that).
pub trait Value: Clone {
    /// As `importfs config` prints it: quoted, unless a number or a switch.
    fn shown(&self) -> String;
    /// As the argument of its flag, which parses it back to the same value.
    fn as_arg(&self) -> OsString;
    /// The flag and its argument, to pass the value on to another importfs.
    fn to_flag(&self, flag: &str) -> Vec<OsString> {
        vec![flag.into(), self.as_arg()]
    }
    /// A value from the config file in `dir`: only a path changes (see
    /// [`expand_path`]).
    fn in_dir(self, _dir: &Path) -> Self {
        self
    }
}

impl Value for String {
    fn shown(&self) -> String {
        format!("{self:?}")
    }
    fn as_arg(&self) -> OsString {
        self.into()
    }
}

impl Value for PathBuf {
    fn shown(&self) -> String {
        format!("{:?}", self.display().to_string())
    }
    fn as_arg(&self) -> OsString {
        self.into()
    }
    fn in_dir(self, dir: &Path) -> Self {
        expand_path(&self, dir)
    }
}

impl Value for Duration {
    fn shown(&self) -> String {
        format!("{:?}", humantime::format_duration(*self).to_string())
    }
    fn as_arg(&self) -> OsString {
        humantime::format_duration(*self).to_string().into()
    }
}

/// Every `u64` setting is a size in bytes.
impl Value for u64 {
    fn shown(&self) -> String {
        format!("{:?}", format_size(*self))
    }
    fn as_arg(&self) -> OsString {
        self.to_string().into()
    }
}

impl Value for usize {
    fn shown(&self) -> String {
        self.to_string()
    }
    fn as_arg(&self) -> OsString {
        self.to_string().into()
    }
}

/// A switch: its flag alone means true, and false is no flag at all.
impl Value for bool {
    fn shown(&self) -> String {
        self.to_string()
    }
    fn as_arg(&self) -> OsString {
        self.to_string().into()
    }
    fn to_flag(&self, flag: &str) -> Vec<OsString> {
        if *self {
            vec![flag.into()]
        } else {
            Vec::new()
        }
    }
}

impl Value for Backend {
    fn shown(&self) -> String {
        format!("{:?}", self.name())
    }
    fn as_arg(&self) -> OsString {
        self.name().into()
    }
}

impl Value for ProxyUrl {
    fn shown(&self) -> String {
        format!("{:?}", crate::api::redact_url(&self.0))
    }
    fn as_arg(&self) -> OsString {
        self.0.clone().into()
    }
    /// Never on a command line: its credentials would show in `ps`.
    fn to_flag(&self, _flag: &str) -> Vec<OsString> {
        Vec::new()
    }
}

impl Value for SocketAddr {
    fn shown(&self) -> String {
        format!("{:?}", self.to_string())
    }
    fn as_arg(&self) -> OsString {
        self.to_string().into()
    }
}

/// The config file's values, for `#[serde(deserialize_with)]`. TOML has
/// types, so each says which it takes, and its error is the end of "`KEY`
/// must be ..." (the file module names the key and the file).
pub mod from_toml {
    use super::*;
    use serde::de::{Deserialize, Deserializer, Error};
    use toml::Value as Toml;

    fn read<'de, D: Deserializer<'de>, T>(
        d: D,
        f: impl FnOnce(Toml) -> Result<T, String>,
    ) -> Result<Option<T>, D::Error> {
        f(Toml::deserialize(d)?).map(Some).map_err(D::Error::custom)
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        read(d, |v| match v {
            Toml::String(s) => Ok(s),
            _ => Err("a string".into()),
        })
    }

    pub fn path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        string(d).map(|s| s.map(PathBuf::from))
    }

    pub fn switch<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        read(d, |v| v.as_bool().ok_or_else(|| "true or false".into()))
    }

    /// A duration: `"5s"`, `"1m"`, or a number of seconds.
    pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        read(d, |v| match v {
            Toml::Integer(n) if n >= 0 => Ok(Duration::from_secs(n as u64)),
            Toml::String(s) => humantime::parse_duration(&s)
                .map_err(|e| format!("a duration like \"5s\" or \"1m\" ({e})")),
            _ => Err("a duration like \"5s\" or a number of seconds".into()),
        })
    }

    /// A size: `"4G"` or a number of bytes.
    pub fn size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        read(d, |v| match v {
            Toml::Integer(n) if n >= 0 => Ok(n as u64),
            Toml::String(s) => parse_size(&s).map_err(|e| format!("a size like \"4G\" ({e})")),
            _ => Err("a size like \"4G\" or a number of bytes".into()),
        })
    }

    pub fn chunk_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        read(d, |v| match v {
            Toml::Integer(n) if n >= 0 => check_chunk_size(n as u64),
            Toml::String(s) => parse_chunk_size(&s),
            _ => Err("a size like \"8M\" or a number of bytes".into()),
        })
    }

    /// A number of streams, as a TOML integer only (`"4"` is refused).
    pub fn streams<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
        read(d, |v| match v {
            Toml::Integer(n) => parse_streams(&n.to_string()),
            _ => Err(format!(
                "a number from {} to {}",
                STREAMS_RANGE.0, STREAMS_RANGE.1
            )),
        })
    }

    pub fn backend<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Backend>, D::Error> {
        read(d, |v| match v {
            Toml::String(s) => parse_backend(&s),
            _ => Err("\"fuse\" or \"nfs\"".into()),
        })
    }

    pub fn proxy<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ProxyUrl>, D::Error> {
        read(d, |v| match v {
            Toml::String(s) => parse_proxy(&s),
            _ => Err("a URL like \"http://proxy:3128\"".into()),
        })
    }

    /// An address as a string, or a bare port as a string or an integer.
    pub fn metrics_addr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        read(d, |v| match v {
            Toml::String(s) => parse_metrics_addr(&s),
            Toml::Integer(n) => parse_metrics_addr(&n.to_string()),
            _ => Err("an address like \"127.0.0.1:9101\"".into()),
        })
    }
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
