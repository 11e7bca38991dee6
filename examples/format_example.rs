//! The worked example of `docs/format.md`: a group, a thread and one message, made with a fixed key
//! and fixed timestamps so that every byte is the same on every run.
//!
//! ```text
//! cargo run --example format_example                         # prints the example (pasted into docs/format.md)
//! cargo run --example format_example -- tests/data/format-example.bundle   # also writes the bundle
//! ```
//!
//! `tests/format_doc.rs` includes this file and checks that the document and the bundle file still
//! match what it produces, so neither can go stale.

use roundtable::core::body::Body;
use roundtable::core::bundle;
use roundtable::core::change::raw_change_hash;
use roundtable::core::entry::{DocRef, Entry, signing_message};
use roundtable::core::{DeviceKey, EntryId, GroupId, Record, Rule};

/// The secret key of the example device: 32 bytes of 0x01. Never use a fixed key for real.
pub const SECRET: [u8; 32] = [0x01; 32];
/// 2026-01-01T00:00:00Z in milliseconds since the Unix epoch: the genesis's timestamp.
pub const T0_MS: i64 = 1_767_225_600_000;

/// Everything the example makes.
pub struct Example {
    pub key: DeviceKey,
    pub group: GroupId,
    /// Genesis, thread, message, in causal order, each with its entry id.
    pub entries: Vec<(EntryId, Entry)>,
    /// The bundle of all three entries.
    pub bundle: Vec<u8>,
}

impl Example {
    /// The message entry, the one the document takes apart byte by byte.
    pub fn message(&self) -> &(EntryId, Entry) {
        &self.entries[2]
    }
}

