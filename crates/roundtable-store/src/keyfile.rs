//! The device secret key at rest: `device.key` in the home, mode 0600.
//!
//! With a passphrase the secret is sealed with XChaCha20-Poly1305 under a key derived by Argon2id;
//! without one it is stored plainly and the caller warns the member.
//! Argon2id runs at [`ARGON2`] (m = 64 MiB, t = 3, p = 1: RFC 9106's second recommended option, about
//! three times the memory-time of OWASP's minimum of m = 19 MiB, t = 2); the parameters are stored in
//! each file, so a file written with older ones still opens. Parameters read from a file are bounded
//! ([`MAX_ARGON2`]) before any memory is allocated. A new passphrase has at least
//! [`MIN_PASSPHRASE_CHARS`] characters.
//! **Invariant:** the file is replaced atomically (write to a temporary file, fsync, rename), so a crash
//! never leaves a device without its key.

use std::fs;
use std::io::Write;
use std::path::Path;

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use roundtable_core::DeviceKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::KeyError;

const AAD: &[u8] = b"roundtable/device-key/v1";
const ENC_AAD: &[u8] = b"roundtable/encryption-key/v1";

/// Argon2id cost for new key files: (memory KiB, passes, lanes). See `docs/security.md`.
pub const ARGON2: (u32, u32, u32) = (64 * 1024, 3, 1);

/// The largest Argon2id cost a key file may ask for: (1 GiB, 16 passes, 8 lanes). A damaged or
/// hostile file can never make the device allocate more.
pub const MAX_ARGON2: (u32, u32, u32) = (1024 * 1024, 16, 8);

/// The shortest passphrase accepted for a new key, in characters.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

/// Refuses a new passphrase shorter than [`MIN_PASSPHRASE_CHARS`].
pub fn check_new_passphrase(pass: &str) -> Result<(), KeyError> {
    if pass.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(KeyError::PassphraseTooShort {
            min: MIN_PASSPHRASE_CHARS,
        });
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    version: u32,
    device_id: String,
    /// "none" or "argon2id-xchacha20poly1305".
    protection: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    salt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ciphertext: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    argon2: Option<(u32, u32, u32)>,
}

fn kdf(
    pass: &str,
    salt: &[u8],
    (m, t, p): (u32, u32, u32),
) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    if m > MAX_ARGON2.0 || t > MAX_ARGON2.1 || p > MAX_ARGON2.2 {
        return Err(KeyError::Damaged(
            "the device key file asks for more work than any Roundtable device uses: it is damaged"
                .into(),
        ));
    }
    let params = Params::new(m, t, p, Some(32))
        .map_err(|e| KeyError::Damaged(format!("bad key settings: {e}")))?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(pass.as_bytes(), salt, out.as_mut())
        .map_err(|e| KeyError::Damaged(format!("could not derive the key: {e}")))?;
    Ok(out)
}

fn random<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(b)
}

/// Writes the key file. Returns whether it is protected by a passphrase.
pub fn write(path: &Path, key: &DeviceKey, passphrase: Option<&str>) -> Result<bool, KeyError> {
    let file = seal_secret(
        key.device_id().to_string(),
        &key.secret_bytes(),
        passphrase,
        AAD,
    )?;
    write_file(path, &file)?;
    Ok(passphrase.is_some())
}

/// Writes the device's encryption secret (for sealed threads), protected like the device key.
pub fn write_enc(path: &Path, secret: &[u8; 32], passphrase: Option<&str>) -> Result<(), KeyError> {
    let file = seal_secret("encryption".into(), secret, passphrase, ENC_AAD)?;
    write_file(path, &file)
}

/// Reads the device's encryption secret.
pub fn read_enc(path: &Path, passphrase: Option<&str>) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    open_secret(&read_file(path)?, passphrase, ENC_AAD)
}

fn seal_secret(
    label: String,
    secret: &[u8; 32],
    passphrase: Option<&str>,
    aad: &[u8],
) -> Result<KeyFile, KeyError> {
    seal_with_cost(label, secret, passphrase, aad, ARGON2)
}

fn seal_with_cost(
    label: String,
    secret: &[u8; 32],
    passphrase: Option<&str>,
    aad: &[u8],
    cost: (u32, u32, u32),
) -> Result<KeyFile, KeyError> {
    let device_id = label;
    Ok(match passphrase {
        None => KeyFile {
            version: 1,
            device_id,
            protection: "none".into(),
            secret: Some(hex::encode(secret)),
            salt: None,
            nonce: None,
            ciphertext: None,
            argon2: None,
        },
        Some(pass) => {
            check_new_passphrase(pass)?;
            let salt: [u8; 16] = random()?;
            let nonce: [u8; 24] = random()?;
            let k = kdf(pass, &salt, cost)?;
            let cipher = XChaCha20Poly1305::new(&(*k).into());
            let ct = cipher
                .encrypt(
                    &XNonce::from(nonce),
                    Payload {
                        msg: secret.as_slice(),
                        aad,
                    },
                )
                .map_err(|_| KeyError::Damaged("could not encrypt the key".into()))?;
            KeyFile {
                version: 1,
                device_id,
                protection: "argon2id-xchacha20poly1305".into(),
                secret: None,
                salt: Some(hex::encode(salt)),
                nonce: Some(hex::encode(nonce)),
                ciphertext: Some(hex::encode(ct)),
                argon2: Some(cost),
            }
        }
    })
}

