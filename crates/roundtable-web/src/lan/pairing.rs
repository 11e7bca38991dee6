//! Letting a phone or tablet in: the one-time code shown on the computer, and the browsers let in.
//!
//! **Invariants:**
//! - One code at a time, 6 digits from the operating system's generator, valid [`CODE_LIFE_MS`],
//!   used at most once (taken on the first right try). Making a new code replaces the old one.
//! - After [`FREE_TRIES`] wrong tries every try is refused, unchecked, for a pause that starts at
//!   [`FIRST_PAUSE_MS`] and doubles with each further wrong try (at most [`MAX_PAUSE_MS`]). The count
//!   is for the listener, not per address (an attacker can change address). A right try or a new
//!   code starts the count again.
//! - A browser let in holds a random 32-byte secret in its cookie; the home keeps only the
//!   secret's SHA-256 (`web-lan-browsers` in the home's settings, committed before the cookie is
//!   given), with a label. Signing a browser out removes its hash, so its cookie opens nothing.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use roundtable_store::Home;
use sha2::{Digest, Sha256};

use super::LanError;
use crate::security::same;

/// A clock in milliseconds since the Unix epoch (injectable: tests move it on).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// How long a code works: 10 minutes.
pub const CODE_LIFE_MS: i64 = 10 * 60 * 1000;
/// Wrong tries allowed before the pause.
pub const FREE_TRIES: u32 = 5;
/// The first pause, after the fifth wrong try: 30 seconds.
pub const FIRST_PAUSE_MS: i64 = 30_000;
/// The longest pause: one hour.
pub const MAX_PAUSE_MS: i64 = 3_600_000;
/// How many browsers may be let in at once (sign one out to let another in).
pub const MAX_BROWSERS: usize = 32;
/// The home setting that keeps the browsers let in.
const BROWSERS_SETTING: &str = "web-lan-browsers";

struct Code {
    digits: String,
    made_ms: i64,
}

#[derive(Default)]
struct Tries {
    code: Option<Code>,
    wrong: u32,
    paused_until_ms: i64,
}

/// What a typed code did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Try {
    /// It was the code; it is used up now.
    Right,
    /// It was not the code. `pause_ms` is the pause this try started, if any.
    Wrong { pause_ms: Option<i64> },
    /// Tries are paused: nothing was checked.
    Paused { wait_ms: i64 },
    /// The code has run out (older than [`CODE_LIFE_MS`]).
    Expired,
    /// No code is waiting (none made, or it was used).
    NoCode,
}

/// The code and the count of wrong tries.
pub(crate) struct Pairing {
    clock: Clock,
    tries: Mutex<Tries>,
}

/// A new code and when it runs out.
pub(crate) struct NewCode {
    pub(crate) digits: String,
    pub(crate) until_ms: i64,
}

fn random_bytes<const N: usize>() -> Result<[u8; N], LanError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| LanError::Random(e.to_string()))?;
    Ok(b)
}

/// Six uniformly random digits (rejection sampling: no digit more likely than another).
fn six_digits() -> Result<String, LanError> {
    const LIMIT: u32 = u32::MAX - (u32::MAX % 1_000_000);
    loop {
        let n = u32::from_le_bytes(random_bytes::<4>()?);
        if n < LIMIT {
            return Ok(format!("{:06}", n % 1_000_000));
        }
    }
}

impl Pairing {
    pub(crate) fn new(clock: Clock) -> Pairing {
        Pairing {
            clock,
            tries: Mutex::new(Tries::default()),
        }
    }

    pub(crate) fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Makes a new code (replacing any), and starts the count of wrong tries again.
    pub(crate) fn new_code(&self) -> Result<NewCode, LanError> {
        let digits = six_digits()?;
        let now = self.now();
        let mut t = self.tries.lock().map_err(|_| LanError::Poisoned)?;
        *t = Tries {
            code: Some(Code {
                digits: digits.clone(),
                made_ms: now,
            }),
            wrong: 0,
            paused_until_ms: 0,
        };
        Ok(NewCode {
            digits,
            until_ms: now + CODE_LIFE_MS,
        })
    }

