//! The harness for `tests/browser.rs`: a real home, the real server on 127.0.0.1, and Debian's headless
//! Chromium driven through Debian's chromedriver. Small helpers keep each flow a few lines: open a page,
//! run axe on it, take its screenshots, and move through it with the keyboard only.
//!
//! Shared by two test binaries (`browser.rs`, `two_devices.rs`), each using part of it.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use roundtable_core::{Body, DeviceKey, Rule, StanceKind};
use roundtable_seal::{EncSecret, Keyring};
use roundtable_store::Home;
use roundtable_web::WebConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// 1 January 2026, 00:00 UTC: the fixture's entries are stamped from here.
pub const T0: i64 = 1_767_225_600_000;

/// The WCAG levels axe checks: A and AA of 2.0, 2.1 and 2.2.
pub const AXE_TAGS: [&str; 5] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"];

// ---------- the home ----------

/// Ids of what the fixture holds, as the pages show them in links.
#[derive(Clone, Debug)]
pub struct Ids {
    /// "Bus passes <for> the summer": open, one message by Ana.
    pub thread: String,
    /// "Ben's health": sealed, readers Ben and Chloe (this device, Ana, is not one).
    pub sealed_other: String,
    /// "Ana's support plan": sealed, readers Ana and Ben, one sealed message by Ana.
    pub sealed_mine: String,
    /// "Ask the council for summer passes", in `thread`: Ben agrees, Chloe disagrees (both with reasons).
    pub proposal: String,
}

pub struct Fixture {
    _dir: tempfile::TempDir,
    pub home_dir: PathBuf,
    pub ids: Ids,
}

/// A home like tests/handlers.rs's (real redb, real signatures): a group of three where Ana is this
/// device, an open thread with a message, and two sealed threads (Ana a reader of one only).
pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("a temporary folder for the home");
    let home_dir = dir.path().join("home");
    let (home, key) = Home::init(&home_dir, "Ana's laptop", None).expect("init the home");
    let mut g = home
        .create_group(
            &key,
            "Riverside Partnership Board",
            Rule::Consent,
            2,
            "Ana",
            "Easy read, please",
            T0,
        )
        .expect("create the group");
    // Ben and Chloe join by the group's agreement (Ana alone, then Ana and Ben).
    let others: Vec<DeviceKey> = vec![
        DeviceKey::from_secret(&[1; 32]),
        DeviceKey::from_secret(&[2; 32]),
    ];
    let gid = g.id();
    let mut t = T0;
    roundtable_core::governance::add_members(
        gid,
        2,
        &key,
        &[(&others[0], "Ben", ""), (&others[1], "Chloe", "")],
        |k, body| {
            t += 1;
            home.append(&mut g, k, body, t)
        },
    )
    .expect("add the members");
    let (ben, chloe) = (&others[0], &others[1]);
    let thread = home
        .append(
            &mut g,
            &key,
            Body::Thread {
                title: "Bus passes <for> the summer".into(),
            },
            T0 + 60_000,
        )
        .expect("start a thread");
    home.append(
        &mut g,
        &key,
        Body::Message {
            thread,
            text: "Who needs a pass?".into(),
        },
        T0 + 120_000,
    )
    .expect("post a message");
    let proposal = home
        .append(
            &mut g,
            &key,
            Body::Proposal {
                thread,
                title: "Ask the council for summer passes".into(),
                text: "We ask the council to give every member a bus pass for July and August."
                    .into(),
                easy_read: "We ask for free bus passes for the summer.".into(),
                rule: Rule::Consent,
                quorum: 2,
                effect: None,
                closes: None,
            },
            T0 + 130_000,
        )
        .expect("propose");
    for (k, stance, reason, n) in [
        (ben, StanceKind::Agree, "It helps me get to meetings.", 1),
        (
            chloe,
            StanceKind::Disagree,
            "We should ask for all year.",
            2,
        ),
    ] {
        home.append(
            &mut g,
            k,
            Body::Stance {
                proposal,
                stance,
                reason: reason.into(),
                on_behalf: None,
            },
            T0 + 140_000 + n,
        )
        .expect("take a stance");
    }
    // Ben writes, and says how he understood Ana's proposal: Ana can answer him.
    home.append(
        &mut g,
        ben,
        Body::Message {
            thread,
            text: "The council pays for half of each pass.".into(),
        },
        T0 + 145_000,
    )
    .expect("Ben posts");
    home.append(
        &mut g,
        ben,
        Body::Understand {
            target: proposal,
            text: "We ask for passes for July and August.".into(),
        },
        T0 + 146_000,
    )
    .expect("Ben's understanding");
    // An action for Ana: the actions page lists it.
    home.append(
        &mut g,
        &key,
        Body::Action {
            thread,
            text: "Collect the pass forms".into(),
            owner: key.device_id(),
            due: Some("2026-01-15".into()),
        },
        T0 + 150_000,
    )
    .expect("add an action");

    // Sealed threads need every reader's published encryption key: Ana's is this home's own.
    let ana_enc = EncSecret::from_bytes(&home.enc_secret(None).expect("Ana's encryption secret"));
    let profiles = [
        (&key, ana_enc.public().expect("Ana's public key")),
        (
            ben,
            EncSecret::generate()
                .and_then(|s| s.public())
                .expect("Ben's key"),
        ),
        (
            chloe,
            EncSecret::generate()
                .and_then(|s| s.public())
                .expect("Chloe's key"),
        ),
    ];
    for (k, enc_key) in profiles {
        home.append(&mut g, k, Body::Profile { enc_key }, T0 + 200_000)
            .expect("publish a profile");
    }
    let body = roundtable_seal::thread::start(
        &g.record,
        "Ben's health",
        "It is about one member's health",
        &[ben.device_id(), chloe.device_id()],
    )
    .expect("seal a thread for Ben and Chloe");
    let sealed_other = home
        .append(&mut g, ben, body, T0 + 300_000)
        .expect("start Ben's sealed thread");
    let body = roundtable_seal::thread::start(
        &g.record,
        "Ana's support plan",
        "It is about Ana's support at meetings",
        &[key.device_id(), ben.device_id()],
    )
    .expect("seal a thread for Ana and Ben");
    let sealed_mine = home
        .append(&mut g, &key, body, T0 + 400_000)
        .expect("start Ana's sealed thread");
    let mut ring = Keyring::new(key.device_id(), &ana_enc);
    let body = roundtable_seal::thread::message(
        &g.record,
        &mut ring,
        &sealed_mine,
        &key.device_id(),
        "I would like a break every hour.",
        T0 + 500_000,
    )
    .expect("seal a message");
    home.append(&mut g, &key, body, T0 + 500_000)
        .expect("post the sealed message");
    // Chloe asks to read Ana's thread, and Ben, its other reader, agrees: Ana is the last asked.
    let ask = Body::Ask {
        thread: sealed_mine,
        why: "I book the rooms and the breaks".into(),
    };
    home.append(&mut g, chloe, ask, T0 + 520_000)
        .expect("Chloe asks to read");
    let agree = Body::ReaderAgree {
        thread: sealed_mine,
        member: chloe.device_id(),
    };
    home.append(&mut g, ben, agree, T0 + 540_000)
        .expect("Ben agrees");
    drop(home); // the web opens the home per request
    Fixture {
        _dir: dir,
        home_dir,
        ids: Ids {
            thread: thread.to_string(),
            sealed_other: sealed_other.to_string(),
            sealed_mine: sealed_mine.to_string(),
            proposal: proposal.to_string(),
        },
    }
}

