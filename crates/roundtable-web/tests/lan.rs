//! `web --lan`: the real server, both listeners, over real sockets. The LAN listener is bound to an
//! explicit loopback address (127.0.0.2, 127.0.0.3, ...: the loopback range only, so no traffic
//! leaves this machine), and spoken to over TLS by reqwest (rustls, ring) that trusts the kept
//! self-signed certificate and nothing else. The pairing's clock is injected, so pauses and expiry
//! are tested without waiting.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use reqwest::header::{COOKIE, HOST, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::{Client, StatusCode};
use roundtable_core::Rule;
use roundtable_store::Home;
use roundtable_web::lan::{CERT_FILE, CODE_LIFE_MS, FIRST_PAUSE_MS, FREE_TRIES, LanConfig};
use roundtable_web::{LanServed, WebConfig};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

const T0: i64 = 1_767_225_600_000; // 1 January 2026, 00:00 UTC
const GROUP: &str = "Riverside Partnership Board";

/// A home with a group of one (Ana is this device).
fn home(dir: &Path) -> PathBuf {
    let home_dir = dir.join("home");
    let (home, key) = Home::init(&home_dir, "Ana's laptop", None).unwrap();
    home.create_group(&key, GROUP, Rule::Consent, 1, "Ana", "", T0)
        .unwrap();
    home_dir
}

/// Aborts the server when dropped.
struct Running(Option<tokio::task::JoinHandle<()>>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
        }
    }
}

struct Server {
    /// `http://127.0.0.1:PORT`
    local: String,
    /// The launch link, with the token.
    url: String,
    lan: LanServed,
    /// `https://127.0.0.x:PORT`
    base: String,
    /// The pairing's clock (ms), moved on by the tests.
    clock: Arc<AtomicI64>,
    running: Running,
}

