//! Roundtable's local web interface: server-rendered pages, every action a real form that works without
//! JavaScript.
//!
//! **Pages** (one thing per page, the same menu everywhere): home (what is new since the last visit,
//! whether the record is shared), groups, threads and a thread (open or sealed), writing with a
//! "Check before you share" step, proposals (easy read first, stances with pictures and reasons,
//! understanding checks, the outcome), actions ("You said, we did"), members and their needs, devices
//! and sync, the auditor's check, the members' list of hard words ([`jargon`]), help.
//! `static/roundtable.js` only adds read-aloud buttons and live writing advice.
//!
//! **A member's whole life in the group, on the page** (pictures taken by `tests/two_devices.rs`,
//! in `docs/pictures/`):
//!
//! | Task | Page |
//! |---|---|
//! | Set up this device (name, needs, optional passphrase) | `/welcome` on a device with no home ([welcome](../../docs/pictures/welcome.png)) |
//! | Start a group | `/welcome` ("Start a new group"), or `/groups` |
//! | Join a group | `/welcome` ("Join a group": paste the invitation, or scan its QR code), or `/groups` ([joined](../../docs/pictures/joined.png)) |
//! | Invite someone | `/invite` from Members: the invitation as text and QR code, its expiry in words ([invite](../../docs/pictures/invite.png)) |
//! | Agree to a new member, or to someone leaving | Members ("The group is asked") → the proposal's page, a view with a picture |
//! | Ask the group to add or remove someone | Members ("Someone new", "Ask the group") |
//! | Start a thread, open or sealed (reason and readers) | `/threads/new` |
//! | Add or remove readers, answer an ask | the sealed thread's page |
//! | Write, correct, understand, give a view, propose, close, actions | the thread and proposal pages |
//! | Change my own name and needs | Members ("Change your name or what helps you") |
//! | Sync with the person next to me | `/devices`: "Sync now", this device's code as QR and text, live sync ([devices](../../docs/pictures/devices.png)) |
//! | See whether this device is up to date | the sync line in every page's header ("Up to date with Ben's device, 2 minutes ago") |
//! | Leave the group | Members → `/members/leave` ("Are you sure?" says what happens) ([leave](../../docs/pictures/leave.png)) |
//! | Unlock a passphrase-protected key | `/unlock` (the passphrase in a POST body only) ([unlock](../../docs/pictures/unlock.png)) |
//! | See the audit and participation report | `/audit`, "Check the record" ([audit](../../docs/pictures/audit.png)) |
//! | Use Roundtable on my phone or tablet | `/devices` on the computer: "Let a phone or tablet in" shows 6 numbers; the tablet opens `https://IP:PORT/pair` and types them ([pair](../../docs/pictures/pair.png)); with `roundtable web --lan` only |
//!
//! **Security:** the server binds 127.0.0.1 only, and with [`WebConfig::lan`] a second listener on the
//! local network that speaks TLS only and opens nothing before a browser is let in with a one-time
//! code ([`lan`]: its own guard, cookie and CSRF token, never the ones below). Every request needs the page's token (kept in the home with the port, so a bookmark survives a
//! restart, until "Sign out every other browser" on the Devices page replaces it; first as
//! `?t=TOKEN` in the printed URL, then from an HttpOnly, SameSite=Strict cookie); a `Host` header other
//! than `127.0.0.1:PORT` or `localhost:PORT` is refused (DNS rebinding); every POST carries a CSRF token
//! derived from the launch token; every response has `Content-Security-Policy: default-src 'self'`,
//! `X-Content-Type-Options: nosniff` and `Referrer-Policy: same-origin`.
//!
//! **Store access:** the home is opened per operation inside `spawn_blocking` (like the sync node), so
//! the CLI keeps working alongside. The device key and the encryption secret (for sealed threads) are
//! unlocked once: when the state is made, or on the passphrase page, or by the welcome page that made
//! them.