// ---------- processes ----------

/// chromedriver on a free loopback port, in its own process group: dropping it kills the group, so the
/// browsers it started go too, even when a test fails half-way.
struct Driver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Driver {
    fn spawn(dir: &Path) -> Driver {
        // Never skip and never download: without Debian's packages the test fails and says why.
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "need {package}: {path} is missing. Install Debian's packages: \
                 apt-get install chromium chromium-driver (.ci/run does this)"
            );
        }
        let port = free_port();
        let log = dir.join("chromedriver.log");
        use std::os::unix::process::CommandExt;
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {CHROMEDRIVER}: {e}"));
        Driver { child, port, log }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits until chromedriver answers `/status` with `"ready": true`.
    async fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "chromedriver exited at start ({status}); its log:\n{}",
                    self.log_tail()
                );
            }
            if driver_ready(self.port).await {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not answer on {} within 20 s; its log:\n{}",
                self.url(),
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid; only processes this test started are in it.
        let group = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// Whether chromedriver says it is ready: one bare HTTP request to `/status`, given a second.
async fn driver_ready(port: u16) -> bool {
    let ask = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let req = format!("GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        // chromedriver keeps the connection open: read until the answer says.
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).await.ok()?;
            if n == 0 {
                return Some(false);
            }
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if text.contains("\"ready\":true") {
                return Some(true);
            }
            if text.contains("\"ready\":false") {
                return Some(false);
            }
        }
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), ask).await,
        Ok(Some(true))
    )
}

/// Aborts a spawned task when dropped (the server, a test body that timed out).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn chrome_capabilities(profile: &Path) -> Capabilities {
    chrome_capabilities_with(profile, &[])
}

