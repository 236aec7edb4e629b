//! The client for a remote image's URL, with credentials and endpoints from where users keep
//! them: for `s3://`, the AWS environment variables, then the shared credentials and config
//! files' profile (`AWS_PROFILE`, default `default`), then `--endpoint`; for `http(s)://`,
//! extra headers from `WIMFS_HTTP_HEADERS`, then user and password in the URL, then the
//! netrc file (`NETRC`, default `~/.netrc`). Nothing read here is ever put in a message.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ini::Ini;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, RetryConfig};

/// The S3 endpoint given on the command line, which wins over the environment and profiles.
static ENDPOINT: OnceLock<String> = OnceLock::new();

/// Sends every `s3://` request of this process to `url` (an S3-compatible store) instead of
/// the endpoint the environment or profile names. Returns `false` if one was set already.
pub fn set_endpoint(url: String) -> bool {
    ENDPOINT.set(url).is_ok()
}

/// Variable that hands a daemon the `--endpoint` of the process that started it.
pub const ENDPOINT_VAR: &str = "WIMFS_S3_ENDPOINT";

/// The endpoint set by [`set_endpoint`], else by `WIMFS_S3_ENDPOINT`, if any.
pub fn endpoint() -> Option<String> {
    ENDPOINT.get().cloned().or_else(|| var(ENDPOINT_VAR))
}

/// An environment variable, if set and not blank.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn home() -> Option<PathBuf> {
    var("HOME")
        .or_else(|| var("USERPROFILE"))
        .map(PathBuf::from)
}

/// The store and object path for `url` (`http`, `https` or `s3`). Errors are for the user's
/// eyes: they name files and settings, never secrets.
pub(super) fn store_for(
    url: &url::Url,
    client: ClientOptions,
    retry: RetryConfig,
) -> Result<(Arc<dyn ObjectStore>, ObjectPath), String> {
    match url.scheme() {
        "http" | "https" => {
            let client = client.with_default_headers(http_headers(url)?);
            // Credentials in the URL went into the headers.
            let mut bare = url.clone();
            let _ = bare.set_username("");
            let _ = bare.set_password(None);
            let store = object_store::http::HttpBuilder::new()
                .with_url(bare.as_str())
                .with_client_options(client)
                .with_retry(retry)
                .build()
                .map_err(|e| format!("cannot use: {e}"))?;
            Ok((Arc::new(store), ObjectPath::default()))
        }
        "s3" => {
            let bucket = url
                .host_str()
                .filter(|b| !b.is_empty())
                .ok_or("an s3:// URL needs a bucket: s3://BUCKET/KEY")?;
            let key = ObjectPath::from_url_path(url.path())
                .map_err(|e| format!("not a valid object key: {e}"))?;
            let store = s3_builder(bucket)?
                .with_client_options(client)
                .with_retry(retry)
                .build()
                .map_err(|e| format!("cannot use: {e}"))?;
            Ok((Arc::new(store), key))
        }
        other => Err(format!("unsupported scheme: {other}")),
    }
}

/// An INI file, or `None` if there is none at `path`.
fn load_ini(path: Option<&Path>) -> Result<Option<Ini>, String> {
    match path {
        Some(p) if p.is_file() => Ini::load_from_file(p)
            .map(Some)
            .map_err(|e| format!("{}: cannot read: {e}", p.display())),
        _ => Ok(None),
    }
}

