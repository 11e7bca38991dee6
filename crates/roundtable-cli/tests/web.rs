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