#![deny(missing_docs)]

pub mod jargon;
pub mod lan;
mod pages;

pub use pages::time::show_times_in_utc;
mod security;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::routing::{get, post};
use roundtable_app::net::NetConfig;
use roundtable_app::serve::Serving;
use roundtable_core::{DeviceId, DeviceKey, GroupId};
use roundtable_seal::EncSecret;
use roundtable_store::{Home, KeyError, OpenError, StoreError};
use sha2::{Digest, Sha256};

/// What `roundtable web` is started with.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The device home (the folder holding `roundtable.redb` and `device.key`). When there is none
    /// yet, the page starts with the welcome page that sets this device up.
    pub home_dir: PathBuf,
    /// The passphrase of the device key, when it is protected. Without it a protected key is
    /// unlocked on the page.
    pub passphrase: Option<String>,
    /// The port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Whether the page also serves sync (as `roundtable web` does), and how. `None`: the page only
    /// shows the record (tests, or `serve --web`, which serves sync itself).
    pub sync: Option<SyncConfig>,
    /// Whether the page is also served, over TLS, to phones and tablets let in on the local network
    /// ([`lan`]). `None`: 127.0.0.1 only.
    pub lan: Option<lan::LanConfig>,
}

/// How the page serves sync once this device's key is unlocked.
#[derive(Debug, Clone, Default)]
pub struct SyncConfig {
    /// Where the sync endpoint listens, and the relay (none by default).
    pub net: NetConfig,
    /// Whether to look for members' devices on the local network (mDNS).
    pub mdns: bool,
}

/// Why the web page could not start ([`serve`], [`AppState::new`]) or stopped serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// Opening the home or unlocking its keys failed (a busy home, a wrong passphrase).
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
    /// Sync could not start serving (the network endpoint could not open).
    #[error("could not serve sync: {0}")]
    Sync(#[from] roundtable_app::AppError),
    /// The page could not be served on the local network.
    #[error("could not serve the page on the local network: {0}")]
    Lan(#[from] lan::LanError),
}

impl From<OpenError> for WebError {
    fn from(e: OpenError) -> WebError {
        WebError::Store(e.into())
    }
}

impl From<KeyError> for WebError {
    fn from(e: KeyError) -> WebError {
        WebError::Store(e.into())
    }
}

/// Shared by every request: the home, the unlocked device key, the launch token.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
    /// Which listener this request came in on.
    side: Side,
}

/// The listener a request came in on: each has its own guard, credential and CSRF token.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Side {
    /// 127.0.0.1, with the launch token.
    Local,
    /// The LAN address over TLS, with a paired browser's cookie.
    Lan,
}

/// This device's keys, once unlocked (at launch, on the passphrase page, or by the welcome page
/// that made them).
pub(crate) struct Me {
    pub(crate) key: DeviceKey,
    pub(crate) device: DeviceId,
    /// The member this device is (its own key, or on a linked device the member it belongs to):
    /// what the pages mean by "you".
    pub(crate) member: DeviceId,
    /// This device's encryption secret, for reading and writing sealed threads; replaced when
    /// the member changes it (stopping a device here, or given the new one by another device).
    pub(crate) enc: std::sync::RwLock<Option<EncSecret>>,
    /// Kept for the sync that publishes this device's encryption key (never shown, never in a URL).
    pub(crate) passphrase: Option<String>,
}

