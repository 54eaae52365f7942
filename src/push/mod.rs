//! Pushing pprof profiles to Grafana Pyroscope (feature `push`, off by
//! default; `pcprof push`).
//!
//! - The transport is Pyroscope's Connect API `POST
//!   /push.v1.PusherService/Push` (binary protobuf, [`proto`]): the current
//!   docs list it as the public, stable ingestion path, `/ingest` as the
//!   legacy one. One request carries one series: labels `__name__`
//!   (`process_cpu`), `service_name` and the caller's static labels, and
//!   the gzipped pprof profile (`analysis::convert::pprof`).
//! - A small blocking client on `ureq` (no TLS unless the `push-tls`
//!   feature is on): Grafana's `pyroscope` crate brings its own agent and
//!   `reqwest` with a TLS stack, far more than sending bytes needs.
//! - Bounded: every attempt has a timeout, failures that may pass (no
//!   answer, timeouts, 5xx, 429) are retried a bounded number of times with
//!   doubling back-off, other refusals (4xx) are not.
//! - Credentials (a bearer token, or basic auth, from the environment:
//!   [`Credentials::from_env`]) are sent in the `Authorization` header only:
//!   never logged, printed (their `Debug` is redacted) or written to a file.
//!   A URL holding credentials is refused (they would show in logs), and so
//!   is plain `http://` with credentials unless the caller opts in.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use prost::Message;

use crate::ProfileReader;
use crate::analysis::convert::pprof::{pprof_profile_from, pprof_profiles_from, write_gzipped};
use crate::analysis::convert::{ConvertError, ConvertOptions, ConvertReport};

pub mod continuous;
#[allow(missing_docs, clippy::all, clippy::pedantic, rustdoc::all)]
pub mod proto;

pub use continuous::{Continuous, PushTo};

/// The push path under the server's URL.
pub const PUSH_PATH: &str = "/push.v1.PusherService/Push";
/// The profile name Pyroscope files CPU profiles under (`__name__`).
pub const PROFILE_NAME: &str = "process_cpu";
/// Environment variable holding a bearer token.
pub const ENV_TOKEN: &str = "PCPROF_PUSH_TOKEN";
/// Environment variables holding basic auth's user and password.
pub const ENV_USER: &str = "PCPROF_PUSH_USER";
/// See [`ENV_USER`].
pub const ENV_PASSWORD: &str = "PCPROF_PUSH_PASSWORD";
/// Bytes of an error answer's body kept for the message.
const BODY_LIMIT: u64 = 4096;

/// How the server is asked to authenticate the pusher.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Authorization: Bearer TOKEN`.
    Bearer(String),
    /// `Authorization: Basic base64(user:password)`.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
}

// Never shows the secret, wherever a config is printed.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Credentials::Basic { user, .. } => {
                write!(f, "Basic {{ user: {user:?}, password: <redacted> }}")
            }
        }
    }
}

impl Credentials {
    /// From the environment: [`ENV_TOKEN`], else [`ENV_USER`] and
    /// [`ENV_PASSWORD`] (both needed); `None` when neither is set.
    pub fn from_env() -> Option<Credentials> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(token) = var(ENV_TOKEN) {
            return Some(Credentials::Bearer(token));
        }
        Some(Credentials::Basic {
            user: var(ENV_USER)?,
            password: var(ENV_PASSWORD)?,
        })
    }

    fn header(&self) -> String {
        use base64::Engine as _;
        match self {
            Credentials::Bearer(t) => format!("Bearer {t}"),
            Credentials::Basic { user, password } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
        }
    }
}

/// Where and how to push.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// The server's base URL (`http://pyroscope:4040`); the push path is
    /// appended.
    pub url: String,
    /// The `service_name` label.
    pub service: String,
    /// Static labels of every profile pushed (names as Prometheus has
    /// them: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`).
    pub labels: Vec<(String, String)>,
    /// Time one attempt may take, connection included.
    pub timeout: Duration,
    /// Attempts after the first, for failures that may pass.
    pub retries: u32,
    /// Wait before the first retry; each next one waits twice as long, at
    /// most [`PushConfig::max_backoff`].
    pub backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
    /// How to authenticate, if at all.
    pub credentials: Option<Credentials>,
    /// Send credentials over plain `http://` (refused otherwise).
    pub allow_insecure_credentials: bool,
    /// Pyroscope's tenant (`X-Scope-OrgID`), in multi-tenant mode.
    pub tenant: Option<String>,
}

impl PushConfig {
    /// A config for `url` and `service` with the defaults: 10 s a try, 3
    /// retries from 500 ms to at most 30 s apart, no labels, credentials
    /// from the environment ([`Credentials::from_env`]).
    pub fn new(url: impl Into<String>, service: impl Into<String>) -> PushConfig {
        PushConfig {
            url: url.into(),
            service: service.into(),
            labels: Vec::new(),
            timeout: Duration::from_secs(10),
            retries: 3,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            credentials: Credentials::from_env(),
            allow_insecure_credentials: false,
            tenant: None,
        }
    }
}