/// S3 settings: the `AWS_*` environment first, then what the profile adds (credentials,
/// region, `endpoint_url`), then `--endpoint`.
fn s3_builder(bucket: &str) -> Result<object_store::aws::AmazonS3Builder, String> {
    let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
    let chosen = var("AWS_PROFILE");
    let name = chosen.clone().unwrap_or_else(|| "default".to_string());
    let credentials_file = var("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".aws").join("credentials")));
    let config_file = var("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".aws").join("config")));
    let credentials = load_ini(credentials_file.as_deref())?;
    let config = load_ini(config_file.as_deref())?;
    let in_credentials = credentials
        .as_ref()
        .and_then(|i| i.section(Some(name.as_str())));
    // The config file names profiles "profile NAME", except the default one.
    let in_config = config.as_ref().and_then(|i| {
        i.section(Some(format!("profile {name}")))
            .or_else(|| i.section(Some(name.as_str())))
    });
    if chosen.is_some() && in_credentials.is_none() && in_config.is_none() {
        let shown = |p: &Option<PathBuf>| {
            p.as_deref().map_or("(no home directory)".to_string(), |p| {
                p.display().to_string()
            })
        };
        return Err(format!(
            "AWS_PROFILE={name}: no such profile in {} or {}",
            shown(&credentials_file),
            shown(&config_file)
        ));
    }
    let get = |key: &str| {
        in_credentials
            .and_then(|s| s.get(key))
            .or_else(|| in_config.and_then(|s| s.get(key)))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if var("AWS_ACCESS_KEY_ID").is_none() {
        if let (Some(id), Some(secret)) = (get("aws_access_key_id"), get("aws_secret_access_key")) {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
            if let Some(token) = get("aws_session_token") {
                b = b.with_token(token);
            }
        }
    }
    if var("AWS_REGION").is_none() && var("AWS_DEFAULT_REGION").is_none() {
        if let Some(region) = get("region") {
            b = b.with_region(region);
        }
    }
    let from_env = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
        .iter()
        .any(|k| var(k).is_some());
    if !from_env {
        if let Some(url) = get("endpoint_url") {
            b = b.with_endpoint(url);
        }
    }
    if let Some(url) = endpoint() {
        use object_store::aws::AmazonS3ConfigKey;
        b = b
            .with_config(AmazonS3ConfigKey::S3Endpoint, &url)
            .with_endpoint(url);
    }
    Ok(b)
}

/// Headers sent with every request to an HTTP server: `WIMFS_HTTP_HEADERS` (one
/// `Name: value` a line), and unless those authenticate already, basic authentication
/// with the user and password in the URL, else from the netrc file for the URL's host.
fn http_headers(url: &url::Url) -> Result<http::HeaderMap, String> {
    use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
    let mut headers = http::HeaderMap::new();
    for line in var("WIMFS_HTTP_HEADERS").unwrap_or_default().lines() {
        if line.trim().is_empty() {
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| "WIMFS_HTTP_HEADERS: every line must read `Name: value`".to_string())?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("WIMFS_HTTP_HEADERS: {:?} is not a header name", name.trim()))?;
        let mut value = HeaderValue::from_str(value.trim()).map_err(|_| {
            format!("WIMFS_HTTP_HEADERS: the value of {name} is not a valid header value")
        })?;
        value.set_sensitive(true);
        headers.append(name, value);
    }
    if headers.contains_key(AUTHORIZATION) {
        return Ok(headers);
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let login = match url.username() {
        "" => netrc_login(url.host_str().unwrap_or_default())?,
        user => Some((decode(user), decode(url.password().unwrap_or_default()))),
    };
    if let Some((login, password)) = login {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"));
        let mut value = HeaderValue::from_str(&format!("Basic {token}"))
            .map_err(|_| "the login for this server is not valid in a header".to_string())?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    Ok(headers)
}

/// Login and password for `host` from the netrc file (its `default` entry for any other
/// host), if there is a file and an entry.
fn netrc_login(host: &str) -> Result<Option<(String, String)>, String> {
    let Some(file) = netrc::Netrc::get_file() else {
        return Ok(None);
    };
    let parsed = netrc::Netrc::from_file(&file)
        .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    let entry = parsed
        .hosts
        .get(host)
        .or_else(|| parsed.hosts.get("default"));
    Ok(entry
        .filter(|a| !a.login.is_empty())
        .map(|a| (a.login.clone(), a.password.clone())))
}

/// Variable in which a process starting a mount daemon hands it the URLs it was given, so
/// that what may be secret in them (a user's password, a signed query) stays out of the
/// daemon's arguments, which every local user can read.
const URLS_VAR: &str = "WIMFS_URLS";

/// For a daemon about to be started with `locations` (WIM files or URLs): what to put in its
/// arguments for each (URLs without user information or query), and the value of the
/// environment variable that carries the full URLs, if any had to be shortened.
pub fn conceal(locations: &[PathBuf]) -> (Vec<PathBuf>, Option<(&'static str, String)>) {
    let mut hidden = Vec::new();
    let shown = locations
        .iter()
        .map(|l| match l.to_str().filter(|l| crate::read::is_url(l)) {
            Some(url) => {
                let shown = super::display_name(url);
                if shown != url {
                    hidden.push(url);
                }
                PathBuf::from(shown)
            }
            None => l.clone(),
        })
        .collect();
    let env = (!hidden.is_empty()).then(|| (URLS_VAR, hidden.join("\n")));
    (shown, env)
}

/// In a daemon: the full URL a location given in the arguments stands for (see
/// [`conceal`]), or the location itself.
pub fn reveal(location: &Path) -> PathBuf {
    let Some(shown) = location.to_str().filter(|l| crate::read::is_url(l)) else {
        return location.to_path_buf();
    };
    var(URLS_VAR)
        .unwrap_or_default()
        .lines()
        .find(|full| super::display_name(full) == shown)
        .map_or_else(|| location.to_path_buf(), PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_urls_travel_beside_the_arguments() {
        let given = [
            "https://user:pw@host/a.wim?sig=1",
            "/local/b.swm",
            "https://host/c.swm",
        ];
        let (shown, env) = conceal(&given.map(PathBuf::from));
        assert_eq!(
            shown,
            ["https://host/a.wim", "/local/b.swm", "https://host/c.swm"].map(PathBuf::from)
        );
        let (name, value) = env.unwrap();
        assert_eq!(name, URLS_VAR);
        assert_eq!(value, "https://user:pw@host/a.wim?sig=1");
        assert!(conceal(&["https://host/c.swm", "x.wim"].map(PathBuf::from))
            .1
            .is_none());
    }
}