/// Makes the example group: genesis, one thread, one message.
pub fn build() -> Example {
    let key = DeviceKey::from_secret(&SECRET);
    let (mut record, genesis) = Record::create(
        &key,
        "Example group",
        Rule::Consent,
        1,
        "Ana",
        "large print",
        T0_MS,
    )
    .expect("genesis");
    let group = record.group();
    let (thread, thread_entry) = record
        .author(
            &key,
            Body::Thread {
                title: "Housing".into(),
            },
            T0_MS + 60_000,
        )
        .expect("thread");
    let (message, message_entry) = record
        .author(
            &key,
            Body::Message {
                thread,
                text: "Hello".into(),
            },
            T0_MS + 120_000,
        )
        .expect("message");
    let entries = vec![
        (group, genesis),
        (thread, thread_entry),
        (message, message_entry),
    ];
    let bundle = bundle::encode(
        &group,
        &entries.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(),
    );
    Example {
        key,
        group,
        entries,
        bundle,
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lowercase hex, 32 bytes (64 characters) a line, each line indented by two spaces.
pub fn hex_block(bytes: &[u8]) -> String {
    let mut s = String::new();
    for chunk in bytes.chunks(32) {
        s.push_str("  ");
        s.push_str(&hex(chunk));
        s.push('\n');
    }
    s
}

/// The text `cargo run --example format_example` prints, pasted verbatim into `docs/format.md`.
pub fn report(ex: &Example) -> String {
    let (id, entry) = ex.message();
    let doc_id = entry.doc.doc_id(&ex.group);
    let msg = signing_message(&ex.group, &doc_id, id);
    let mut s = String::new();
    let mut section = |title: String, body: String| {
        s.push_str(&title);
        s.push('\n');
        s.push_str(&body);
    };
    section(
        "secret key (32 bytes of 0x01; the ed25519 seed)".into(),
        hex_block(&SECRET),
    );
    section(
        "public key = device id = Automerge actor id".into(),
        hex_block(ex.key.device_id().as_bytes()),
    );
    section(
        "group id = entry id of the genesis".into(),
        hex_block(ex.group.as_bytes()),
    );
    section(
        format!("message entry: change bytes ({} bytes)", entry.change.len()),
        hex_block(&entry.change),
    );
    section(
        "message entry: change hash = entry id = SHA-256(change[8..])".into(),
        hex_block(id.as_bytes()),
    );
    section(
        format!(
            "message entry: signed message ({} bytes: \"roundtable/entry/v1\" || group id || doc id || change hash)",
            msg.len()
        ),
        hex_block(&msg),
    );
    section(
        "message entry: signature (R || S)".into(),
        hex_block(&entry.signature),
    );
    section(
        format!(
            "message entry: encoded entry ({} bytes)",
            entry.encoded_len()
        ),
        hex_block(&entry.encode()),
    );
    section(
        format!(
            "bundle: genesis, thread, message ({} bytes)",
            ex.bundle.len()
        ),
        hex_block(&ex.bundle),
    );
    s
}

/// Where each part of the bundle lies, pasted verbatim into `docs/format.md`.
pub fn bundle_map(ex: &Example) -> String {
    let b = &ex.bundle;
    let mut s = String::from("  off  len  part                                value\n");
    let mut line = |at: usize, len: usize, part: &str, value: String| {
        s.push_str(&format!("{at:>5} {len:>4}  {part:<34}  {value}\n"));
    };
    line(0, 8, "magic \"RTBUNDLE\"", hex(&b[0..8]));
    line(8, 1, "version", hex(&b[8..9]));
    line(9, 32, "group id", hex(&b[9..41]));
    line(
        41,
        8,
        "count (u64le)",
        format!("{}  = {}", hex(&b[41..49]), ex.entries.len()),
    );
    let mut at = 49;
    for (i, (name, (id, e))) in ["genesis", "thread", "message"]
        .iter()
        .zip(&ex.entries)
        .enumerate()
    {
        let n = e.encoded_len();
        let part = format!("entry {i}: {name}, change {} bytes", e.change.len());
        line(at, n, &part, format!("id {id}"));
        at += n;
    }
    line(
        at,
        32,
        &format!("digest = SHA-256(bytes 0..{at})"),
        hex(&b[at..]),
    );
    s
}

/// A byte-by-byte reading of the message entry, pasted verbatim into `docs/format.md`.
pub fn breakdown(ex: &Example) -> String {
    let (_, entry) = ex.message();
    let bytes = entry.encode();
    let mut a = Annotator {
        b: &bytes,
        at: 0,
        out: String::new(),
    };
    a.out
        .push_str("  off  len  field                     bytes / value\n");
    let kind = a.raw(1, "doc_kind");
    a.note(&format!(
        "= {} (public document: no doc_id follows)",
        kind[0]
    ));
    a.raw(32, "signature R");
    a.raw(32, "signature S");
    let len = a.raw(4, "change_len (u32le)");
    let change_len = u32::from_le_bytes(len.try_into().unwrap());
    a.note(&format!("= {change_len}"));
    a.out.push_str(
        "                 -- the change chunk (the bytes that are hashed start at chunk type) --\n",
    );
    a.raw(4, "magic");
    a.raw(4, "checksum");
    a.note("= first 4 bytes of the change hash");
    a.raw(1, "chunk type");
    a.note("= 1 (change)");
    let body_len = a.uleb("body length (uLEB128)");
    a.note(&format!("= {body_len} bytes follow"));
    let deps = a.uleb("dependency count");
    a.note(&format!("= {deps}"));
    for i in 0..deps {
        a.raw(32, &format!("dependency {i}"));
    }
    let actor_len = a.uleb("actor length");
    a.note(&format!("= {actor_len}"));
    a.raw(actor_len as usize, "actor (= signer key)");
    let seq = a.uleb("seq");
    a.note(&format!("= {seq}"));
    let start = a.uleb("start_op");
    a.note(&format!("= {start}"));
    let time = a.sleb("time (sLEB128, ms)");
    a.note(&format!("= {time}"));
    let mlen = a.uleb("message length");
    if mlen == 0 {
        a.note("= 0 (no commit message)");
    } else {
        a.note(&format!("= {mlen}"));
        a.raw(mlen as usize, "message (UTF-8)");
    }
    let others = a.uleb("other actor count");
    a.note(&format!("= {others}"));
    for i in 0..others {
        let l = a.uleb(&format!("other actor {i} length"));
        a.raw(l as usize, &format!("other actor {i}"));
    }
    let ncols = a.uleb("column count");
    a.note(&format!("= {ncols}"));
    let mut total = 0u64;
    for _ in 0..ncols {
        let spec = a.uleb("column spec");
        a.note(&format!("= {spec}: {}", column_name(spec)));
        let l = a.uleb("  column length");
        a.note(&format!("= {l}"));
        total += l;
    }
    a.raw(total as usize, "column data");
    let rest = bytes.len() - a.at;
    if rest == 0 {
        a.out
            .push_str(&format!("{:>5}    0  (no extra bytes)\n", a.at));
    } else {
        a.raw(rest, "extra bytes");
    }
    a.out
}

fn column_name(spec: u64) -> &'static str {
    match spec {
        1 => "obj actor",
        2 => "obj counter",
        17 => "key actor",
        19 => "key counter",
        21 => "key string",
        52 => "insert",
        66 => "action",
        86 => "value metadata",
        87 => "value",
        112 => "pred group",
        113 => "pred actor",
        115 => "pred counter",
        148 => "expand",
        165 => "mark name",
        _ => "other",
    }
}

struct Annotator<'a> {
    b: &'a [u8],
    at: usize,
    out: String,
}