fn write_file(path: &Path, file: &KeyFile) -> Result<(), KeyError> {
    let text = serde_json::to_vec_pretty(file).map_err(|e| KeyError::Damaged(e.to_string()))?;
    let tmp = path.with_extension("key.tmp");
    {
        let mut f = open_private(&tmp)?;
        f.write_all(&text)
            .map_err(KeyError::io("writing the device key"))?;
        f.sync_all()
            .map_err(KeyError::io("writing the device key"))?;
    }
    fs::rename(&tmp, path).map_err(KeyError::io("saving the device key"))?;
    Ok(())
}

#[cfg(unix)]
fn open_private(path: &Path) -> Result<fs::File, KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(KeyError::io("creating the device key file"))
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> Result<fs::File, KeyError> {
    fs::File::create(path).map_err(KeyError::io("creating the device key file"))
}

/// Whether the key file needs a passphrase.
pub fn is_protected(path: &Path) -> Result<bool, KeyError> {
    Ok(read_file(path)?.protection != "none")
}

fn read_file(path: &Path) -> Result<KeyFile, KeyError> {
    let text = fs::read(path).map_err(KeyError::io("reading the device key"))?;
    decode(&text)
}

/// The largest key file read: a real one is under 1 KiB.
const MAX_FILE: usize = 64 * 1024;

/// Decodes a key file's bytes and checks its shape (never its passphrase): the protection is known,
/// the fields it needs are there with the right lengths, and the Argon2id cost is within
/// [`MAX_ARGON2`].
fn decode(text: &[u8]) -> Result<KeyFile, KeyError> {
    let damaged = |what: &str| KeyError::Damaged(format!("the device key file is damaged: {what}"));
    if text.len() > MAX_FILE {
        return Err(damaged("it is far too long"));
    }
    let f: KeyFile = serde_json::from_slice(text).map_err(|e| damaged(&e.to_string()))?;
    let hex_len = |s: &Option<String>, n: usize, what: &str| -> Result<(), KeyError> {
        match s.as_deref().map(hex::decode) {
            Some(Ok(b)) if b.len() == n => Ok(()),
            Some(Ok(_)) => Err(damaged(&format!("its {what} has the wrong length"))),
            Some(Err(_)) => Err(damaged(&format!("its {what} is not hex"))),
            None => Err(damaged(&format!("it has no {what}"))),
        }
    };
    match f.protection.as_str() {
        "none" => hex_len(&f.secret, 32, "secret")?,
        "argon2id-xchacha20poly1305" => {
            hex_len(&f.salt, 16, "salt")?;
            hex_len(&f.nonce, 24, "nonce")?;
            // 32 bytes of secret and the 16-byte tag.
            hex_len(&f.ciphertext, 48, "ciphertext")?;
            let (m, t, p) = f.argon2.ok_or_else(|| damaged("it has no key settings"))?;
            if m > MAX_ARGON2.0 || t > MAX_ARGON2.1 || p > MAX_ARGON2.2 {
                return Err(damaged(
                    "its key settings ask for more work than any device uses",
                ));
            }
            Params::new(m, t, p, Some(32))
                .map_err(|e| damaged(&format!("its key settings are not usable ({e})")))?;
        }
        other => return Err(damaged(&format!("unknown key protection '{other}'"))),
    }
    Ok(f)
}

/// The public device id a key file names, readable without its passphrase.
pub fn device_id(path: &Path) -> Result<String, KeyError> {
    Ok(read_file(path)?.device_id)
}

/// For fuzzing: decodes `data` as a key file and, when it is a valid one with a small cost,
/// tries to open it with a wrong passphrase. Never panics.
pub fn fuzz_decode(data: &[u8]) {
    if let Ok(f) = decode(data) {
        let cheap = f.argon2.is_none_or(|(m, t, p)| m <= 64 && t <= 1 && p <= 1);
        if cheap {
            let _ = open_secret(&f, Some("not the passphrase"), AAD);
            let _ = open_secret(&f, None, AAD);
        }
    }
}

/// Reads the key file, unsealing it with `passphrase` when it is protected.
pub fn read(path: &Path, passphrase: Option<&str>) -> Result<DeviceKey, KeyError> {
    let f = read_file(path)?;
    let secret = open_secret(&f, passphrase, AAD)?;
    let key = DeviceKey::from_secret(&secret);
    if key.device_id().to_string() != f.device_id {
        return Err(KeyError::Damaged(
            "the device key does not match its device id".into(),
        ));
    }
    Ok(key)
}

