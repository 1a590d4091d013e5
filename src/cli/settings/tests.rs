//! The settings' unit tests: `-o` options, the config file and the value
//! parsers, which share the settings list and so are tested together.

use super::*;
use anyhow::Result;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

fn opts(s: &str) -> Result<(Layer, ParsedOptions)> {
    parse_options(&[s.to_owned()])
}

#[test]
fn options_map_to_settings() {
    let (l, extra) = opts(
        "api_key_file=/etc/k,ro,allow_other,dev,suid,rw,nofail,_netdev,x-systemd.automount,\
         api-url=http://x,metadata_ttl=1m,cache_size=1G,cache_dir=/c,log_file=/l,config=/f,verbose",
    )
    .unwrap();
    assert_eq!(l.api_key_file.unwrap().value, PathBuf::from("/etc/k"));
    assert!(l.read_only.unwrap().value);
    assert!(l.allow_other.unwrap().value);
    assert_eq!(l.api_url.unwrap().value, "http://x");
    assert_eq!(l.metadata_ttl.unwrap().value, Duration::from_secs(60));
    assert_eq!(l.cache_size.unwrap().value, 1 << 30);
    assert_eq!(l.cache_dir.unwrap().value, PathBuf::from("/c"));
    assert_eq!(l.log_file.unwrap().value, PathBuf::from("/l"));
    assert_eq!(extra.config, Some(PathBuf::from("/f")));
    assert_eq!(extra.verbose, 1);
    assert!(l.allow_delete.is_none());
}

#[test]
fn options_reject_typos_and_bad_values() {
    let e = opts("ro,api_ur=http://x").unwrap_err().to_string();
    assert!(e.contains("`api_ur`"), "{e}");
    assert!(opts("metadata_ttl=soon").is_err());
    assert!(opts("cache_size=12Q").is_err());
    assert!(opts("api_key_file").is_err());
    assert!(opts("read_only=maybe").is_err());
    assert!(!opts("read_only=false").unwrap().0.read_only.unwrap().value);
}

#[test]
fn download_settings_parse_and_are_bounded() {
    let (l, _) = opts("download_chunk_size=16M,download-streams=8").unwrap();
    assert_eq!(l.download_chunk_size.unwrap().value, 16 << 20);
    assert_eq!(l.download_streams.unwrap().value, 8);
    for bad in [
        "download_chunk_size=1K",
        "download_chunk_size=2G",
        "download_chunk_size=lots",
        "download_streams=0",
        "download_streams=17",
        "download_streams=-1",
    ] {
        assert!(opts(bad).is_err(), "{bad}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        "download_chunk_size = \"2M\"\ndownload_streams = 2\n",
    )
    .unwrap();
    let l = load_file(&path).unwrap();
    assert_eq!(l.download_chunk_size.unwrap().value, 2 << 20);
    assert_eq!(l.download_streams.unwrap().value, 2);
    for bad in ["download_chunk_size = 100", "download_streams = \"4\""] {
        std::fs::write(&path, bad).unwrap();
        assert!(load_file(&path).is_err(), "{bad}");
    }
}

#[test]
fn metrics_addr_is_loopback_unless_named() {
    let lo = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    assert_eq!(parse_metrics_addr("9101"), Ok(lo(9101)));
    assert_eq!(parse_metrics_addr(":9101"), Ok(lo(9101)));
    assert_eq!(parse_metrics_addr("localhost:9101"), Ok(lo(9101)));
    assert_eq!(
        parse_metrics_addr("0.0.0.0:9101"),
        Ok(SocketAddr::from(([0, 0, 0, 0], 9101)))
    );
    assert_eq!(
        parse_metrics_addr("[::1]:9101").unwrap().to_string(),
        "[::1]:9101"
    );
    for bad in ["", "host:9101", "127.0.0.1", "127.0.0.1:99999", "x"] {
        assert!(parse_metrics_addr(bad).is_err(), "{bad}");
    }
    let (l, _) = opts("metrics_addr=127.0.0.1:9200").unwrap();
    assert_eq!(l.metrics_addr.unwrap().value, lo(9200));
    assert!(opts("metrics_addr").is_err());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    for (text, want) in [
        ("metrics_addr = \"127.0.0.1:9300\"", lo(9300)),
        ("metrics_addr = 9301", lo(9301)),
    ] {
        std::fs::write(&path, text).unwrap();
        assert_eq!(load_file(&path).unwrap().metrics_addr.unwrap().value, want);
    }
    std::fs::write(&path, "metrics_addr = true").unwrap();
    assert!(load_file(&path).is_err());
}

#[test]
fn config_file_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        "api_url = \"http://a\"\napi_key_file = \"key\"\nmetadata_ttl = 30\ncache_size = \"1G\"\nread_only = true\n",
    )
    .unwrap();
    let l = load_file(&path).unwrap();
    assert_eq!(l.api_url.unwrap().value, "http://a");
    assert_eq!(l.api_key_file.unwrap().value, dir.path().join("key"));
    assert_eq!(l.metadata_ttl.unwrap().value, Duration::from_secs(30));
    assert_eq!(l.cache_size.unwrap().value, 1 << 30);
    assert!(l.read_only.unwrap().value);

    std::fs::write(&path, "api_url = \"http://a\"\ncache_sise = \"1G\"\n").unwrap();
    let e = load_file(&path).unwrap_err().to_string();
    assert!(e.contains("unknown key `cache_sise`"), "{e}");
    std::fs::write(&path, "read_only = \"yes\"\n").unwrap();
    let e = load_file(&path).unwrap_err().to_string();
    assert!(e.contains("`read_only` must be true or false"), "{e}");
    std::fs::write(&path, "api_key = \"secret\"\n").unwrap();
    let e = load_file(&path).unwrap_err().to_string();
    assert!(e.contains("not allowed") && !e.contains("secret"), "{e}");
}