/// Why a push failed.
#[derive(Debug)]
pub enum PushError {
    /// The URL cannot be used.
    Url {
        /// The URL as given (without credentials: such URLs are refused).
        url: String,
        /// Why.
        reason: String,
    },
    /// Credentials would cross the network in clear text.
    InsecureCredentials {
        /// The `http://` URL.
        url: String,
    },
    /// A label name Pyroscope would refuse.
    Label {
        /// The name.
        name: String,
    },
    /// The profile could not be read or converted.
    Convert(ConvertError),
    /// Intervals were asked of a file without times (Pulley's format).
    NoTimes {
        /// The file.
        path: std::path::PathBuf,
    },
    /// The server refused the profile (a 4xx other than 429: retrying
    /// would not help).
    Refused {
        /// Where it was sent.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the server's answer.
        body: String,
    },
    /// Every attempt failed with a failure that may pass.
    GaveUp {
        /// Where it was sent.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Url { url, reason } => write!(f, "push URL {url:?}: {reason}"),
            PushError::InsecureCredentials { url } => write!(
                f,
                "{url}: refusing to send credentials over plain http (use https, or allow it explicitly)"
            ),
            PushError::Label { name } => write!(
                f,
                "label name {name:?}: must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __"
            ),
            PushError::Convert(e) => write!(f, "{e}"),
            PushError::NoTimes { path } => write!(
                f,
                "{}: a Pulley file has no times: it cannot be cut into intervals",
                path.display()
            ),
            PushError::Refused { url, status, body } => {
                write!(
                    f,
                    "{url}: the server refused the profile: HTTP {status}: {body}"
                )
            }
            PushError::GaveUp {
                url,
                attempts,
                last,
            } => write!(
                f,
                "{url}: no attempt of {attempts} succeeded; the last: {last}"
            ),
        }
    }
}

impl std::error::Error for PushError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PushError::Convert(e) => Some(e),
            _ => None,
        }
    }
}

/// What a successful push took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushReport {
    /// Attempts made (1: no retry).
    pub attempts: u32,
    /// Bytes of the request body.
    pub bytes: usize,
}

/// A client for one server and series: checks the config once, then
/// pushes profiles.
#[derive(Debug)]
pub struct Pusher {
    agent: ureq::Agent,
    endpoint: String,
    config: PushConfig,
}