    /// Checks a typed code (already reduced to its digits).
    pub(crate) fn try_code(&self, typed: &str) -> Try {
        let now = self.now();
        let Ok(mut t) = self.tries.lock() else {
            return Try::NoCode;
        };
        if now < t.paused_until_ms {
            return Try::Paused {
                wait_ms: t.paused_until_ms - now,
            };
        }
        let Some(code) = &t.code else {
            return Try::NoCode;
        };
        if now - code.made_ms >= CODE_LIFE_MS {
            t.code = None;
            return Try::Expired;
        }
        if same(typed, &code.digits) {
            *t = Tries::default();
            return Try::Right;
        }
        t.wrong += 1;
        let pause_ms = (t.wrong >= FREE_TRIES).then(|| {
            let doublings = (t.wrong - FREE_TRIES).min(20);
            (FIRST_PAUSE_MS << doublings).min(MAX_PAUSE_MS)
        });
        if let Some(p) = pause_ms {
            t.paused_until_ms = now + p;
        }
        Try::Wrong { pause_ms }
    }
}

/// A browser let in, as the home keeps it: never the secret, only its hash.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Paired {
    /// Hex SHA-256 of the cookie's 32 secret bytes; also the browser's id on the Devices page.
    pub(crate) hash: String,
    /// The browser's User-Agent in short ("Chrome on Android").
    pub(crate) label: String,
    /// When it was let in (ms since the epoch).
    pub(crate) paired_ms: i64,
}

/// The browsers let in: read from the home at launch, written through on every change.
pub(crate) struct Browsers {
    home_dir: PathBuf,
    list: RwLock<Vec<Paired>>,
    /// Serialises changes, so two at once cannot lose one.
    change: tokio::sync::Mutex<()>,
}

/// The hash kept for a cookie value: `None` unless it is 64 hex characters (32 bytes).
fn hash_of(cookie: &str) -> Option<String> {
    let raw = hex::decode(cookie).ok()?;
    (raw.len() == 32).then(|| hex::encode(Sha256::digest(&raw)))
}