/// The capabilities, with `extra` arguments (the LAN test's address and certificate).
fn chrome_capabilities_with(profile: &Path, extra: &[String]) -> Capabilities {
    let mut args = vec![
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--no-default-browser-check".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-dev-shm-usage".into(),
        "--disable-extensions".into(),
        "--disable-default-apps".into(),
        "--disable-crash-reporter".into(),
        // Only loopback: any other host fails to resolve and goes to a proxy that is not there.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1".into(),
        "--proxy-server=http://127.0.0.1:9".into(),
        "--hide-scrollbars".into(),
        "--window-size=1280,900".into(),
        format!("--user-data-dir={}", profile.display()),
    ];
    args.extend_from_slice(extra);
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        "timeouts": { "pageLoad": 20_000, "script": 30_000, "implicit": 0 },
    });
    match caps {
        Value::Object(m) => m,
        _ => unreachable!("a JSON object literal"),
    }
}

// ---------- a browser on the running server ----------

/// What a test body gets: the browser, the server's address and the fixture's ids. Cheap to clone.
#[derive(Clone)]
pub struct Browser {
    pub c: Client,
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base: String,
    pub port: u16,
    pub ids: Ids,
    /// The last steps taken, shown when a test runs out of time.
    trail: Trail,
}

type Trail = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Starts the server on the fixture (port 0, in-process), chromedriver and Chromium, opens the launch
/// link (which sets the cookie), then runs `body`. Everything is bounded by `limit`, and everything
/// started here is ended here, whether `body` passes, panics or hangs.
pub async fn with_browser<F, Fut>(limit: Duration, body: F)
where
    F: FnOnce(Browser) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    with_browser_lan(limit, None, |b, _| body(b)).await
}

/// [`with_browser`], with the page also served on the local network at `lan` (a loopback address
/// such as `127.0.0.13:0`: no traffic leaves this machine). Chromium accepts the page's
/// self-signed certificate for that address only (`--ignore-certificate-errors-spki-list` with
/// the certificate's key), as a member does after checking the fingerprint.
pub async fn with_lan_browser<F, Fut>(limit: Duration, lan: &'static str, body: F)
where
    F: FnOnce(Browser, roundtable_web::LanServed) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    with_browser_lan(limit, Some(lan), |b, l| {
        body(b, l.expect("the LAN side was asked for"))
    })
    .await
}

async fn with_browser_lan<F, Fut>(limit: Duration, lan: Option<&'static str>, body: F)
where
    F: FnOnce(Browser, Option<roundtable_web::LanServed>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let trail = Trail::default();
    let steps = trail.clone();
    let outcome = tokio::time::timeout(limit, async move {
        let fixture = tokio::task::spawn_blocking(fixture)
            .await
            .expect("build the fixture");
        let launched = roundtable_web::launch(WebConfig {
            home_dir: fixture.home_dir.clone(),
            passphrase: None,
            port: 0,
            sync: None,
            lan: lan.map(|l| roundtable_web::lan::LanConfig {
                listen: Some(l.parse().expect("a LAN address")),
                clock: None,
            }),
        })
        .await
        .expect("start the web server");
        let (addr, url, served) = (launched.addr, launched.url, launched.lan);
        let serving = launched.server;
        let _server = AbortOnDrop(tokio::spawn(async move {
            if let Err(e) = serving.await {
                panic!("the web server stopped: {e}");
            }
        }));
        let mut extra = Vec::new();
        if let Some(l) = &served {
            let ip = l.addr.ip();
            extra.push(format!(
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE {ip}"
            ));
            extra.push(format!("--proxy-bypass-list={ip}"));
            extra.push(format!(
                "--ignore-certificate-errors-spki-list={}",
                spki_hash(&fixture.home_dir)
            ));
        }
        let profile = tempfile::tempdir().expect("a temporary browser profile");
        let mut driver = Driver::spawn(profile.path());
        driver.wait_ready().await;
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(chrome_capabilities_with(
                &profile.path().join("chromium"),
                &extra,
            ))
            .connect(&driver.url())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "could not start Chromium through chromedriver: {e}\nchromedriver's log:\n{}",
                    driver.log_tail()
                )
            });
        client.goto(&url).await.expect("open the launch link");
        let b = Browser {
            c: client.clone(),
            base: format!("http://{addr}"),
            port: addr.port(),
            ids: fixture.ids.clone(),
            trail: steps,
        };
        assert_eq!(
            b.path().await,
            "/",
            "the launch link should set the cookie and land on the home page"
        );
        let mut task = AbortOnDrop(tokio::spawn(body(b, served)));
        let result = (&mut task.0).await;
        // End the session (Chromium quits); the driver guard then ends chromedriver's group.
        let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
        drop(driver);
        drop(fixture);
        result
    })
    .await;
    match outcome {
        Err(_) => {
            let steps = trail.lock().map(|t| t.join("\n  ")).unwrap_or_default();
            panic!("the browser test took longer than {limit:?}; its last steps:\n  {steps}")
        }
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(Err(e)) => panic!("the browser test was cancelled: {e}"),
        Ok(Ok(())) => {}
    }
}

