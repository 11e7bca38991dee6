//! Roundtable's local web interface: server-rendered pages, every action a real form that works without
//! JavaScript.
//!
//! **Pages** (one thing per page, the same menu everywhere): home (what is new since the last visit,
//! whether the record is shared), groups, threads and a thread (open or sealed), writing with a
//! "Check before you share" step, proposals (easy read first, stances with pictures and reasons,
//! understanding checks, the outcome), actions ("You said, we did"), members and their needs, the
//! members' list of hard words ([`jargon`]), help. `static/roundtable.js` only adds read-aloud buttons
//! and live writing advice.
//!
//! **Security:** the server binds 127.0.0.1 only. Every request needs the per-launch token (first as
//! `?t=TOKEN` in the printed URL, then from an HttpOnly, SameSite=Strict cookie); a `Host` header other
//! than `127.0.0.1:PORT` or `localhost:PORT` is refused (DNS rebinding); every POST carries a CSRF token
//! derived from the launch token; every response has `Content-Security-Policy: default-src 'self'`,
//! `X-Content-Type-Options: nosniff` and `Referrer-Policy: same-origin`.
//!
//! **Store access:** the home is opened per operation inside `spawn_blocking` (like the sync node), so
//! the CLI keeps working alongside. The device key and the encryption secret (for sealed threads) are
//! unlocked once, when the state is made.

#![deny(missing_docs)]

pub mod jargon;
mod pages;
mod security;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::{get, post};
use roundtable_core::{DeviceId, DeviceKey, GroupId};
use roundtable_seal::EncSecret;
use roundtable_store::{Home, StoreError};
use sha2::{Digest, Sha256};

/// What `roundtable web` is started with.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The device home (the folder holding `roundtable.redb` and `device.key`).
    pub home_dir: PathBuf,
    /// The passphrase of the device key, when it is protected.
    pub passphrase: Option<String>,
    /// The port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
}

/// Why the web page could not start ([`serve`], [`AppState::new`]) or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Opening the home or unlocking its keys failed (no home, a busy home, a wrong passphrase).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Listening on 127.0.0.1 failed (the port is taken, say), or the server failed while serving.
    #[error("could not listen on 127.0.0.1: {0}")]
    Io(#[from] std::io::Error),
    /// The operating system's random generator could not make the launch token.
    #[error("could not make a random token: {0}")]
    Random(String),
    /// The blocking task that opens the home panicked or was cancelled.
    #[error("a background task failed: {0}")]
    Task(String),
}

/// Shared by every request: the home, the unlocked device key, the launch token.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    home_dir: PathBuf,
    key: DeviceKey,
    device: DeviceId,
    port: u16,
    token: String,
    csrf: String,
    clock: fn() -> i64,
    /// This device's encryption secret, for reading and writing sealed threads.
    enc: Option<EncSecret>,
    /// Whether sync runs alongside (`serve --web`): the status words differ.
    syncing: bool,
    /// The group shown, once a member chose one (else the first).
    group: Mutex<Option<GroupId>>,
    /// Per group, what this launch counts as already seen: each device's highest sequence number.
    seen: Mutex<HashMap<GroupId, BTreeMap<DeviceId, u64>>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl AppState {
    /// Opens the home once to unlock the device key (a wrong passphrase fails here, not on the first
    /// page), and makes a fresh random launch token. `port` is the port the server answers on: the
    /// `Host` header must name it.
    pub fn new(cfg: &WebConfig, port: u16) -> Result<AppState, WebError> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| WebError::Random(e.to_string()))?;
        let home = Home::open(&cfg.home_dir)?;
        let key = home.device_key(cfg.passphrase.as_deref())?;
        let enc = EncSecret::from_bytes(&*home.enc_secret(cfg.passphrase.as_deref())?);
        Ok(AppState::with_key(cfg.home_dir.clone(), key, port, hex::encode(raw)).with_enc(enc))
    }

    /// A state with a given key and token (tests, and callers that already hold the key).
    pub fn with_key(home_dir: PathBuf, key: DeviceKey, port: u16, token: String) -> AppState {
        let csrf = hex::encode(Sha256::digest(
            [b"roundtable-web csrf\0".as_slice(), token.as_bytes()].concat(),
        ));
        AppState {
            inner: Arc::new(Inner {
                home_dir,
                device: key.device_id(),
                key,
                port,
                token,
                csrf,
                clock: now_ms,
                enc: None,
                syncing: false,
                group: Mutex::new(None),
                seen: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Gives the state this device's encryption secret, so readers can read and write sealed threads.
    /// Call before cloning.
    pub fn with_enc(mut self, enc: EncSecret) -> AppState {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.enc = Some(enc);
        }
        self
    }

    /// Marks that sync runs alongside, so the status says so. Call before cloning.
    pub fn with_syncing(mut self, syncing: bool) -> AppState {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.syncing = syncing;
        }
        self
    }

    /// Replaces the clock that stamps new messages (tests use a fixed one). Call before cloning.
    pub fn with_clock(mut self, clock: fn() -> i64) -> AppState {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.clock = clock;
        }
        self
    }

    /// The per-launch token the URL carries.
    pub fn token(&self) -> &str {
        &self.inner.token
    }

    /// The CSRF token every form carries (derived from the launch token).
    pub fn csrf_token(&self) -> &str {
        &self.inner.csrf
    }

    /// The port the `Host` header must name.
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// The URL to open: `http://127.0.0.1:PORT/?t=TOKEN`.
    pub fn url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/?t={}",
            self.inner.port, self.inner.token
        )
    }
}