impl Browsers {
    /// Reads the list kept in the home (empty when there is none, or it cannot be read).
    pub(crate) fn load(home: &Home) -> Browsers {
        let list = home
            .setting(BROWSERS_SETTING)
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice::<Vec<Paired>>(&v).ok())
            .unwrap_or_default();
        Browsers {
            home_dir: home.dir().to_path_buf(),
            list: RwLock::new(list),
            change: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether this cookie value is a browser let in (and not signed out).
    pub(crate) fn knows(&self, cookie: &str) -> bool {
        let Some(h) = hash_of(cookie) else {
            return false;
        };
        self.list
            .read()
            .map(|l| l.iter().any(|p| same(&p.hash, &h)))
            .unwrap_or(false)
    }

    /// The browsers let in, newest first.
    pub(crate) fn list(&self) -> Vec<Paired> {
        let mut l = self.list.read().map(|l| l.clone()).unwrap_or_default();
        l.sort_by_key(|p| std::cmp::Reverse(p.paired_ms));
        l
    }

    async fn save(&self, next: Vec<Paired>) -> Result<(), LanError> {
        let dir = self.home_dir.clone();
        let bytes = serde_json::to_vec(&next).map_err(|e| LanError::Save(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let home = Home::open(&dir).map_err(|e| LanError::Save(e.to_string()))?;
            home.set_setting(BROWSERS_SETTING, &bytes)
                .map_err(|e| LanError::Save(e.to_string()))
        })
        .await
        .map_err(|e| LanError::Save(e.to_string()))??;
        let mut l = self.list.write().map_err(|_| LanError::Poisoned)?;
        *l = next;
        Ok(())
    }

    /// Lets a browser in: returns its cookie's secret (hex), once the hash is kept in the home.
    pub(crate) async fn add(&self, label: String, now: i64) -> Result<String, LanError> {
        let _one = self.change.lock().await;
        let mut next = self.list();
        if next.len() >= MAX_BROWSERS {
            return Err(LanError::TooManyBrowsers);
        }
        let secret = random_bytes::<32>()?;
        next.push(Paired {
            hash: hex::encode(Sha256::digest(secret)),
            label,
            paired_ms: now,
        });
        self.save(next).await?;
        Ok(hex::encode(secret))
    }

    /// Signs a browser out (by its hash). Returns whether one was.
    pub(crate) async fn remove(&self, hash: &str) -> Result<bool, LanError> {
        let _one = self.change.lock().await;
        let before = self.list();
        let next: Vec<Paired> = before
            .iter()
            .filter(|p| !same(&p.hash, hash))
            .cloned()
            .collect();
        if next.len() == before.len() {
            return Ok(false);
        }
        self.save(next).await?;
        Ok(true)
    }
}

/// A User-Agent in short, for the Devices page: "Chrome on Android", "Safari on an iPad".
pub(crate) fn short_agent(ua: &str) -> String {
    let has = |s: &str| ua.contains(s);
    let browser = if has("Edg/") || has("EdgA/") || has("EdgiOS/") {
        "Edge"
    } else if has("OPR/") {
        "Opera"
    } else if has("SamsungBrowser/") {
        "Samsung Internet"
    } else if has("Firefox/") || has("FxiOS/") {
        "Firefox"
    } else if has("Chrome/") || has("CriOS/") || has("Chromium/") {
        "Chrome"
    } else if has("Safari/") {
        "Safari"
    } else {
        "A browser"
    };
    let system = if has("iPad") {
        " on an iPad"
    } else if has("iPhone") {
        " on an iPhone"
    } else if has("Android") {
        " on Android"
    } else if has("CrOS") {
        " on a Chromebook"
    } else if has("Windows") {
        " on Windows"
    } else if has("Macintosh") || has("Mac OS X") {
        " on a Mac"
    } else if has("Linux") {
        " on Linux"
    } else {
        ""
    };
    format!("{browser}{system}")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;

    fn clock() -> (Arc<AtomicI64>, Clock) {
        let t = Arc::new(AtomicI64::new(1_000_000));
        let c = t.clone();
        (t, Arc::new(move || c.load(Ordering::SeqCst)))
    }

    #[test]
    fn five_wrong_tries_pause_and_each_further_one_doubles_the_pause() {
        let (t, c) = clock();
        let p = Pairing::new(c);
        let code = p.new_code().unwrap().digits;
        let wrong = if code == "000000" { "111111" } else { "000000" };
        for _ in 0..4 {
            assert_eq!(p.try_code(wrong), Try::Wrong { pause_ms: None });
        }
        assert_eq!(
            p.try_code(wrong),
            Try::Wrong {
                pause_ms: Some(FIRST_PAUSE_MS)
            }
        );
        assert!(matches!(p.try_code(&code), Try::Paused { .. }));
        t.fetch_add(FIRST_PAUSE_MS, Ordering::SeqCst);
        assert_eq!(
            p.try_code(wrong),
            Try::Wrong {
                pause_ms: Some(2 * FIRST_PAUSE_MS)
            }
        );
        t.fetch_add(2 * FIRST_PAUSE_MS - 1, Ordering::SeqCst);
        assert_eq!(p.try_code(&code), Try::Paused { wait_ms: 1 });
        t.fetch_add(1, Ordering::SeqCst);
        assert_eq!(p.try_code(&code), Try::Right);
        assert_eq!(p.try_code(&code), Try::NoCode, "a code works once");
    }

    #[test]
    fn a_code_runs_out_after_ten_minutes() {
        let (t, c) = clock();
        let p = Pairing::new(c);
        let code = p.new_code().unwrap().digits;
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        t.fetch_add(CODE_LIFE_MS, Ordering::SeqCst);
        assert_eq!(p.try_code(&code), Try::Expired);
    }

    #[test]
    fn user_agents_in_short() {
        let android = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36";
        assert_eq!(short_agent(android), "Chrome on Android");
        let ipad = "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
        assert_eq!(short_agent(ipad), "Safari on an iPad");
        assert_eq!(short_agent(""), "A browser");
    }

    #[test]
    fn only_a_32_byte_hex_secret_has_a_hash() {
        assert!(hash_of(&"ab".repeat(32)).is_some());
        assert!(hash_of("abc").is_none());
        assert!(hash_of(&"zz".repeat(32)).is_none());
    }
}