struct Inner {
    home_dir: PathBuf,
    port: u16,
    /// The launch token and the CSRF token derived from it. Kept in the home, so a bookmark and a
    /// signed-in browser keep working across launches; replaced by "Sign out every browser".
    tokens: std::sync::RwLock<(String, String)>,
    clock: fn() -> i64,
    /// Set once; a page that needs the keys before then sends the member to the welcome page
    /// (no home yet) or the passphrase page.
    me: OnceLock<Me>,
    /// Whether sync runs alongside in another part of this process (`serve --web`).
    syncing: bool,
    /// How to serve sync from this page, when it does.
    sync: Option<SyncConfig>,
    /// The sync this page serves, once started.
    serving: tokio::sync::OnceCell<Arc<Serving>>,
    /// The group shown, once a member chose one (else the first).
    group: Mutex<Option<GroupId>>,
    /// Per group, what this launch counts as already seen: each device's highest sequence number.
    seen: Mutex<HashMap<GroupId, BTreeMap<DeviceId, u64>>>,
    /// Serialises the welcome and passphrase forms, so two tabs cannot set up two keys.
    setup: tokio::sync::Mutex<()>,
    /// The page on the local network, when served (`roundtable web --lan`).
    lan: Option<lan::Lan>,
}

/// The home setting that keeps the page's token across launches.
const TOKEN_SETTING: &str = "web-token";
/// The home setting that keeps the page's port across launches (so a bookmark works).
const PORT_SETTING: &str = "web-port";
/// The home setting that keeps the LAN listener's port across launches (a phone's bookmark).
const LAN_PORT_SETTING: &str = "web-lan-port";

fn random_token() -> Result<String, WebError> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| WebError::Random(e.to_string()))?;
    Ok(hex::encode(raw))
}