fn open_secret(
    f: &KeyFile,
    passphrase: Option<&str>,
    aad: &[u8],
) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let hex32 = |s: &Option<String>, what: &str| -> Result<Vec<u8>, KeyError> {
        let s = s
            .as_deref()
            .ok_or_else(|| KeyError::Damaged(format!("the device key file has no {what}")))?;
        hex::decode(s)
            .map_err(|_| KeyError::Damaged(format!("the device key file's {what} is damaged")))
    };
    let secret: Zeroizing<[u8; 32]> = match f.protection.as_str() {
        "none" => Zeroizing::new(
            hex32(&f.secret, "secret")?
                .try_into()
                .map_err(|_| KeyError::Damaged("the device key has the wrong length".into()))?,
        ),
        "argon2id-xchacha20poly1305" => {
            let pass = passphrase.ok_or(KeyError::PassphraseNeeded)?;
            let salt = hex32(&f.salt, "salt")?;
            let nonce: [u8; 24] = hex32(&f.nonce, "nonce")?
                .try_into()
                .map_err(|_| KeyError::Damaged("the device key file's nonce is damaged".into()))?;
            let ct = hex32(&f.ciphertext, "ciphertext")?;
            let cost = f.argon2.ok_or_else(|| {
                KeyError::Damaged("the device key file has no key settings".into())
            })?;
            let k = kdf(pass, &salt, cost)?;
            let cipher = XChaCha20Poly1305::new(&(*k).into());
            let plain = Zeroizing::new(
                cipher
                    .decrypt(&XNonce::from(nonce), Payload { msg: &ct, aad })
                    .map_err(|_| KeyError::WrongPassphrase)?,
            );
            Zeroizing::new(
                plain
                    .as_slice()
                    .try_into()
                    .map_err(|_| KeyError::Damaged("the device key has the wrong length".into()))?,
            )
        }
        other => {
            return Err(KeyError::Damaged(format!(
                "unknown key protection '{other}'"
            )));
        }
    };
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key file written before this version (Argon2id at OWASP's minimum, m = 19 MiB, t = 2) still
    /// opens: its parameters are read from the file.
    #[test]
    fn a_key_file_with_the_old_parameters_still_opens() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("device.key");
        let key = DeviceKey::from_secret(&[9; 32]);
        let old = (19 * 1024, 2, 1);
        let f = seal_with_cost(
            key.device_id().to_string(),
            &key.secret_bytes(),
            Some("correct horse battery"),
            AAD,
            old,
        )
        .unwrap();
        write_file(&path, &f).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("19456"),
            "the old cost is in the file: {text}"
        );
        let back = read(&path, Some("correct horse battery")).unwrap();
        assert_eq!(back.device_id(), key.device_id());
        assert!(matches!(
            read(&path, Some("correct horse battery!")),
            Err(KeyError::WrongPassphrase)
        ));
        // A new file uses the new cost.
        write(&path, &key, Some("correct horse battery")).unwrap();
        let f: KeyFile = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(f.argon2, Some(ARGON2));
        assert_eq!(ARGON2, (65536, 3, 1));
    }

    #[test]
    fn short_passphrases_are_refused_before_anything_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("device.key");
        let key = DeviceKey::from_secret(&[9; 32]);
        for short in ["", "x", "elevenchars", "ünïcödé_10"] {
            assert!(
                matches!(
                    write(&path, &key, Some(short)),
                    Err(KeyError::PassphraseTooShort { min: 12 })
                ),
                "{short:?} is refused"
            );
            assert!(!path.exists());
        }
        // Twelve characters, however many bytes.
        write(&path, &key, Some("ünïcödé_1234")).unwrap();
        assert!(path.exists());
    }

    #[test]
    fn a_hostile_cost_is_refused_before_argon2_runs() {
        let f = br#"{"version":1,"device_id":"x","protection":"argon2id-xchacha20poly1305","salt":"00000000000000000000000000000000","nonce":"010101010101010101010101010101010101010101010101","ciphertext":"020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202","argon2":[4294967295,1,1]}"#;
        let e = decode(f).err().expect("refused");
        assert!(e.to_string().contains("damaged"), "{e}");
    }

    /// The cost of one guess at the new parameters, on this machine (for `docs/security.md`).
    #[test]
    fn cost_of_one_guess_is_measured() {
        let t = std::time::Instant::now();
        kdf("correct horse battery", &[0; 16], ARGON2).unwrap();
        let new = t.elapsed();
        let t = std::time::Instant::now();
        kdf("correct horse battery", &[0; 16], (19 * 1024, 2, 1)).unwrap();
        let old = t.elapsed();
        eprintln!("argon2id one guess: m=64 MiB t=3 p=1: {new:?}; m=19 MiB t=2 p=1: {old:?}");
        assert!(new > old, "the new cost is higher than the old");
    }
}
