//! `roundtable web`: prints `{"url"}` first, serves on 127.0.0.1 only, and refuses requests without
//! the launch token. (The pages themselves are tested in `crates/roundtable-web`.)

mod util;

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use util::{BIN, Home};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 GET; returns the status code and the whole response.
fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the web page");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read the response");
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, out)
}

#[test]
fn web_prints_its_url_first_and_needs_the_launch_token() {
    let (h, _g) = Home::with_group("Ana", "Board");
    let mut child = Command::new(BIN)
        .arg("--home")
        .arg(h.dir())
        .args(["web", "--port", "0", "--listen", "127.0.0.1:0", "--no-mdns"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start web");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("web prints its first line");
    let _guard = Killed(child);
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert!(
        v.get("lan_urls").is_none() && v.get("fingerprint").is_none(),
        "without --lan no LAN fields: {v}"
    );
    let url = v["url"].as_str().expect("url").to_string();
    let rest = url
        .strip_prefix("http://127.0.0.1:")
        .unwrap_or_else(|| panic!("bound to 127.0.0.1 only: {url}"));
    let (port, path) = rest.split_once('/').expect("a path");
    let port: u16 = port.parse().expect("a port");
    let token = path.strip_prefix("?t=").expect("the token in the link");
    assert_eq!(token.len(), 64);

    let (code, resp) = get(port, "/");
    assert_eq!(code, 403, "{resp}");
    assert!(resp.contains("default-src 'self'"), "{resp}");
    let (code, resp) = get(port, &format!("/?t={token}"));
    assert_eq!(code, 303, "{resp}");
    let cookie = resp
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .expect("the token is kept in a cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
}

#[test]
fn serve_with_web_gives_both_the_ticket_and_the_page() {
    let (h, _g) = Home::with_group("Ana", "Board");
    let mut child = Command::new(BIN)
        .arg("--home")
        .arg(h.dir())
        .args(["serve", "--listen", "127.0.0.1:0", "--no-mdns", "--web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start serve --web");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("serve prints its first line");
    let _guard = Killed(child);
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert!(
        v["ticket"].as_str().is_some_and(|t| t.starts_with("rt")),
        "{v}"
    );
    let url = v["url"].as_str().expect("the web page's link");
    let port: u16 = url
        .strip_prefix("http://127.0.0.1:")
        .and_then(|r| r.split_once('/'))
        .and_then(|(p, _)| p.parse().ok())
        .expect("a port on 127.0.0.1");
    let (code, resp) = get(port, "/help");
    assert_eq!(code, 403, "without the token: {resp}");
}

#[test]
fn web_lan_prints_its_links_and_the_certificates_fingerprint() {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use sha2::{Digest, Sha256};

    let (h, _g) = Home::with_group("Ana", "Board");
    let mut child = Command::new(BIN)
        .arg("--home")
        .arg(h.dir())
        .args(["web", "--port", "0", "--listen", "127.0.0.1:0", "--no-mdns"])
        // Loopback only, so no traffic leaves this machine.
        .args(["--lan", "--lan-listen", "127.0.0.11:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start web --lan");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("web prints its first line");
    let _guard = Killed(child);
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert!(
        v["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://127.0.0.1:")),
        "the link on this computer is kept: {v}"
    );
    let urls: Vec<&str> = v["lan_urls"]
        .as_array()
        .expect("lan_urls")
        .iter()
        .map(|u| u.as_str().expect("a link"))
        .collect();
    assert_eq!(urls.len(), 1, "{v}");
    let port: u16 = urls[0]
        .strip_prefix("https://127.0.0.11:")
        .and_then(|r| r.strip_suffix("/pair"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("https://127.0.0.11:PORT/pair: {v}"));
    assert_ne!(port, 0);
    let pem = std::fs::read(h.dir().join("web-lan.pem")).expect("the kept certificate");
    let cert = CertificateDer::pem_slice_iter(&pem)
        .next()
        .expect("a certificate")
        .expect("readable");
    let want: String = Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v["fingerprint"].as_str(), Some(want.as_str()), "{v}");
    // Plain HTTP to the LAN port gets no HTTP answer.
    let mut s = TcpStream::connect(("127.0.0.11", port)).expect("connect to the LAN port");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    // The listener may close the connection before it has all of it: no error matters here.
    let req = format!("GET /pair HTTP/1.1\r\nHost: 127.0.0.11:{port}\r\n\r\n");
    let _ = s.write_all(req.as_bytes());
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn web_lan_is_refused_before_init() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("--home")
        .arg(dir.path().join("none"))
        .args(["web", "--no-mdns", "--lan", "--lan-listen", "127.0.0.12:0"])
        .stdin(Stdio::null())
        .output()
        .expect("run web --lan");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty(), "nothing printed on stdout: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not set up yet"), "{err}");
    assert!(err.contains("roundtable init"), "{err}");
    assert!(!dir.path().join("none").exists(), "no home made: {err}");
}