impl<'a> Annotator<'a> {
    /// Records `n` bytes as `field`; long runs continue on following lines.
    fn raw(&mut self, n: usize, field: &str) -> &'a [u8] {
        let s = &self.b[self.at..self.at + n];
        let mut chunks = s.chunks(32);
        let first = chunks.next().unwrap_or(&[]);
        self.out.push_str(&format!(
            "{:>5} {:>4}  {:<24}  {}\n",
            self.at,
            n,
            field,
            hex(first)
        ));
        for c in chunks {
            self.out.push_str(&format!("{:>38}{}\n", "", hex(c)));
        }
        self.at += n;
        s
    }

    /// Appends a note to the last line.
    fn note(&mut self, text: &str) {
        self.out.pop();
        self.out.push_str("  ");
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn leb_len(&self) -> usize {
        self.b[self.at..]
            .iter()
            .position(|x| x & 0x80 == 0)
            .unwrap()
            + 1
    }

    fn uleb(&mut self, field: &str) -> u64 {
        let n = self.leb_len();
        let s = self.raw(n, field);
        s.iter()
            .enumerate()
            .fold(0u64, |v, (i, x)| v | (u64::from(x & 0x7f) << (7 * i)))
    }

    fn sleb(&mut self, field: &str) -> i64 {
        let n = self.leb_len();
        let s = self.raw(n, field);
        let mut v: i64 = 0;
        for (i, x) in s.iter().enumerate() {
            v |= i64::from(x & 0x7f) << (7 * i);
        }
        let bits = 7 * n;
        if bits < 64 && s[n - 1] & 0x40 != 0 {
            v |= -1i64 << bits;
        }
        v
    }
}

#[allow(dead_code)]
fn main() {
    let ex = build();
    // The example's own consistency: every id is the hash of its raw bytes.
    for (id, e) in &ex.entries {
        assert_eq!(raw_change_hash(&e.change).expect("hash"), *id);
        assert_eq!(e.doc, DocRef::Public);
    }
    match std::env::args_os().nth(1) {
        Some(path) => {
            std::fs::write(&path, &ex.bundle).expect("write the bundle");
            println!(
                "wrote the {}-byte bundle to {}",
                ex.bundle.len(),
                path.to_string_lossy()
            );
        }
        None => {
            print!("{}", report(&ex));
            println!();
            print!("{}", bundle_map(&ex));
            println!();
            print!("{}", breakdown(&ex));
        }
    }
}