impl Browser {
    /// Keeps the last few steps for the time-out message.
    fn note(&self, step: String) {
        if let Ok(mut t) = self.trail.lock() {
            if t.len() == 20 {
                t.remove(0);
            }
            t.push(step);
        }
    }

    /// Runs a script in the page and returns its value. WebDriver's scripts are not subject to the
    /// page's Content-Security-Policy, which stays as strict as it is for members.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.c.execute(script, args).await.unwrap_or_else(|e| {
            let start: String = script.chars().take(200).collect();
            panic!("script failed: {e}\n{start}")
        })
    }

    /// The current address's path.
    pub async fn path(&self) -> String {
        self.c
            .current_url()
            .await
            .expect("the current address")
            .path()
            .to_string()
    }

    /// Opens a path on the server, e.g. `/threads`.
    pub async fn open(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.note(format!("open {path}"));
        self.c
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("could not open {url}: {e}"));
    }

    /// The text of `<main>`, as shown.
    pub async fn main_text(&self) -> String {
        self.c
            .find(Locator::Css("main"))
            .await
            .expect("the page has a <main>")
            .text()
            .await
            .expect("the text of <main>")
    }

    /// The text of the page's `<h1>`.
    pub async fn h1(&self) -> String {
        match self.c.find(Locator::Css("h1")).await {
            Ok(h) => h.text().await.expect("the text of <h1>"),
            Err(e) => panic!("the page at {} has no <h1>: {e}", self.path().await),
        }
    }

    /// Asserts that the page's `<h1>` contains `words`.
    pub async fn assert_h1(&self, words: &str) {
        let h1 = self.h1().await;
        assert!(
            h1.contains(words),
            "{} should have an <h1> with {words:?}, not {h1:?}",
            self.path().await
        );
    }

    /// Asserts that `<main>` shows every one of `words`.
    pub async fn assert_shows(&self, words: &[&str]) {
        let text = self.main_text().await;
        for w in words {
            assert!(
                text.contains(w),
                "{} should show {w:?}; it shows:\n{text}",
                self.path().await
            );
        }
    }

    // ---------- the keyboard ----------

    /// Sends keys to the focused element, as a person at a keyboard would (never a click).
    pub async fn keys(&self, keys: &str) {
        self.note(format!("keys {:?}", keys_name(keys)));
        let el = self.c.active_element().await.expect("the focused element");
        el.send_keys(keys)
            .await
            .unwrap_or_else(|e| panic!("could not type {keys:?}: {e}"));
    }

    /// What has focus now (see [`Focused`]).
    pub async fn focused(&self) -> Focused {
        let v = self.js(FOCUSED_JS, vec![]).await;
        serde_json::from_value(v).expect("the focused element's description")
    }

    /// Tab once; the new focus must be visible.
    pub async fn tab(&self) -> Focused {
        self.keys(TAB).await;
        let f = self.focused().await;
        f.assert_visible(&self.path().await);
        f
    }

    /// Shift+Tab once; the new focus must be visible.
    pub async fn shift_tab(&self) -> Focused {
        self.keys(&format!("{SHIFT}{TAB}{NULL}")).await;
        let f = self.focused().await;
        f.assert_visible(&self.path().await);
        f
    }

    /// Tabs forward (at most `max` times) until the focus matches `want`; fails listing every stop.
    pub async fn tab_until(&self, what: &str, want: impl Fn(&Focused) -> bool) -> Focused {
        self.move_until(what, false, want).await
    }

    /// [`Browser::tab_until`], backwards with Shift+Tab.
    pub async fn shift_tab_until(&self, what: &str, want: impl Fn(&Focused) -> bool) -> Focused {
        self.move_until(what, true, want).await
    }

    async fn move_until(&self, what: &str, back: bool, want: impl Fn(&Focused) -> bool) -> Focused {
        const MAX: usize = 40;
        let mut seen = Vec::new();
        for _ in 0..MAX {
            let f = if back {
                self.shift_tab().await
            } else {
                self.tab().await
            };
            if want(&f) {
                return f;
            }
            seen.push(f.describe());
        }
        panic!(
            "on {}: {MAX} {} did not reach {what}; focus went to:\n  {}",
            self.path().await,
            if back { "Shift+Tabs" } else { "Tabs" },
            seen.join("\n  ")
        );
    }

    /// Presses `key` (Enter or Space) on the focused element and waits for the next page to load.
    pub async fn activate(&self, key: &str) {
        // A mark on the old page's window: gone once a new document has loaded.
        self.js("window.__roundtableOld = true;", vec![]).await;
        let before = self.path().await;
        let focused = self.focused().await.describe();
        self.keys(key).await;
        let start = Instant::now();
        loop {
            let v = self
                .c
                .execute(
                    "return window.__roundtableOld !== true && document.readyState === 'complete';",
                    vec![],
                )
                .await;
            if matches!(v, Ok(Value::Bool(true))) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "pressing {} on {focused} at {before} did not load a new page",
                key_name(key)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // ---------- checks on a whole page ----------

    /// Runs axe-core on the page for [`AXE_TAGS`] and returns its findings.
    pub async fn axe(&self) -> Axe {
        self.note(format!("axe on {}", self.path().await));
        // Loaded once per document; axe keeps itself on `window`.
        if self.js("return typeof window.axe;", vec![]).await != "object" {
            self.js(&format!("{}\n;return true;", axe_source()), vec![])
                .await;
        }
        let v = self
            .c
            .execute_async(AXE_RUN_JS, vec![json!(AXE_TAGS)])
            .await
            .expect("axe.run answered");
        if let Some(err) = v.get("error") {
            panic!("axe failed on {}: {err}", self.path().await);
        }
        let axe: Axe = serde_json::from_value(v).expect("axe's result, trimmed");
        // Proof that axe really ran (a blocked or broken script would find nothing at all).
        assert!(
            axe.passes > 0,
            "axe ran no passing rule on {}: it did not really run",
            self.path().await
        );
        axe
    }

    /// Sets the viewport (not the window) to `width` × `height` CSS pixels.
    pub async fn viewport(&self, width: u32, height: u32) {
        self.c
            .set_window_size(width, height)
            .await
            .expect("resize the window");
        // Headless windows have no frame, but measure rather than assume.
        let v = self
            .js("return [window.innerWidth, window.innerHeight];", vec![])
            .await;
        let (iw, ih) = (v[0].as_u64().unwrap_or(0), v[1].as_u64().unwrap_or(0));
        if (iw, ih) != (u64::from(width), u64::from(height)) {
            let w = (2 * width).saturating_sub(iw as u32);
            let h = (2 * height).saturating_sub(ih as u32);
            self.c
                .set_window_size(w, h)
                .await
                .expect("resize the window");
        }
        let v = self.js("return window.innerWidth;", vec![]).await;
        assert_eq!(
            v.as_u64(),
            Some(u64::from(width)),
            "Chromium would not make the viewport {width} px wide"
        );
    }

    /// At `width`: whether the page scrolls sideways, with the elements that stick out.
    pub async fn overflow(&self, width: u32) -> Option<String> {
        self.viewport(width, 800).await;
        let v = self.js(OVERFLOW_JS, vec![]).await;
        if v["scrollWidth"].as_u64() <= v["clientWidth"].as_u64() {
            return None;
        }
        Some(format!(
            "at {width} px the page scrolls sideways (scrollWidth {} > clientWidth {}); sticking out: {}",
            v["scrollWidth"], v["clientWidth"], v["wide"]
        ))
    }

    /// Screenshots the whole page at `width` into `target/screenshots/NAME-WIDTH.png` (the window is
    /// made as tall as the page, since WebDriver only shoots the viewport).
    pub async fn screenshot(&self, name: &str, width: u32) -> PathBuf {
        self.viewport(width, 800).await;
        let height = self
            .js(
                "return Math.ceil(Math.max(document.documentElement.scrollHeight, document.body.scrollHeight));",
                vec![],
            )
            .await
            .as_u64()
            .expect("the page's height") as u32;
        self.viewport(width, height.clamp(200, 8000)).await;
        let png = self.c.screenshot().await.expect("a screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("could not make {}: {e}", dir.display()));
        let file = dir.join(format!("{name}-{width}.png"));
        std::fs::write(&file, png)
            .unwrap_or_else(|e| panic!("could not write {}: {e}", file.display()));
        file
    }
}

// ---------- focus ----------

pub const TAB: &str = "\u{e004}";
pub const ENTER: &str = "\u{e007}";
pub const SPACE: &str = " ";
pub const ARROW_DOWN: &str = "\u{e015}";
const SHIFT: &str = "\u{e008}";
/// Releases held modifier keys (after Shift+Tab).
const NULL: &str = "\u{e000}";

fn key_name(key: &str) -> &str {
    match key {
        ENTER => "Enter",
        SPACE => "Space",
        TAB => "Tab",
        _ => key,
    }
}

/// Keys as words, for messages: "Shift+Tab" rather than private-use characters.
fn keys_name(keys: &str) -> String {
    keys.replace(SHIFT, "Shift+")
        .replace(NULL, "")
        .replace(TAB, "Tab")
        .replace(ENTER, "Enter")
}

/// The focused element, as seen by a sighted keyboard user.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Focused {
    pub tag: String,
    /// Its visible text, or for a field its label.
    pub text: String,
    /// A link's `href` attribute, as written (e.g. `/threads`).
    pub href: String,
    pub name: String,
    /// The landmark it is in: "main", "nav", "header" or "".
    pub region: String,
    pub outline: String,
    pub shadow: String,
    /// The focus ring's box in the viewport: [left, top, right, bottom].
    pub rect: [f64; 4],
    pub viewport: [f64; 2],
}

impl Focused {
    pub fn is_link(&self, text: &str) -> bool {
        self.tag == "a" && self.text == text
    }

    pub fn is_button(&self, text: &str) -> bool {
        self.tag == "button" && self.text == text
    }

    /// The body (nothing focusable has focus, e.g. past the last Tab stop).
    pub fn is_body(&self) -> bool {
        self.tag == "body"
    }

    pub fn describe(&self) -> String {
        let mut s = format!("<{}>", self.tag);
        if !self.text.is_empty() {
            s.push_str(&format!(" {:?}", self.text));
        }
        if !self.href.is_empty() {
            s.push_str(&format!(" href={}", self.href));
        }
        if !self.name.is_empty() {
            s.push_str(&format!(" name={}", self.name));
        }
        if !self.region.is_empty() {
            s.push_str(&format!(" in <{}>", self.region));
        }
        s
    }

    /// A keyboard user must see where the focus is: a focus ring (outline or box-shadow), on screen.
    pub fn assert_visible(&self, page: &str) {
        if self.is_body() {
            return;
        }
        let ring = (!self.outline.starts_with("none") && !self.outline.contains(" 0px"))
            || self.shadow != "none";
        assert!(
            ring,
            "on {page}: {} has focus but no visible focus ring (outline: {}, box-shadow: {})",
            self.describe(),
            self.outline,
            self.shadow
        );
        let [l, t, r, b] = self.rect;
        let [w, h] = self.viewport;
        assert!(
            r > 0.0 && b > 0.0 && l < w && t < h,
            "on {page}: {} has focus but is off screen at {:?} in a {w}×{h} viewport",
            self.describe(),
            self.rect
        );
    }
}

const FOCUSED_JS: &str = r#"
const el = document.activeElement || document.body;
const cs = getComputedStyle(el);
let text = (el.innerText || '').trim().replace(/\s+/g, ' ');
if (!text && el.labels && el.labels.length) { text = el.labels[0].innerText.trim(); }
const r = el.getBoundingClientRect();
return {
  tag: el.tagName.toLowerCase(),
  text: text,
  href: el.getAttribute('href') || '',
  name: el.getAttribute('name') || '',
  region: el.closest('main') ? 'main' : el.closest('nav') ? 'nav' : el.closest('header') ? 'header' : '',
  outline: cs.outlineStyle + ' ' + cs.outlineWidth + ' ' + cs.outlineColor,
  shadow: cs.boxShadow,
  rect: [r.left, r.top, r.right, r.bottom],
  viewport: [window.innerWidth, window.innerHeight],
};
"#;

// ---------- axe ----------

/// axe-core's findings on one page, trimmed to what a report needs.
#[derive(Debug, serde::Deserialize)]
pub struct Axe {
    pub violations: Vec<Violation>,
    pub passes: usize,
    /// Rules axe could not decide (to be looked at by a person; not failures).
    pub incomplete: Vec<String>,
}

#[derive(Debug, serde::Deserialize)]
pub struct Violation {
    pub id: String,
    pub impact: Option<String>,
    pub help: String,
    pub nodes: Vec<ViolationNode>,
}

#[derive(Debug, serde::Deserialize)]
pub struct ViolationNode {
    pub target: Value,
    pub html: String,
    pub summary: Option<String>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let impact = self.impact.as_deref().unwrap_or("unknown");
        writeln!(f, "  {} ({impact}): {}", self.id, self.help)?;
        for n in &self.nodes {
            writeln!(f, "    at {}: {}", n.target, n.html)?;
            if let Some(s) = &n.summary {
                for line in s.lines() {
                    writeln!(f, "      {line}")?;
                }
            }
        }
        Ok(())
    }
}