fn csrf_of(token: &str) -> String {
    hex::encode(Sha256::digest(
        [b"roundtable-web csrf\0".as_slice(), token.as_bytes()].concat(),
    ))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl AppState {
    /// Opens the home once to unlock the device key (a wrong passphrase fails here, not on the first
    /// page), and takes the token kept in the home (or makes a random one). `port` is the port the server answers on: the
    /// `Host` header must name it. With no home yet, or a protected key and no passphrase, the state
    /// starts without keys: the welcome page or the passphrase page comes first.
    pub fn new(cfg: &WebConfig, port: u16) -> Result<AppState, WebError> {
        let home = match Home::open(&cfg.home_dir) {
            Err(OpenError::NoHome(_)) => None,
            Err(e) => return Err(e.into()),
            Ok(home) => Some(home),
        };
        let kept = home
            .as_ref()
            .and_then(|h| h.setting(TOKEN_SETTING).ok().flatten())
            .and_then(|v| String::from_utf8(v).ok())
            .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()));
        let token = match kept {
            Some(t) => t,
            None => {
                let t = random_token()?;
                if let Some(h) = &home {
                    h.set_setting(TOKEN_SETTING, t.as_bytes())?;
                }
                t
            }
        };
        let st = AppState::bare(cfg.home_dir.clone(), port, token, cfg.sync.clone());
        match home {
            None => return Ok(st),
            Some(home) => match roundtable_app::unlock(&home, cfg.passphrase.as_deref()) {
                Ok((key, enc)) => st.set_me(key, Some(enc), cfg.passphrase.clone()),
                Err(roundtable_app::AppError::Store(StoreError::Key(
                    KeyError::PassphraseNeeded,
                ))) if cfg.passphrase.is_none() => {}
                Err(roundtable_app::AppError::Store(e)) => return Err(e.into()),
                Err(e) => return Err(e.into()),
            },
        }
        Ok(st)
    }

    fn bare(home_dir: PathBuf, port: u16, token: String, sync: Option<SyncConfig>) -> AppState {
        let csrf = csrf_of(&token);
        AppState {
            inner: Arc::new(Inner {
                home_dir,
                port,
                tokens: std::sync::RwLock::new((token, csrf)),
                clock: now_ms,
                me: OnceLock::new(),
                syncing: false,
                sync,
                serving: tokio::sync::OnceCell::new(),
                group: Mutex::new(None),
                seen: Mutex::new(HashMap::new()),
                setup: tokio::sync::Mutex::new(()),
                lan: None,
            }),
            side: Side::Local,
        }
    }

    /// Gives the state its LAN side. Call before cloning.
    fn with_lan(mut self, lan: lan::Lan) -> AppState {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.lan = Some(lan);
        }
        self
    }

    /// The LAN side, when the page is served on the local network.
    pub(crate) fn lan(&self) -> Option<&lan::Lan> {
        self.inner.lan.as_ref()
    }

    /// Whether this request came in on the LAN listener.
    pub(crate) fn on_lan(&self) -> bool {
        self.side == Side::Lan
    }

    /// The same state, for requests of the LAN listener.
    fn lan_side(&self) -> AppState {
        AppState {
            inner: self.inner.clone(),
            side: Side::Lan,
        }
    }

    /// A state with a given key and token (tests, and callers that already hold the key).
    pub fn with_key(home_dir: PathBuf, key: DeviceKey, port: u16, token: String) -> AppState {
        let st = AppState::bare(home_dir, port, token, None);
        st.set_me(key, None, None);
        st
    }

    /// Keeps this device's keys; the first keys given stay (a second call changes nothing).
    pub(crate) fn set_me(
        &self,
        key: DeviceKey,
        enc: Option<EncSecret>,
        passphrase: Option<String>,
    ) {
        let device = key.device_id();
        let member = roundtable_store::Home::open(&self.inner.home_dir)
            .map(|h| roundtable_app::home_member(&h, &key))
            .unwrap_or(device);
        let _ = self.inner.me.set(Me {
            key,
            device,
            member,
            enc: std::sync::RwLock::new(enc),
            passphrase,
        });
    }

    /// This device's keys, when unlocked.
    pub(crate) fn me(&self) -> Option<&Me> {
        self.inner.me.get()
    }

    /// This device's key for sealed threads now, when unlocked.
    pub(crate) fn enc(&self) -> Option<EncSecret> {
        let me = self.me()?;
        me.enc.read().ok().and_then(|e| e.clone())
    }

    /// Keeps `enc` as this device's key for sealed threads from now on (the member changed it).
    pub(crate) fn set_enc(&self, enc: EncSecret) {
        if let Some(me) = self.me()
            && let Ok(mut e) = me.enc.write()
        {
            *e = Some(enc);
        }
    }

    /// The sync this page serves, once started.
    pub(crate) fn serving(&self) -> Option<Arc<Serving>> {
        self.inner.serving.get().cloned()
    }

    /// Starts serving sync, when this page does and the keys are unlocked (once; later calls only
    /// pick up groups new to the home).
    pub(crate) async fn start_serving(&self) -> Result<(), WebError> {
        let (Some(cfg), Some(me)) = (&self.inner.sync, self.me()) else {
            return Ok(());
        };
        if let Some(s) = self.inner.serving.get() {
            s.reload().await?;
            return Ok(());
        }
        // A serving device already runs on this home (`roundtable serve`): it answers; the page
        // syncs through its own endpoint only when asked.
        let s = Serving::start(
            &self.inner.home_dir,
            &me.key,
            me.passphrase.as_deref(),
            &cfg.net,
            cfg.mdns,
        )
        .await?;
        let _ = self.inner.serving.set(Arc::new(s));
        Ok(())
    }

    /// Gives the state this device's encryption secret, so readers can read and write sealed threads.
    /// Call before cloning, on a state made [`AppState::with_key`].
    pub fn with_enc(mut self, enc: EncSecret) -> AppState {
        if let Some(inner) = Arc::get_mut(&mut self.inner)
            && let Some(me) = inner.me.get_mut()
        {
            *me.enc.get_mut().unwrap_or_else(|e| e.into_inner()) = Some(enc);
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

    /// The token the URL carries (kept in the home across launches).
    pub fn token(&self) -> String {
        self.inner
            .tokens
            .read()
            .map(|t| t.0.clone())
            .unwrap_or_default()
    }

    /// The CSRF token every form carries: on 127.0.0.1 derived from the launch token, on the
    /// local network the LAN side's own.
    pub fn csrf_token(&self) -> String {
        if self.side == Side::Lan {
            return self.lan().map(|l| l.csrf.clone()).unwrap_or_default();
        }
        self.inner
            .tokens
            .read()
            .map(|t| t.1.clone())
            .unwrap_or_default()
    }

    /// Signs out every browser: a new token (kept in the home when there is one); the old link and
    /// every cookie stop working. Returns the new link.
    pub(crate) fn new_token(&self) -> Result<String, WebError> {
        let token = random_token()?;
        if let Ok(home) = Home::open(&self.inner.home_dir) {
            home.set_setting(TOKEN_SETTING, token.as_bytes())?;
        }
        if let Ok(mut t) = self.inner.tokens.write() {
            *t = (token.clone(), csrf_of(&token));
        }
        Ok(self.url())
    }

    /// Keeps the current token in the home (after the welcome page made one).
    pub(crate) fn keep_token(&self, home: &Home) {
        let _ = home.set_setting(TOKEN_SETTING, self.token().as_bytes());
    }

    /// The port the `Host` header must name.
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// The URL to open: `http://127.0.0.1:PORT/?t=TOKEN`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/?t={}", self.inner.port, self.token())
    }
}