impl Server {
    async fn stop(mut self) {
        if let Some(t) = self.running.0.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

async fn start(home_dir: &Path, listen: &str) -> Server {
    let clock = Arc::new(AtomicI64::new(T0 + 3_600_000));
    let c = clock.clone();
    let launched = roundtable_web::launch(WebConfig {
        home_dir: home_dir.to_path_buf(),
        passphrase: None,
        port: 0,
        sync: None,
        lan: Some(LanConfig {
            listen: Some(listen.parse().unwrap()),
            clock: Some(Arc::new(move || c.load(Ordering::SeqCst))),
        }),
    })
    .await
    .expect("launch with the LAN listener");
    let lan = launched.lan.clone().expect("the LAN side was asked for");
    let server = launched.server;
    let task = tokio::spawn(async move {
        if let Err(e) = server.await {
            panic!("the server stopped: {e}");
        }
    });
    Server {
        local: format!("http://{}", launched.addr),
        url: launched.url,
        base: format!("https://{}", lan.addr),
        lan,
        clock,
        running: Running(Some(task)),
    }
}

/// The certificate kept in the home.
fn kept_cert(home_dir: &Path) -> CertificateDer<'static> {
    let pem = std::fs::read(home_dir.join(CERT_FILE)).expect("the kept certificate");
    CertificateDer::pem_slice_iter(&pem)
        .next()
        .expect("a certificate in the file")
        .expect("a readable certificate")
}

/// A client that trusts only `cert` (and speaks plain HTTP to 127.0.0.1), never follows
/// redirects and keeps no cookies: each test says exactly what it sends.
fn client(cert: &CertificateDer<'static>) -> Client {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(cert.clone())
        .expect("the certificate as the only root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("a client")
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value after `marker` in `html`, up to the next `"` or `<`.
fn after(html: &str, marker: &str) -> String {
    let i = html
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in the page:\n{html}"));
    html[i + marker.len()..]
        .chars()
        .take_while(|c| *c != '"' && *c != '<')
        .collect()
}

/// A signed-in browser on this computer (the loopback listener's cookie).
struct Local {
    c: Client,
    base: String,
    cookie: String,
}

impl Local {
    async fn sign_in(c: &Client, s: &Server) -> Local {
        let r = c.get(&s.url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let cookie = r.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        Local {
            c: c.clone(),
            base: s.local.clone(),
            cookie,
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self
            .c
            .get(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let (_, page) = self.get("/devices").await;
        let csrf = after(&page, "name=\"csrf\" value=\"");
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        let r = self
            .c
            .post(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .header(ORIGIN, &self.base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&all))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// Presses "Let a phone or tablet in" and reads the 6 numbers shown.
    async fn new_code(&self) -> String {
        let (status, page) = self.post("/devices/pair", &[]).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let code = after(&page, "id=\"pair-code\">");
        assert_eq!(code.len(), 6, "{code:?}");
        assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code:?}");
        code
    }
}

/// Types `code` into the LAN's `/pair` form, as a phone would (with its origin).
async fn type_code(c: &Client, s: &Server, code: &str) -> reqwest::Response {
    c.post(format!("{}/pair", s.base))
        .header(ORIGIN, &s.base)
        .header(
            "user-agent",
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("code", code)]))
        .send()
        .await
        .unwrap()
}

/// Pairs with `code` and returns the cookie to send (`NAME=VALUE`), checking its attributes.
async fn pair(c: &Client, s: &Server, code: &str) -> String {
    let r = type_code(c, s, code).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/");
    let set = r.headers()[SET_COOKIE].to_str().unwrap().to_string();
    for attr in [
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=31536000",
    ] {
        assert!(set.split("; ").any(|a| a == attr), "{attr} in {set}");
    }
    let pair = set.split(';').next().unwrap().to_string();
    let (name, value) = pair.split_once('=').unwrap();
    assert_eq!(name, "__Host-roundtable-lan");
    assert_eq!(value.len(), 64, "32 random bytes in hex");
    pair
}

async fn lan_get(c: &Client, s: &Server, path: &str, cookie: Option<&str>) -> (StatusCode, String) {
    let mut req = c.get(format!("{}{path}", s.base));
    if let Some(k) = cookie {
        req = req.header(COOKIE, k);
    }
    let r = req.send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

fn wrong_of(code: &str) -> String {
    if code == "000000" {
        "111111".into()
    } else {
        "000000".into()
    }
}

#[tokio::test]
async fn the_right_code_lets_a_phone_in_once_and_then_the_pages_load() {
    let dir = tempfile::tempdir().unwrap();
    let h = home(dir.path());
    let s = start(&h, "127.0.0.2:0").await;
    assert_eq!(s.lan.urls, vec![format!("{}/pair", s.base)]);
    let c = client(&kept_cert(&h));

    // Before pairing, any page is the code form (403), in plain words.
    let (status, page) = lan_get(&c, &s, "/", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        page.contains("Type the 6 numbers shown on the computer&#39;s screen")
            || page.contains("Type the 6 numbers shown on the computer's screen"),
        "{page}"
    );
    let (status, _) = lan_get(&c, &s, "/pair", None).await;
    assert_eq!(status, StatusCode::OK);

    let local = Local::sign_in(&c, &s).await;
    let code = local.new_code().await;
    let cookie = pair(&c, &s, &code).await;
    let (status, page) = lan_get(&c, &s, "/", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains(GROUP), "{page}");
    let (status, page) = lan_get(&c, &s, "/threads", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "{page}");

    // The code works once.
    let other = client(&kept_cert(&h));
    let r = type_code(&other, &s, &code).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get(SET_COOKIE).is_none());

    // The computer's Devices page lists the phone, in short.
    let (_, page) = local.get("/devices").await;
    assert!(page.contains("Chrome on Android, let in"), "{page}");
    assert!(page.contains(&s.lan.urls[0]), "{page}");

    // A form on the LAN needs the LAN's own CSRF token and origin; the computer's token is not it.
    let (_, lan_page) = lan_get(&c, &s, "/devices", Some(&cookie)).await;
    let lan_csrf = after(&lan_page, "name=\"csrf\" value=\"");
    let (_, local_page) = local.get("/devices").await;
    let local_csrf = after(&local_page, "name=\"csrf\" value=\"");
    assert_ne!(lan_csrf, local_csrf);
    assert!(
        !lan_page.contains("/devices/pair"),
        "no pairing from a phone"
    );
    let live = |csrf: &str, origin: Option<&str>| {
        let mut req = c
            .post(format!("{}/devices/live", s.base))
            .header(COOKIE, &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("csrf", csrf), ("live", "on")]));
        if let Some(o) = origin {
            req = req.header(ORIGIN, o);
        }
        req.send()
    };
    let r = live(&local_csrf, Some(&s.base)).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "the computer's CSRF token"
    );
    assert!(r.text().await.unwrap().contains("out of date"));
    let r = live(&lan_csrf, None).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "a POST without Origin");
    let r = live(&lan_csrf, Some("https://evil.example")).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "a POST from another origin"
    );
    // This page serves no sync (a refusal of its own), but the guard let it through.
    let r = live(&lan_csrf, Some(&s.base)).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    s.stop().await;
}