const AXE_RUN_JS: &str = r#"
const tags = arguments[0];
const done = arguments[arguments.length - 1];
if (!window.axe) { done({ error: 'axe-core did not load' }); return; }
window.axe
  .run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] })
  .then((r) => {
    if (!Array.isArray(r.violations) || !Array.isArray(r.passes)) {
      done({ error: 'axe returned no violations or passes arrays' });
      return;
    }
    done({
      violations: r.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.map((n) => ({ target: n.target, html: n.html, summary: n.failureSummary })),
      })),
      passes: r.passes.length,
      incomplete: r.incomplete.map((v) => v.id),
    });
  })
  .catch((e) => done({ error: String(e) }));
"#;

/// axe-core as installed by `npm ci` in tests/js (pinned by its package-lock.json).
fn axe_source() -> &'static str {
    static SRC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SRC.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/js/node_modules/axe-core/axe.min.js");
        std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "need axe-core: could not read {} ({e}). Run `npm ci` in tests/js first.",
                path.display()
            )
        })
    })
}

// ---------- layout ----------

const OVERFLOW_JS: &str = r#"
const de = document.documentElement;
const wide = [];
for (const el of document.querySelectorAll('body *')) {
  const r = el.getBoundingClientRect();
  if (r.right > de.clientWidth + 0.5 && wide.length < 5) {
    wide.push(el.tagName.toLowerCase() + (el.className ? '.' + el.className : '') + ' (right edge ' + Math.round(r.right) + ')');
  }
}
return { scrollWidth: de.scrollWidth, clientWidth: de.clientWidth, wide: wide.join(', ') };
"#;