/// Every page and the guard in front of them. Drive it with `tower::ServiceExt::oneshot` in tests.
pub fn router(state: AppState) -> Router {
    let st = AppState {
        inner: state.inner,
        side: Side::Local,
    };
    routes()
        .route("/devices/pair", post(pages::devices::pair_code))
        .route("/devices/unpair", post(pages::devices::unpair))
        // A member's devices are linked and stopped from the computer only (see `link`).
        .route("/devices/link", post(pages::devices::link))
        .route("/devices/stop", post(pages::devices::stop))
        .layer(axum::middleware::from_fn_with_state(
            st.clone(),
            security::guard,
        ))
        .with_state(st)
}

/// The LAN listener's pages: the same pages and `/pair`, behind the LAN guard (never the
/// loopback one), with the LAN side's CSRF token.
fn lan_router(state: &AppState) -> Router {
    let st = state.lan_side();
    routes()
        .route("/pair", get(pages::pair::form).post(pages::pair::pair))
        .layer(axum::middleware::from_fn_with_state(
            st.clone(),
            security::lan_guard,
        ))
        .with_state(st)
}

/// The pages both listeners serve (each adds its own guard).
fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home::home))
        .route(
            "/welcome",
            get(pages::setup::welcome).post(pages::setup::set_up),
        )
        .route(
            "/unlock",
            get(pages::setup::unlock_page).post(pages::setup::unlock),
        )
        .route("/groups/join", post(pages::setup::join_another))
        .route("/groups/recovered", post(pages::setup::recovered))
        .route("/groups/new", post(pages::home::new_group))
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
        .route("/threads/{id}/readers", post(pages::threads::change_reader))
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
        .route(
            "/proposals/{id}/close",
            get(pages::proposals::close_form).post(pages::proposals::close),
        )
        .route("/understand/{id}", post(pages::proposals::understand))
        .route("/confirm/{id}", post(pages::proposals::confirm))
        .route("/correct/{id}", post(pages::proposals::correct))
        .route("/actions", get(pages::actions::actions))
        .route("/actions/{id}/done", post(pages::actions::done))
        .route("/actions/{id}/undo", post(pages::actions::undo))
        .route("/members", get(pages::members))
        .route("/members/propose", post(pages::propose_member))
        .route("/members/me", post(pages::about_me))
        .route("/members/policy", post(pages::propose_policy))
        .route("/members/auditor", post(pages::propose_auditor))
        .route("/devices/keeper", post(pages::propose_keeper))
        .route("/devices/keeper/remove", post(pages::propose_keeper_remove))
        .route("/members/{id}/remove", post(pages::propose_removal))
        .route("/members/{id}/recover", post(pages::devices::recover))
        .route(
            "/invite",
            get(pages::devices::invite_form).post(pages::devices::invite),
        )
        .route("/devices", get(pages::devices::devices))
        .route("/devices/sync", post(pages::devices::sync_now))
        .route("/devices/live", post(pages::devices::live))
        .route("/devices/sign-out", post(pages::devices::sign_out))
        .route("/audit", get(pages::audit::audit))
        .route(
            "/members/leave",
            get(pages::audit::leave_form).post(pages::audit::leave),
        )
        .route("/help", get(pages::help))
        .route("/words", get(pages::words::words).post(pages::words::save))
        .route("/glossary.json", get(pages::words::glossary_json))
        .route("/static/roundtable.css", get(pages::css))
        .route("/static/roundtable.js", get(pages::js))
        .route("/static/pictures/{name}", get(pages::picture))
        .fallback(pages::not_found)
}

