//! A full disk during commits: a clear error, and nothing acknowledged is lost.
//!
//! The home lives on a small tmpfs the test mounts itself (root is needed, as in CI; the test fails
//! loudly, never silently passes, when it cannot mount). Writes go on until the file system refuses
//! them; then it is made larger, the home is reopened, and every acknowledged entry must be there.

use std::path::{Path, PathBuf};
use std::process::Command;

use roundtable_core::{Body, EntryId, Rule};
use roundtable_store::{Home, StoreError};

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount(8): this test needs util-linux's mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }

    fn grow(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .output()
            .expect("run mount(8)");
        assert!(
            out.status.success(),
            "remount: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn is_space_error(e: &StoreError) -> bool {
    let text = e.to_string();
    text.contains("No space left") || text.contains("disk is full")
}

#[test]
fn a_full_disk_refuses_writes_clearly_and_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let disk = Tmpfs::mount(&tmp.path().join("disk"), "1m");
    let dir = disk.0.join("home");
    let (home, key) = Home::init(&dir, "Ana", None).expect("a home fits in 1 MiB");
    let mut g = home
        .create_group(&key, "Board", Rule::Consent, 1, "Ana", "", 0)
        .expect("group");
    let gid = g.id();
    let thread = home
        .append(&mut g, &key, Body::Thread { title: "t".into() }, 1)
        .expect("thread");
    let mut acked: Vec<EntryId> = vec![gid, thread];
    let text = "A long message to fill the disk. ".repeat(30);
    let mut failure = None;
    for i in 0..20_000 {
        match home.append(
            &mut g,
            &key,
            Body::Message {
                thread,
                text: format!("{i}: {text}"),
            },
            i + 2,
        ) {
            Ok(id) => acked.push(id),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let e = failure.expect("the 1 MiB disk never filled");
    assert!(
        is_space_error(&e),
        "the error should say the disk is full: {e}"
    );
    assert!(acked.len() > 10, "only {} entries fitted", acked.len());
    // Memory is never ahead of the disk: what the open record holds was acknowledged.
    for id in &acked {
        assert!(g.record.contains(id));
    }
    // A second attempt while still full fails the same way and changes nothing.
    let again = home.append(
        &mut g,
        &key,
        Body::Message {
            thread,
            text: text.clone(),
        },
        99_999,
    );
    assert!(again.is_err_and(|e| is_space_error(&e)));
    drop(g);
    drop(home);

    disk.grow("16m");
    let home = Home::open(&dir).expect("the home opens after the disk filled");
    let mut g = home.open_group(&gid).expect("the group opens");
    for id in &acked {
        assert!(g.record.contains(id), "acknowledged entry {id} was lost");
    }
    assert_eq!(
        g.record.len(),
        acked.len(),
        "no unacknowledged entry appeared"
    );
    let more = home
        .append(
            &mut g,
            &key,
            Body::Message {
                thread,
                text: "written after space was freed".into(),
            },
            100_000,
        )
        .expect("writes work again once there is space");
    drop(g);
    drop(home);
    let home = Home::open(&dir).expect("reopen");
    assert!(home.open_group(&gid).expect("group").record.contains(&more));
}

#[test]
fn an_import_that_fills_the_disk_keeps_every_committed_batch() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The entries to import, made on an ordinary disk.
    let (src, key) = Home::init(&tmp.path().join("src"), "Ana", None).expect("source home");
    let mut sg = src
        .create_group(&key, "Board", Rule::Consent, 1, "Ana", "", 0)
        .expect("group");
    let gid = sg.id();
    let thread = src
        .append(&mut sg, &key, Body::Thread { title: "t".into() }, 1)
        .expect("thread");
    let text = "Imported words to fill a small disk. ".repeat(30);
    let mut all = vec![];
    for i in 0..4_000 {
        let (_, e) = sg
            .record
            .author(
                &key,
                Body::Message {
                    thread,
                    text: format!("{i}: {text}"),
                },
                i + 2,
            )
            .expect("author");
        all.push(e);
    }
    let mut entries: Vec<_> = src
        .entries(&gid)
        .expect("entries")
        .into_iter()
        .map(|s| s.entry)
        .collect();
    entries.extend(all);

    let disk = Tmpfs::mount(&tmp.path().join("disk"), "4m");
    let dir = disk.0.join("home");
    let (home, _) = Home::init(&dir, "Ben", None).expect("home");
    let mut g = home.open_or_new_group(&gid).expect("group");
    let e = home
        .ingest(&mut g, entries.clone())
        .expect_err("4,000 entries of 1 KiB do not fit in 4 MiB");
    assert!(is_space_error(&e), "{e}");
    // Batches of 1,000 commit one by one: the first ones fitted, and memory holds just those.
    let held = g.record.len();
    assert!(
        held >= 1_000 && held.is_multiple_of(1_000),
        "held {held} entries after the failed import"
    );
    drop(g);
    drop(home);

    disk.grow("64m");
    let home = Home::open(&dir).expect("opens after the disk filled");
    let mut g = home.open_or_new_group(&gid).expect("group");
    assert_eq!(
        g.record.len(),
        held,
        "what the import had committed before the disk filled is all there, and only that"
    );
    let out = home.ingest(&mut g, entries.clone()).expect("import again");
    assert_eq!(out.rejected.len(), 0);
    assert_eq!(g.record.len(), entries.len());
}