/// `target/screenshots` of the workspace (or of `CARGO_TARGET_DIR`).
pub fn screenshot_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap_or(root);
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => root.join(t), // an absolute CARGO_TARGET_DIR replaces `root`
        None => root.join("target"),
    };
    target.join("screenshots")
}

/// Screenshots the page at 1024 px into `docs/pictures/NAME.png` (the docs show them).
pub async fn picture(b: &Browser, name: &str) {
    let shot = b.screenshot(name, 1024).await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/pictures");
    std::fs::create_dir_all(&dir).expect("docs/pictures");
    std::fs::copy(&shot, dir.join(format!("{name}.png"))).expect("copy the screenshot");
    b.viewport(1024, 800).await;
}

// ---------- several devices, each starting from nothing ----------

/// Starts `n` web pages, each on its own empty home that serves sync on 127.0.0.1 (no mDNS), and
/// one Chromium; opens each page's launch link (each port keeps its own cookie) and runs `body`
/// with one [`Browser`] per device. Bounded by `limit`; everything started here is ended here.
pub async fn with_devices<F, Fut>(limit: Duration, n: usize, body: F)
where
    F: FnOnce(Vec<Browser>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    with_prepared_devices(limit, n, |_, _| {}, body).await
}

/// [`with_devices`], with `prepare(home_dir, i)` run on each device's home before its page starts
/// (a home made beforehand, say, with a passphrase).
pub async fn with_prepared_devices<F, Fut>(
    limit: Duration,
    n: usize,
    prepare: fn(&Path, usize),
    body: F,
) where
    F: FnOnce(Vec<Browser>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let trail = Trail::default();
    let steps = trail.clone();
    let outcome = tokio::time::timeout(limit, async move {
        let homes = tempfile::tempdir().expect("a temporary folder for the homes");
        let mut servers = Vec::new();
        let mut links = Vec::new();
        for i in 0..n {
            let dir = homes.path().join(format!("device-{i}"));
            let d = dir.clone();
            tokio::task::spawn_blocking(move || prepare(&d, i))
                .await
                .expect("prepare the home");
            let (addr, url, serving) = roundtable_web::serve(WebConfig {
                home_dir: dir,
                passphrase: None,
                port: 0,
                sync: Some(roundtable_web::SyncConfig {
                    net: roundtable_app::net::NetConfig {
                        listen: vec!["127.0.0.1:0".parse().expect("an address")],
                        relay: None,
                    },
                    mdns: false,
                }),
                lan: None,
            })
            .await
            .expect("start a web page");
            servers.push(AbortOnDrop(tokio::spawn(async move {
                if let Err(e) = serving.await {
                    panic!("a web server stopped: {e}");
                }
            })));
            links.push((addr, url));
        }
        let profile = tempfile::tempdir().expect("a temporary browser profile");
        let mut driver = Driver::spawn(profile.path());
        driver.wait_ready().await;
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(chrome_capabilities(&profile.path().join("chromium")))
            .connect(&driver.url())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "could not start Chromium through chromedriver: {e}\nchromedriver's log:\n{}",
                    driver.log_tail()
                )
            });
        let mut browsers = Vec::new();
        for (addr, url) in &links {
            client.goto(url).await.expect("open the launch link");
            browsers.push(Browser {
                c: client.clone(),
                base: format!("http://{addr}"),
                port: addr.port(),
                ids: Ids {
                    thread: String::new(),
                    sealed_other: String::new(),
                    sealed_mine: String::new(),
                    proposal: String::new(),
                },
                trail: steps.clone(),
            });
        }
        let mut task = AbortOnDrop(tokio::spawn(body(browsers)));
        let result = (&mut task.0).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
        drop(driver);
        drop(servers);
        drop(homes);
        result
    })
    .await;
    match outcome {
        Err(_) => {
            let steps = trail.lock().map(|t| t.join("\n  ")).unwrap_or_default();
            panic!("the browser test took longer than {limit:?}; its last steps:\n  {steps}")
        }
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(Err(e)) => panic!("the browser test was cancelled: {e}"),
        Ok(Ok(())) => {}
    }
}