/// The page on the local network, as launched.
#[derive(Debug, Clone)]
pub struct LanServed {
    /// The address the LAN listener is bound to.
    pub addr: SocketAddr,
    /// `https://IP:PORT/pair` for each address served: what a phone or tablet opens.
    pub urls: Vec<String>,
    /// Hex SHA-256 of the certificate's DER (what the browser shows as its SHA-256 fingerprint).
    pub fingerprint: String,
    /// Whether the certificate was made at this launch (first launch, or a new network address).
    pub new_certificate: bool,
}

/// A launched page: where it listens, and the future that serves it.
pub struct Launched {
    /// The loopback address.
    pub addr: SocketAddr,
    /// The link to open on this computer, with the launch token.
    pub url: String,
    /// The page on the local network, when asked for.
    pub lan: Option<LanServed>,
    /// Serves both listeners until dropped, or until one fails.
    pub server: std::pin::Pin<Box<dyn Future<Output = Result<(), WebError>> + Send + 'static>>,
}

impl std::fmt::Debug for Launched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launched")
            .field("addr", &self.addr)
            .field("lan", &self.lan)
            .finish_non_exhaustive()
    }
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
    let l = launch_with(cfg, false).await?;
    Ok((l.addr, l.url, l.server))
}

/// Like [`serve`], and also on the local network when `cfg.lan` says so: binds both listeners,
/// makes or reuses the certificate, and returns what to print.
pub async fn launch(cfg: WebConfig) -> Result<Launched, WebError> {
    launch_with(cfg, false).await
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
    let l = launch_with(cfg, syncing).await?;
    Ok((l.addr, l.url, l.server))
}

/// What the LAN side needs before the state is made: its listener, certificate and addresses.
struct LanBound {
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    ips: Vec<Ipv4Addr>,
    fingerprint: String,
    new_certificate: bool,
    browsers: lan::pairing::Browsers,
    clock: lan::Clock,
}

/// Binds the LAN listener and readies its certificate; refused without a home (a phone must never
/// reach the welcome page that sets this computer up).
async fn bind_lan(cfg: &WebConfig, lcfg: &lan::LanConfig) -> Result<LanBound, WebError> {
    let dir = cfg.home_dir.clone();
    let (kept_port, browsers) = tokio::task::spawn_blocking(move || {
        let home = match Home::open(&dir) {
            Err(OpenError::NoHome(p)) => return Err(WebError::Lan(lan::LanError::NoHome(p))),
            Err(e) => return Err(e.into()),
            Ok(h) => h,
        };
        let port = home
            .setting(LAN_PORT_SETTING)
            .ok()
            .flatten()
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|v| v.parse::<u16>().ok());
        Ok((port, lan::pairing::Browsers::load(&home)))
    })
    .await
    .map_err(|e| WebError::Task(e.to_string()))??;
    let (binds, ips) = lan::plan(lcfg.listen, kept_port)?;
    let listener = lan::bind(&binds).await?;
    let port = listener.local_addr()?.port();
    let (dir, ips2) = (cfg.home_dir.clone(), ips.clone());
    let kept = tokio::task::spawn_blocking(move || {
        if let Ok(home) = Home::open(&dir) {
            let _ = home.set_setting(LAN_PORT_SETTING, port.to_string().as_bytes());
        }
        lan::cert::load_or_make(&dir, &ips2)
    })
    .await
    .map_err(|e| WebError::Task(e.to_string()))??;
    let fingerprint = lan::fingerprint(&kept.cert);
    let new_certificate = kept.made_now;
    let tls = lan::tls::server_config(kept.cert, kept.key)?;
    let clock: lan::Clock = match &lcfg.clock {
        Some(c) => c.clone(),
        None => Arc::new(now_ms),
    };
    Ok(LanBound {
        listener,
        tls,
        ips,
        fingerprint,
        new_certificate,
        browsers,
        clock,
    })
}