#[tokio::test]
async fn wrong_codes_are_refused_and_five_start_a_pause_that_doubles() {
    let dir = tempfile::tempdir().unwrap();
    let h = home(dir.path());
    let s = start(&h, "127.0.0.3:0").await;
    let c = client(&kept_cert(&h));
    let local = Local::sign_in(&c, &s).await;
    let code = local.new_code().await;
    let wrong = wrong_of(&code);
    for _ in 1..FREE_TRIES {
        let r = type_code(&c, &s, &wrong).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(r.headers().get(SET_COOKIE).is_none());
    }
    let r = type_code(&c, &s, &wrong).await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the fifth wrong try"
    );
    assert_eq!(r.headers()["retry-after"], "30");
    // Paused: even the right code is not checked.
    let r = type_code(&c, &s, &code).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.text().await.unwrap().contains("Please wait"));
    s.clock.fetch_add(FIRST_PAUSE_MS, Ordering::SeqCst);
    let r = type_code(&c, &s, &wrong).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "60", "the pause doubles");
    s.clock.fetch_add(FIRST_PAUSE_MS, Ordering::SeqCst);
    let r = type_code(&c, &s, &code).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "still paused");
    s.clock.fetch_add(FIRST_PAUSE_MS, Ordering::SeqCst);
    pair(&c, &s, &code).await;
    // A malformed code is not a try.
    let r = type_code(&c, &s, "12ab").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    s.stop().await;
}

#[tokio::test]
async fn a_code_older_than_ten_minutes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let h = home(dir.path());
    let s = start(&h, "127.0.0.4:0").await;
    let c = client(&kept_cert(&h));
    let local = Local::sign_in(&c, &s).await;
    let code = local.new_code().await;
    s.clock.fetch_add(CODE_LIFE_MS, Ordering::SeqCst);
    let r = type_code(&c, &s, &code).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get(SET_COOKIE).is_none());
    assert!(r.text().await.unwrap().contains("run out"));
    // A new code works.
    let code = local.new_code().await;
    s.clock.fetch_add(CODE_LIFE_MS - 1, Ordering::SeqCst);
    pair(&c, &s, &code).await;
    s.stop().await;
}