impl Browser {
    /// Types `text` into the field `css` (replacing what was there), as a member would.
    pub async fn fill(&self, css: &str, text: &str) {
        self.note(format!("fill {css}"));
        // A field in a closed <details> is opened first, as a member would open it.
        self.js(
            "const el = document.querySelector(arguments[0]); for (let d = el && el.closest('details'); d; d = d.parentElement && d.parentElement.closest('details')) d.open = true; return true;",
            vec![json!(css)],
        )
        .await;
        let Ok(el) = self.c.find(Locator::Css(css)).await else {
            let (path, text) = (self.path().await, self.main_text().await);
            panic!("no field {css} on {}{path}; it shows:\n{text}", self.base);
        };
        el.clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        // Long texts are set at once: typing 100 kB key by key would take minutes.
        if text.len() > 200 {
            self.js(
                "document.querySelector(arguments[0]).value = arguments[1]; return true;",
                vec![json!(css), json!(text)],
            )
            .await;
        } else {
            el.send_keys(text)
                .await
                .unwrap_or_else(|e| panic!("type into {css}: {e}"));
        }
    }

    /// Ticks (or chooses) the checkbox or radio button `css`.
    pub async fn check(&self, css: &str) {
        self.note(format!("check {css}"));
        let el = self
            .c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no choice {css}: {e}"));
        if !el.is_selected().await.unwrap_or(false) {
            el.click()
                .await
                .unwrap_or_else(|e| panic!("click {css}: {e}"));
        }
    }