async fn launch_with(cfg: WebConfig, syncing: bool) -> Result<Launched, WebError> {
    let lan_bound = match &cfg.lan {
        Some(l) => Some(bind_lan(&cfg, l).await?),
        None => None,
    };
    // Port 0 means "the port of the last launch if it is free, else any": a bookmark keeps working.
    let last = if cfg.port == 0 {
        let dir = cfg.home_dir.clone();
        tokio::task::spawn_blocking(move || {
            let home = Home::open(&dir).ok()?;
            let v = home.setting(PORT_SETTING).ok().flatten()?;
            String::from_utf8(v).ok()?.parse::<u16>().ok()
        })
        .await
        .ok()
        .flatten()
    } else {
        None
    };
    let listener = match last {
        Some(p) => match tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, p)).await {
            Ok(l) => l,
            Err(_) => tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?,
        },
        None => tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, cfg.port)).await?,
    };
    let addr = listener.local_addr()?;
    let port = addr.port();
    if cfg.port == 0 {
        let dir = cfg.home_dir.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Ok(home) = Home::open(&dir) {
                let _ = home.set_setting(PORT_SETTING, port.to_string().as_bytes());
            }
        })
        .await;
    }
    let mut state = tokio::task::spawn_blocking(move || AppState::new(&cfg, port))
        .await
        .map_err(|e| WebError::Task(e.to_string()))??
        .with_syncing(syncing);
    let mut lan_parts = None;
    let mut served = None;
    if let Some(b) = lan_bound {
        let lan_addr = b.listener.local_addr()?;
        let hosts: Vec<String> = b
            .ips
            .iter()
            .map(|ip| format!("{ip}:{}", lan_addr.port()))
            .collect();
        let urls: Vec<String> = hosts.iter().map(|h| format!("https://{h}/pair")).collect();
        served = Some(LanServed {
            addr: lan_addr,
            urls: urls.clone(),
            fingerprint: b.fingerprint.clone(),
            new_certificate: b.new_certificate,
        });
        state = state.with_lan(lan::Lan {
            pairing: lan::pairing::Pairing::new(b.clock),
            browsers: b.browsers,
            csrf: random_token()?,
            hosts,
            urls,
            fingerprint: b.fingerprint,
        });
        lan_parts = Some((b.listener, b.tls));
    }
    state.start_serving().await?;
    let url = state.url();
    let lan_app = lan_parts
        .map(|(l, tls)| {
            Ok::<_, WebError>((lan::tls::TlsListener::new(l, tls)?, lan_router(&state)))
        })
        .transpose()?;
    let app = router(state);
    let server = async move {
        let local = async {
            axum::serve(listener, app).await?;
            Ok::<(), WebError>(())
        };
        match lan_app {
            None => local.await,
            Some((tls_listener, lan_app)) => {
                let on_lan = async {
                    axum::serve(tls_listener, lan_app).await?;
                    Ok::<(), WebError>(())
                };
                tokio::try_join!(local, on_lan).map(|_| ())
            }
        }
    };
    Ok(Launched {
        addr,
        url,
        lan: served,
        server: Box::pin(server),
    })
}