impl Pusher {
    /// Checks `config`: a URL of scheme `http` (or `https` with the
    /// `push-tls` feature) without credentials in it, no credentials over
    /// `http` unless allowed, label names Pyroscope accepts.
    pub fn new(config: PushConfig) -> Result<Pusher, PushError> {
        let url = config.url.trim_end_matches('/').to_string();
        let bad = |reason: &str| PushError::Url {
            url: url.clone(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected http://HOST[:PORT][/PATH]"))?;
        let authority = rest.split('/').next().unwrap_or("");
        if authority.contains('@') {
            // Not echoed: the URL itself holds the secret.
            return Err(PushError::Url {
                url: format!("{scheme}://<redacted>"),
                reason: format!(
                    "credentials in the URL are refused; set {ENV_TOKEN}, or {ENV_USER} and {ENV_PASSWORD}"
                ),
            });
        }
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        match scheme {
            "http" => {
                if config.credentials.is_some() && !config.allow_insecure_credentials {
                    return Err(PushError::InsecureCredentials { url });
                }
            }
            "https" if cfg!(feature = "push-tls") => {}
            "https" => return Err(bad("https needs pcprof's `push-tls` feature")),
            _ => return Err(bad("the scheme must be http or https")),
        }
        for (name, _) in &config.labels {
            if !valid_label(name) {
                return Err(PushError::Label { name: name.clone() });
            }
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            // A redirect could carry the Authorization header elsewhere.
            .max_redirects(0)
            .build()
            .into();
        Ok(Pusher {
            agent,
            endpoint: format!("{url}{PUSH_PATH}"),
            config,
        })
    }

    /// The URL profiles are posted to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The request body of `pprof_gz` (a gzipped pprof profile): one
    /// series with this pusher's labels.
    pub fn request(&self, pprof_gz: Vec<u8>) -> proto::push::v1::PushRequest {
        use proto::types::v1::LabelPair;
        let pair = |name: &str, value: &str| LabelPair {
            name: name.to_string(),
            value: value.to_string(),
        };
        let mut labels = vec![
            pair("__name__", PROFILE_NAME),
            pair("service_name", &self.config.service),
        ];
        labels.extend(self.config.labels.iter().map(|(k, v)| pair(k, v)));
        proto::push::v1::PushRequest {
            series: vec![proto::push::v1::RawProfileSeries {
                labels,
                samples: vec![proto::push::v1::RawSample {
                    raw_profile: pprof_gz,
                    id: uuid::Uuid::new_v4().to_string(),
                }],
                annotations: Vec::new(),
            }],
        }
    }

    /// Pushes `pprof_gz`, retrying failures that may pass with doubling
    /// back-off; returns once the server took it, refused it, or every
    /// attempt failed.
    pub fn push(&self, pprof_gz: Vec<u8>) -> Result<PushReport, PushError> {
        let body = self.request(pprof_gz).encode_to_vec();
        let attempts = self.config.retries.saturating_add(1);
        let mut wait = self.config.backoff;
        let mut last = String::new();
        for attempt in 1..=attempts {
            if attempt > 1 {
                std::thread::sleep(wait);
                wait = (wait * 2).min(self.config.max_backoff);
            }
            match self.attempt(&body) {
                Ok(()) => {
                    return Ok(PushReport {
                        attempts: attempt,
                        bytes: body.len(),
                    });
                }
                Err(Attempt::Refused(status, text)) => {
                    return Err(PushError::Refused {
                        url: self.endpoint.clone(),
                        status,
                        body: text,
                    });
                }
                Err(Attempt::Transient(why)) => {
                    tracing::warn!(
                        endpoint = %self.endpoint,
                        attempt,
                        attempts,
                        "push failed: {why}"
                    );
                    last = why;
                }
            }
        }
        Err(PushError::GaveUp {
            url: self.endpoint.clone(),
            attempts,
            last,
        })
    }

    fn attempt(&self, body: &[u8]) -> Result<(), Attempt> {
        let mut request = self
            .agent
            .post(&self.endpoint)
            .header("Content-Type", "application/proto")
            .header("Connect-Protocol-Version", "1");
        if let Some(c) = &self.config.credentials {
            request = request.header("Authorization", c.header());
        }
        if let Some(t) = &self.config.tenant {
            request = request.header("X-Scope-OrgID", t);
        }
        let mut response = request
            .send(body)
            .map_err(|e| Attempt::Transient(e.to_string()))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let mut text = String::new();
        let _ = response
            .body_mut()
            .as_reader()
            .take(BODY_LIMIT)
            .read_to_string(&mut text);
        let text = text.trim().to_string();
        if status == 429 || status >= 500 {
            Err(Attempt::Transient(format!("HTTP {status}: {text}")))
        } else {
            Err(Attempt::Refused(status, text))
        }
    }
}

/// How one attempt failed.
enum Attempt {
    /// May pass: retry.
    Transient(String),
    /// Will not pass: status and answer.
    Refused(u16, String),
}

/// Whether Pyroscope (Prometheus rules) accepts `name` as a label name;
/// names starting with `__` are its own.
fn valid_label(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// The gzipped pprof profile of the profile file at `path`, as
/// `convert --to pprof` writes it.
pub fn pprof_bytes(
    path: &Path,
    options: &ConvertOptions,
) -> Result<(Vec<u8>, ConvertReport), PushError> {
    let reader =
        ProfileReader::open(path).map_err(|e| PushError::Convert(ConvertError::Read(e)))?;
    let (profile, report) = pprof_profile_from(reader, options).map_err(PushError::Convert)?;
    let mut out = Vec::new();
    write_gzipped(&profile, &mut out).map_err(|source| {
        PushError::Convert(ConvertError::Io {
            path: path.to_path_buf(),
            source,
        })
    })?;
    Ok((out, report))
}

/// What pushing a file did.
#[derive(Debug, Clone, Default)]
pub struct FilePush {
    /// Profiles pushed (one, or one per interval with samples).
    pub profiles: u64,
    /// Attempts they took, in all.
    pub attempts: u64,
    /// Bytes of their request bodies, in all.
    pub bytes: u64,
    /// What the conversion did (samples, notes, where reading stopped).
    pub report: ConvertReport,
}

/// Pushes the profile file at `path` as `convert --to pprof` would write
/// it: one profile, or with `interval` one per interval of recorded time
/// (a native file's; each profile dated to its interval), each pushed as
/// soon as it is complete, so memory holds one interval. Stops pushing at
/// the first failure and returns it.
pub fn push_file(
    pusher: &Pusher,
    path: &Path,
    options: &ConvertOptions,
    interval: Option<Duration>,
) -> Result<FilePush, PushError> {
    let reader =
        ProfileReader::open(path).map_err(|e| PushError::Convert(ConvertError::Read(e)))?;
    if interval.is_some() && reader.format() == crate::format::Format::Pulley {
        return Err(PushError::NoTimes {
            path: path.to_path_buf(),
        });
    }
    let interval_ns = interval.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut done = FilePush::default();
    let mut failed: Option<PushError> = None;
    let report = pprof_profiles_from(reader, options, interval_ns, |profile| {
        if failed.is_some() {
            return;
        }
        let mut gz = Vec::new();
        if let Err(source) = write_gzipped(&profile, &mut gz) {
            failed = Some(PushError::Convert(ConvertError::Io {
                path: path.to_path_buf(),
                source,
            }));
            return;
        }
        match pusher.push(gz) {
            Ok(r) => {
                done.profiles += 1;
                done.attempts += u64::from(r.attempts);
                done.bytes += r.bytes as u64;
            }
            Err(e) => failed = Some(e),
        }
    })
    .map_err(PushError::Convert)?;
    if let Some(e) = failed {
        return Err(e);
    }
    done.report = report;
    Ok(done)
}
