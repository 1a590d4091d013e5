//! `importfs login [--api-url URL]`, `importfs login --status` and
//! `importfs logout`: ask for the key once, check it with one call
//! (`GET /users/current`), say whose account it is, and keep it where the
//! next command finds it: the OS's secret store, else a 0600 file
//! (`settings::stored`), one key per API URL.
//!
//! Subtle: nothing is stored before the API has accepted the key, so a
//! typo never becomes the key every later command silently uses; and the
//! key is read from the terminal or standard input only ([`prompt`]),
//! never from argv or the environment, which is why `--api-key-file` is
//! refused here rather than quietly ignored.

mod prompt;

use crate::api::{ApiKey, Client, User};
use crate::cli::connect::client_config;
use crate::cli::settings::stored::{self, Place};
use crate::cli::settings::{self, ApiFlags, KeySource};
use anyhow::{bail, Context, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Say where the key in use comes from (redacted), and change nothing.
    #[arg(long)]
    pub status: bool,
    #[command(flatten)]
    pub api: ApiFlags,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    #[command(flatten)]
    pub api: ApiFlags,
}

/// `importfs login`.
pub fn login(args: LoginArgs) -> Result<()> {
    crate::cli::logging::init_logging(0, Some("off"))?;
    let eff = settings::resolve_api(&args.api)?;
    let settings = eff.settings();
    let url = stored::url_name(&settings.api_url);
    if args.status {
        return status(&eff, &url);
    }
    if args.api.settings.api_key_file.is_some() {
        bail!(
            "login reads the key from the terminal or standard input (`importfs login <FILE`); \
             --api-key-file is the way to use a key file without logging in"
        );
    }
    let key = ApiKey::new(prompt::read_key(&format!(
        "Import.io API key for {url} (not shown): "
    ))?);
    let user = check_key(&settings, key.clone(), &url)?;
    let saved = stored::save(&url, &key)?;
    println!("Logged in to {url} as {}.", who(&user));
    match saved.no_store {
        None => println!(
            "The key is kept in {} (service importfs, username {url}).",
            saved.place
        ),
        Some(why) => println!(
            "No secret store here ({why}): the key is kept in {} (mode 0600).",
            saved.place
        ),
    }
    if eff.key != KeySource::Stored {
        let (_, src) = eff.key_line();
        println!("Note: for now the key in use still comes from elsewhere ({src}).");
    }
    Ok(())
}

/// `importfs logout`.
pub fn logout(args: LogoutArgs) -> Result<()> {
    crate::cli::logging::init_logging(0, Some("off"))?;
    let eff = settings::resolve_api(&args.api)?;
    let url = stored::url_name(&eff.settings().api_url);
    let removed = stored::remove(&url)?;
    if removed.is_empty() {
        println!("No key was stored for {url}.");
    } else {
        let places: Vec<String> = removed.iter().map(Place::to_string).collect();
        println!("Removed the key for {url} from {}.", places.join(" and "));
    }
    if eff.key != KeySource::Stored {
        let (_, src) = eff.key_line();
        println!("Note: commands still find a key: {src}.");
    }
    Ok(())
}

/// `importfs login --status`: the URL and where its key comes from, as
/// `importfs config` shows them; an error when there is no usable key.
fn status(eff: &settings::Effective, url: &str) -> Result<()> {
    let (value, src) = eff.key_line();
    println!("api_url = {url:?}");
    println!("api_key = {value}  # {src}");
    if value != "<redacted>" {
        bail!("no usable API key for {url}");
    }
    Ok(())
}

/// One `GET /users/current` with `key`: whose key it is, or why not.
fn check_key(settings: &settings::Settings, key: ApiKey, url: &str) -> Result<User> {
    let cfg = client_config(settings, key)?;
    let client = Client::new(cfg).context("cannot build the API client")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match rt.block_on(client.current_user()) {
        Ok(user) => Ok(user),
        Err(e) if e.is_auth() => bail!(
            "this key is not valid for {url} (HTTP {}): nothing was stored",
            e.status().unwrap_or(401)
        ),
        Err(e) => Err(anyhow::Error::new(e))
            .with_context(|| format!("cannot check the key with {url}: nothing was stored")),
    }
}

/// The account, as a person reads it: `First Last <email>`, else the
/// username, else the guid.
fn who(user: &User) -> String {
    let name = [user.first_name.as_deref(), user.last_name.as_deref()]
        .into_iter()
        .flatten()
        .filter(|s| !s.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let name = if name.is_empty() {
        user.username.clone().unwrap_or_default()
    } else {
        name
    };
    match (name.is_empty(), &user.email) {
        (false, Some(email)) => format!("{name} <{email}>"),
        (false, None) => name,
        (true, Some(email)) => email.clone(),
        (true, None) => format!("user {}", user.guid),
    }
}