/// Every page and the guard in front of them. Drive it with `tower::ServiceExt::oneshot` in tests.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::home::home))
        .route("/seen", post(pages::home::mark_seen))
        .route(
            "/groups",
            get(pages::home::groups).post(pages::home::choose_group),
        )
        .route("/groups/forget", post(pages::home::forget_group))
        .route("/threads", get(pages::threads::threads))
        .route(
            "/threads/new",
            get(pages::threads::new_thread).post(pages::threads::start_thread),
        )
        .route("/threads/{id}", get(pages::threads::thread))
        .route(
            "/threads/{id}/write",
            get(pages::threads::write).post(pages::threads::rewrite),
        )
        .route("/threads/{id}/check", post(pages::threads::check))
        .route("/threads/{id}/share", post(pages::threads::share))
        .route("/threads/{id}/ask", post(pages::threads::ask))
        .route(
            "/threads/{id}/readers/{member}",
            post(pages::threads::answer),
        )
        .route(
            "/threads/{id}/propose",
            get(pages::proposals::new_proposal).post(pages::proposals::propose),
        )
        .route("/threads/{id}/action", post(pages::actions::add))
        .route("/proposals", get(pages::proposals::proposals))
        .route("/proposals/{id}", get(pages::proposals::proposal))
        .route("/proposals/{id}/stance", post(pages::proposals::stance))
        .route("/proposals/{id}/close", post(pages::proposals::close))
        .route("/understand/{id}", post(pages::proposals::understand))
        .route("/confirm/{id}", post(pages::proposals::confirm))
        .route("/correct/{id}", post(pages::proposals::correct))
        .route("/actions", get(pages::actions::actions))
        .route("/actions/{id}/done", post(pages::actions::done))
        .route("/members", get(pages::members))
        .route("/members/propose", post(pages::propose_member))
        .route("/members/me", post(pages::about_me))
        .route("/members/{id}/remove", post(pages::propose_removal))
        .route("/help", get(pages::help))
        .route("/words", get(pages::words::words).post(pages::words::save))
        .route("/glossary.json", get(pages::words::glossary_json))
        .route("/static/roundtable.css", get(pages::css))
        .route("/static/roundtable.js", get(pages::js))
        .route("/static/pictures/{name}", get(pages::picture))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::guard,
        ))
        .with_state(state)
}

/// Binds 127.0.0.1:`cfg.port` (never another address) and returns the bound address, the URL with
/// the launch token, and the future that serves until it is dropped or fails.
pub async fn serve(
    cfg: WebConfig,
) -> Result<
    (
        SocketAddr,
        String,
        impl Future<Output = Result<(), WebError>> + Send + 'static,
    ),
    WebError,
> {
    serve_with(cfg, false).await
}

/// [`serve`], saying whether sync runs alongside (`roundtable serve --web`), which the status shows.
pub async fn serve_with(
    cfg: WebConfig,
    syncing: bool,
) -> Result<
    (
        SocketAddr,
        String,
        impl Future<Output = Result<(), WebError>> + Send + 'static,
    ),
    WebError,
> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, cfg.port)).await?;
    let addr = listener.local_addr()?;
    let port = addr.port();
    let state = tokio::task::spawn_blocking(move || AppState::new(&cfg, port))
        .await
        .map_err(|e| WebError::Task(e.to_string()))??
        .with_syncing(syncing);
    let url = state.url();
    let app = router(state);
    let fut = async move {
        axum::serve(listener, app).await?;
        Ok(())
    };
    Ok((addr, url, fut))
}