#[tokio::test]
async fn the_two_listeners_credentials_never_cross() {
    let dir = tempfile::tempdir().unwrap();
    let h = home(dir.path());
    let s = start(&h, "127.0.0.5:0").await;
    let c = client(&kept_cert(&h));
    let local = Local::sign_in(&c, &s).await;
    let token = s.url.split("?t=").nth(1).unwrap().to_string();
    let local_port = s.local.rsplit(':').next().unwrap().to_string();

    // The launch token, in the link or in its cookie, opens nothing on the LAN.
    let r = c
        .get(format!("{}/?t={token}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get(SET_COOKIE).is_none());
    for k in [
        local.cookie.clone(),
        format!("roundtable_{}={token}", s.lan.addr.port()),
        format!("__Host-roundtable-lan={token}"),
    ] {
        let (status, page) = lan_get(&c, &s, "/", Some(&k)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{k}");
        assert!(!page.contains(GROUP), "{k}");
    }

    // A paired phone's cookie opens nothing on the computer's own listener.
    let code = local.new_code().await;
    let cookie = pair(&c, &s, &code).await;
    let value = cookie.split_once('=').unwrap().1;
    for k in [cookie.clone(), format!("roundtable_{local_port}={value}")] {
        let r = c
            .get(format!("{}/", s.local))
            .header(COOKIE, &k)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{k}");
    }

    // What changes how this computer is reached is done on the computer only.
    for path in [
        "/devices/pair",
        "/devices/unpair",
        "/devices/sign-out",
        "/unlock",
        "/welcome",
    ] {
        let r = c
            .post(format!("{}{path}", s.base))
            .header(COOKIE, &cookie)
            .header(ORIGIN, &s.base)
            .body("")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    // `/pair` does not exist on the computer's listener.
    let (status, _) = local.get("/pair").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    s.stop().await;
}

#[tokio::test]
async fn only_the_lan_address_is_a_host() {
    let dir = tempfile::tempdir().unwrap();
    let h = home(dir.path());
    let s = start(&h, "127.0.0.6:0").await;
    let c = client(&kept_cert(&h));
    let local = Local::sign_in(&c, &s).await;
    let code = local.new_code().await;
    let port = s.lan.addr.port();
    for host in [
        format!("evil.example:{port}"),
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "127.0.0.6".to_string(),
        format!("127.0.0.6:{}", port.wrapping_add(1)),
    ] {
        let r = c
            .post(format!("{}/pair", s.base))
            .header(HOST, &host)
            .header(ORIGIN, format!("https://{host}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("code", &code)]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{host}");
        assert!(r.headers().get(SET_COOKIE).is_none(), "{host}");
    }
    // From another origin the form is refused, and the code is still there for the phone.
    let r = c
        .post(format!("{}/pair", s.base))
        .header(ORIGIN, "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("code", &code)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let cookie = pair(&c, &s, &code).await;
    let r = c
        .get(format!("{}/", s.base))
        .header(HOST, format!("evil.example:{port}"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "even a paired browser");
    s.stop().await;
}

#[tokio::test]
async fn a_signed_out_phone_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let h = home(dir.path());
    let s = start(&h, "127.0.0.7:0").await;
    let c = client(&kept_cert(&h));
    let local = Local::sign_in(&c, &s).await;
    let first = pair(&c, &s, &local.new_code().await).await;
    let second = pair(&c, &s, &local.new_code().await).await;
    assert_ne!(first, second);
    // The home keeps only hashes: no cookie's secret is on disk.
    let kept = Home::open(&h)
        .unwrap()
        .setting("web-lan-browsers")
        .unwrap()
        .unwrap();
    let kept = String::from_utf8(kept).unwrap();
    for k in [&first, &second] {
        let value = k.split_once('=').unwrap().1;
        assert!(!kept.contains(value));
        let hash = hex_sha256(&hex_decode(value));
        assert!(kept.contains(&hash), "{kept}");
    }
    let first_hash = hex_sha256(&hex_decode(first.split_once('=').unwrap().1));
    let (_, page) = local.get("/devices").await;
    assert_eq!(
        page.matches("Sign this one out</button>").count(),
        2,
        "{page}"
    );
    let (status, page) = local
        .post("/devices/unpair", &[("browser", &first_hash)])
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("signed out"), "{page}");
    let (status, page) = lan_get(&c, &s, "/", Some(&first)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Type the 6 numbers"), "{page}");
    let (status, _) = lan_get(&c, &s, "/", Some(&second)).await;
    assert_eq!(status, StatusCode::OK, "the other phone stays in");
    s.stop().await;
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex_sha256(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

#[tokio::test]
async fn plain_http_to_the_lan_port_gets_no_answer() {
    let dir = tempfile::tempdir().unwrap();
    let h = home(dir.path());
    let s = start(&h, "127.0.0.8:0").await;
    let addr: SocketAddr = s.lan.addr;
    let raw = tokio::task::spawn_blocking(move || {
        let mut t = TcpStream::connect(addr).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        // The listener may close the connection before it has all of it: no error matters here.
        let req = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let _ = t.write_all(req.as_bytes());
        let mut got = Vec::new();
        let _ = t.read_to_end(&mut got);
        got
    })
    .await
    .unwrap();
    assert!(
        !raw.starts_with(b"HTTP/"),
        "plain HTTP was answered: {:?}",
        String::from_utf8_lossy(&raw)
    );
    let c = client(&kept_cert(&h));
    let plain = c.get(format!("http://{addr}/pair")).send().await;
    assert!(plain.is_err(), "{plain:?}");
    // The same port over TLS answers.
    let (status, _) = lan_get(&c, &s, "/pair", None).await;
    assert_eq!(status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn the_certificate_is_private_and_kept_and_a_phone_stays_in_after_a_relaunch() {
    let dir = tempfile::tempdir().unwrap();
    let h = home(dir.path());
    let s = start(&h, "127.0.0.9:0").await;
    let path = h.join(CERT_FILE);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let cert = kept_cert(&h);
    assert_eq!(s.lan.fingerprint, hex_sha256(cert.as_ref()));
    assert!(s.lan.new_certificate);
    let bytes = std::fs::read(&path).unwrap();
    let c = client(&cert);
    let local = Local::sign_in(&c, &s).await;
    let cookie = pair(&c, &s, &local.new_code().await).await;
    let port = s.lan.addr.port();
    s.stop().await;

    let s = start(&h, &format!("127.0.0.9:{port}")).await;
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the same file");
    assert!(!s.lan.new_certificate);
    assert_eq!(s.lan.fingerprint, hex_sha256(cert.as_ref()));
    // The client pinned to the first launch's certificate still connects, and the phone is in.
    let (status, page) = lan_get(&c, &s, "/", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    s.stop().await;
}

#[tokio::test]
async fn the_lan_is_refused_without_a_home() {
    let dir = tempfile::tempdir().unwrap();
    let r = roundtable_web::launch(WebConfig {
        home_dir: dir.path().join("none"),
        passphrase: None,
        port: 0,
        sync: None,
        lan: Some(LanConfig {
            listen: Some("127.0.0.10:0".parse().unwrap()),
            clock: None,
        }),
    })
    .await;
    assert!(
        matches!(
            r,
            Err(roundtable_web::WebError::Lan(
                roundtable_web::lan::LanError::NoHome(_)
            ))
        ),
        "{r:?}"
    );
    assert!(!dir.path().join("none").join(CERT_FILE).exists());
}