    /// Presses the button `css` and waits for the page it leads to.
    pub async fn press(&self, css: &str) {
        let path = self.path().await;
        self.note(format!("press {css} on {path}"));
        self.js("window.__roundtable_before = true; return true;", vec![])
            .await;
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no button {css} on {path}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("press {css}: {e}"));
        let start = std::time::Instant::now();
        loop {
            let v = self
                .c
                .execute(
                    "return typeof window.__roundtable_before === 'undefined' && document.readyState === 'complete';",
                    vec![],
                )
                .await;
            if matches!(v, Ok(Value::Bool(true))) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "pressing {css} did not load a new page"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The value of the field `css` (a read-only code, say).
    pub async fn value(&self, css: &str) -> String {
        self.js(
            "return document.querySelector(arguments[0]).value;",
            vec![json!(css)],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Runs axe and fails on any violation, naming the page.
    pub async fn assert_axe_clean(&self, what: &str) {
        let axe = self.axe().await;
        assert!(
            axe.violations.is_empty(),
            "axe found violations on {what} ({}): {:#?}",
            self.path().await,
            axe.violations
        );
    }
}

// ---------- the LAN certificate ----------

/// Base64 of the SHA-256 of the kept certificate's public key (SubjectPublicKeyInfo): what
/// Chromium's `--ignore-certificate-errors-spki-list` names, so it trusts that one certificate.
fn spki_hash(home_dir: &Path) -> String {
    use rcgen::PublicKeyData;
    use sha2::Digest;
    let pem = std::fs::read_to_string(home_dir.join(roundtable_web::lan::CERT_FILE))
        .expect("the kept certificate");
    let at = pem
        .find("-----BEGIN PRIVATE KEY-----")
        .expect("the key in the file");
    let key = rcgen::KeyPair::from_pem(&pem[at..]).expect("the certificate's key");
    base64(&sha2::Sha256::digest(key.subject_public_key_info()))
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