#[test]
fn later_options_win_and_are_named() {
    let (l, _) = opts("ro,read_only=no").unwrap();
    let ro = l.read_only.unwrap();
    assert!(!ro.value);
    assert_eq!(ro.source, Source::MountOption("read_only".into()));
    let (l, extra) = opts("read_only=no,ro,foreground,debug,verbose=3").unwrap();
    assert_eq!(
        l.read_only.unwrap(),
        Setting::new(true, Source::MountOption("ro".into()))
    );
    assert!(extra.foreground);
    assert_eq!(extra.verbose, 2);
}

/// `--help` may name a default ("[default: 4G]"); it must be the one in force.
#[test]
fn help_names_the_defaults_in_force() {
    use clap::Args;
    let cmd = SettingsFlags::augment_args(clap::Command::new("t"));
    for (key, row) in Layer::defaults().rows() {
        let arg = cmd.get_arguments().find(|a| a.get_id() == key).unwrap();
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        let Some((_, named)) = help.split_once("[default: ") else {
            continue;
        };
        let named = named.split(']').next().unwrap();
        match row {
            Some((shown, _)) if !named.starts_with('$') => {
                assert_eq!(named, shown.trim_matches('"'), "--help of {key}")
            }
            _ => {}
        }
    }
}

/// A background mount gets the settings as flags: they must come back the same.
#[test]
fn settings_survive_their_flags() {
    use clap::{Args, FromArgMatches};
    let (l, _) = opts(
        "api_url=http://x,metadata_ttl=90s,cache_dir=/c,cache_size=3M,download_chunk_size=128K,\
         download_streams=7,allow_delete,log_file=/l,metrics_addr=9300",
    )
    .unwrap();
    let want = l.settings();
    let mut argv: Vec<std::ffi::OsString> = vec!["--no-config".into()];
    argv.extend(want.to_flags());
    let cmd = SettingsFlags::augment_args(clap::Command::new("t").no_binary_name(true));
    let flags = SettingsFlags::from_arg_matches(&cmd.get_matches_from(argv)).unwrap();
    assert_eq!(resolve(&flags).unwrap().settings(), want);
}

#[test]
fn max_memory_is_an_option_and_a_config_key() {
    let (l, _) = opts("max_memory=64M").unwrap();
    assert_eq!(l.max_memory.unwrap().value, 64 << 20);
    assert!(opts("max_memory=lots").is_err());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "max_memory = \"1G\"\n").unwrap();
    assert_eq!(load_file(&path).unwrap().max_memory.unwrap().value, 1 << 30);
    std::fs::write(&path, "max_memory = \"1Q\"\n").unwrap();
    assert!(load_file(&path).is_err(), "not a size");
}
