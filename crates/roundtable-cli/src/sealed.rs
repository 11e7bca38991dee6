//! Sealed threads on the command line: publishing this device's encryption key, the `thread`
//! subcommands for sealed threads, sealed posts, and what `show` may reveal to whom.

use roundtable_core::{Body, DeviceKey, EntryId, GroupId, MemberId, Record};
use roundtable_seal::{EncSecret, Keyring, SealError, thread};
use roundtable_store::{Group, Home, StoreError};
use serde_json::{Value, json};

use crate::{Cli, Ctx, Out, entry_out, now_ms, parse_id, passphrase, refuse};

/// The device's encryption secret.
pub fn enc_secret(home: &Home, pass: Option<&str>) -> anyhow::Result<EncSecret> {
    Ok(EncSecret::from_bytes(&*home.enc_secret(pass)?))
}

/// Publishes this device's encryption key in a signed profile entry, once, as soon as the device
/// holds a group it is an active member of. Until then nobody can make it a reader.
pub fn publish_profile(
    home: &Home,
    key: &DeviceKey,
    pass: Option<&str>,
    g: &mut Group,
) -> anyhow::Result<bool> {
    let me = key.device_id();
    if !g.record.active_devices().contains(&me) {
        return Ok(false);
    }
    let secret = enc_secret(home, pass)?;
    let public = secret.public()?;
    let mut wrote = false;
    if g.record.profile_key(&me) != Some(public) {
        home.append(g, key, Body::Profile { enc_key: public }, now_ms())?;
        wrote = true;
    }
    Ok(send_missing_keys(home, key, &secret, g)? || wrote)
}

/// Gives every reader of a sealed thread this device reads the keys they lack and this device
/// holds (a reader added at the same moment as a new key was made), so they can read what was
/// written under it. Runs wherever the profile is published: after an import, a sync, a write.
/// Returns whether an entry was written.
pub fn send_missing_keys(
    home: &Home,
    key: &DeviceKey,
    secret: &EncSecret,
    g: &mut Group,
) -> anyhow::Result<bool> {
    let mut keys = Keyring::new(key.device_id(), secret);
    let bodies = thread::all_missing_keys(&g.record, &mut keys)?;
    let mut wrote = false;
    for body in bodies {
        // Another reader's device may have sent it first; the rules then refuse this one.
        match home.append(g, key, body, now_ms()) {
            Ok(_) => wrote = true,
            Err(StoreError::Refused(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(wrote)
}

/// [`publish_profile`] for a group by id, after a sync or a join; a failure is only a note.
/// Returns whether a profile entry was written.
pub fn publish_after_sync(
    dir: &std::path::Path,
    key: &DeviceKey,
    pass: Option<&str>,
    group: &GroupId,
) -> bool {
    let r = Home::open(dir)
        .map_err(anyhow::Error::new)
        .and_then(|home| {
            let mut g = home.open_group(group)?;
            publish_profile(&home, key, pass, &mut g)
        });
    match r {
        Ok(wrote) => wrote,
        Err(e) => {
            eprintln!(
                "roundtable: note: could not publish this device's encryption key yet ({e:#})"
            );
            false
        }
    }
}

fn seal_refusal(e: SealError, record: &Record) -> anyhow::Error {
    match e {
        SealError::NoKey(m) => {
            let name = record
                .members()
                .into_iter()
                .find(|x| x.id == m)
                .map(|x| x.name)
                .unwrap_or_else(|| m.to_string());
            refuse(format!(
                "not written: {name} cannot be made a reader yet, because their device has not opened the group since they were added (it publishes their encryption key then). Ask {name} to sync once, then try again"
            ))
        }
        SealError::Random(_) => anyhow::Error::new(e),
        other => refuse(format!("not written: {other}")),
    }
}

/// What the `thread` subcommands for sealed threads need to do.
pub enum Action<'a> {
    New {
        title: &'a str,
        readers: &'a [String],
        reason: &'a str,
    },
    AddReader {
        thread: &'a str,
        member: &'a str,
    },
    RemoveReader {
        thread: &'a str,
        member: &'a str,
    },
    Ask {
        thread: &'a str,
        why: &'a str,
    },
    Decline {
        thread: &'a str,
        member: &'a str,
        reason: &'a str,
    },
}

fn member_name(record: &Record, m: &MemberId) -> String {
    record
        .members()
        .into_iter()
        .find(|x| x.id == *m)
        .map(|x| x.name)
        .unwrap_or_else(|| format!("member {}", &m.to_string()[..8]))
}

fn sealed_or_refuse(record: &Record, t: &EntryId) -> anyhow::Result<roundtable_core::SealedInfo> {
    record
        .sealed_thread(t)
        .ok_or_else(|| refuse(format!("there is no sealed thread {t} in this group")))
}

/// Runs a sealed-thread subcommand: builds the entry (or entries) and writes them.
pub fn run(ctx: &Ctx, cli: &Cli, action: Action) -> anyhow::Result<Out> {
    let pass = passphrase(cli)?;
    let key = ctx.key(cli)?;
    let me = key.device_id();
    let mut g = ctx.group(cli)?;
    publish_profile(&ctx.home, &key, pass.as_deref(), &mut g)?;
    let secret = enc_secret(&ctx.home, pass.as_deref())?;
    let mut keys = Keyring::new(me, &secret);
    let (out_key, body, words) = match action {
        Action::New {
            title,
            readers,
            reason,
        } => {
            let mut ids: Vec<MemberId> = readers
                .iter()
                .map(|r| parse_id(r))
                .collect::<anyhow::Result<_>>()?;
            ids.push(me);
            let body = thread::start(&g.record, title, reason, &ids)
                .map_err(|e| seal_refusal(e, &g.record))?;
            let mut names: Vec<String> = ids.iter().map(|m| member_name(&g.record, m)).collect();
            names.sort();
            names.dedup();
            (
                "thread_id",
                body,
                format!(
                    "Sealed thread \"{title}\" started. Only its readers can read what is written in it: {}.\nEveryone in the group can see its title, its readers and why it is sealed: \"{reason}\".",
                    names.join(", ")
                ),
            )
        }
        Action::AddReader { thread, member } => {
            let t: EntryId = parse_id(thread)?;
            let m: MemberId = parse_id(member)?;
            sealed_or_refuse(&g.record, &t)?;
            let body = thread::add_reader(&g.record, &mut keys, &t, &m)
                .map_err(|e| seal_refusal(e, &g.record))?;
            let name = member_name(&g.record, &m);
            (
                "entry_id",
                body,
                format!("{name} is now a reader, and can read everything written in the thread."),
            )
        }
        Action::RemoveReader { thread, member } => {
            let t: EntryId = parse_id(thread)?;
            let m: MemberId = parse_id(member)?;
            let info = sealed_or_refuse(&g.record, &t)?;
            if !info.state.readers.contains(&m) {
                return Err(refuse(
                    "not written: that member is not a reader of this thread",
                ));
            }
            let body =
                thread::rekey(&g.record, &t, Some(m)).map_err(|e| seal_refusal(e, &g.record))?;
            let name = member_name(&g.record, &m);
            (
                "entry_id",
                body,
                format!(
                    "{name} is no longer a reader. A new key is in use: they cannot read anything written from now on."
                ),
            )
        }
        Action::Ask { thread, why } => {
            let t: EntryId = parse_id(thread)?;
            sealed_or_refuse(&g.record, &t)?;
            (
                "entry_id",
                Body::Ask {
                    thread: t,
                    why: why.to_string(),
                },
                "Your request is shared. A reader can add you, or say why not.".to_string(),
            )
        }
        Action::Decline {
            thread,
            member,
            reason,
        } => {
            let t: EntryId = parse_id(thread)?;
            let m: MemberId = parse_id(member)?;
            sealed_or_refuse(&g.record, &t)?;
            let name = member_name(&g.record, &m);
            (
                "entry_id",
                Body::Decline {
                    thread: t,
                    member: m,
                    reason: reason.to_string(),
                },
                format!("Your answer and its reason are shared; {name} will see them."),
            )
        }
    };
    let id = ctx.append(&mut g, &key, body)?;
    let mut words = words;
    if let Some(note) = limits_note(&g.record, &id) {
        eprintln!("roundtable: note: {note}");
        words = format!("{words}\n{note}");
    }
    Ok(entry_out(out_key, id, words))
}

/// The limits of the sealed thread `entry` belongs to (or is), in words, once they are near.
fn limits_note(record: &Record, entry: &EntryId) -> Option<String> {
    let t = match record.entry(entry).map(|(_, m)| m.body.clone()) {
        Some(
            Body::ReaderAdd { thread, .. }
            | Body::Rekey { thread, .. }
            | Body::Sealed { thread, .. },
        ) => thread,
        _ => *entry,
    };
    thread::limits_note(&record.sealed_thread(&t)?.state)
}

/// `post` into a sealed thread: seals the message for the thread's readers. When a reader has gone
/// since the key was made, a new key is written first.
pub fn post(ctx: &Ctx, cli: &Cli, t: EntryId, text: &str) -> anyhow::Result<Out> {
    let pass = passphrase(cli)?;
    let key = ctx.key(cli)?;
    let me = key.device_id();
    let mut g = ctx.group(cli)?;
    publish_profile(&ctx.home, &key, pass.as_deref(), &mut g)?;
    let secret = enc_secret(&ctx.home, pass.as_deref())?;
    let mut keys = Keyring::new(me, &secret);
    let body = match thread::message(&g.record, &mut keys, &t, &me, text, now_ms()) {
        Err(SealError::NeedsRekey) => {
            let rk = thread::rekey(&g.record, &t, None).map_err(|e| seal_refusal(e, &g.record))?;
            ctx.append(&mut g, &key, rk)?;
            thread::message(&g.record, &mut keys, &t, &me, text, now_ms())
        }
        other => other,
    }
    .map_err(|e| seal_refusal(e, &g.record))?;
    let id = ctx.append(&mut g, &key, body)?;
    let readers = g
        .record
        .sealed_thread(&t)
        .map(|i| {
            i.state
                .readers
                .iter()
                .map(|m| member_name(&g.record, m))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let mut words = format!(
        "Your message is sealed: only the readers ({readers}) can read it. Everyone can see that a message was written. It cannot be deleted, only corrected."
    );
    if let Some(note) = limits_note(&g.record, &id) {
        eprintln!("roundtable: note: {note}");
        words = format!("{words}\n{note}");
    }
    Ok(entry_out("entry_id", id, words))
}

/// What `show` says about one sealed thread, for this device.
pub fn thread_json(
    record: &Record,
    t: &EntryId,
    keys: Option<&mut Keyring>,
    me: Option<MemberId>,
) -> Option<Value> {
    let info = record.sealed_thread(t)?;
    let (author, meta) = record.entry(t)?;
    let name = |m: &MemberId| member_name(record, m);
    let reader = me.is_some_and(|m| info.state.readers.contains(&m));
    let unlocked = keys.is_some();
    // A former reader still holds the keys of the epochs they were given: they see those messages.
    let view = keys.and_then(|k| thread::open(record, k, t).ok());
    let former = !reader && view.as_ref().is_some_and(|v| !v.messages.is_empty());
    let readable = reader && view.is_some();
    let messages: Vec<Value> = view
        .iter()
        .flat_map(|v| v.messages.iter())
        .map(|m| {
            json!({
                "entry_id": m.id.to_string(), "kind": "message",
                "author": {"member_id": m.author.to_string(), "name": name(&m.author)},
                "time_ms": m.time_ms, "text": m.text, "marks": [], "corrections": [], "understandings": [],
            })
        })
        .collect();
    let unreadable: Vec<Value> = view
        .iter()
        .filter(|_| reader)
        .flat_map(|v| v.unreadable.iter())
        .map(|(id, why)| json!({"entry_id": id.to_string(), "kind": why.kind(), "reason": why.to_string()}))
        .collect();
    let readers: Vec<String> = info.state.readers.iter().map(|m| m.to_string()).collect();
    let reader_names: Vec<String> = info.state.readers.iter().map(name).collect();
    let why_hidden = if readable {
        Value::Null
    } else if former {
        json!(format!(
            "You are no longer one of its readers: you see only what was written while you were. It is sealed because: {}",
            info.reason
        ))
    } else if reader && !unlocked {
        json!(
            "You are one of its readers: give your passphrase to read this sealed thread (with --passphrase-env VAR)."
        )
    } else if reader {
        json!(
            "You are one of its readers, but this device holds no key for its messages yet: a reader's device sends it on the next sync."
        )
    } else {
        json!(format!(
            "You are not one of its readers, so its messages are not shown to you. It is sealed because: {}",
            info.reason
        ))
    };
    Some(json!({
        "thread_id": t.to_string(),
        "kind": "thread",
        "title": info.title,
        "author": {"member_id": author.to_string(), "name": name(&author)},
        "time_ms": meta.time_ms,
        "sealed": true,
        "reason": info.reason,
        "readers": readers,
        "reader_names": reader_names,
        "entries": info.entries.len(),
        "readable": readable,
        "why_not_shown": why_hidden,
        "messages": messages,
        // Public to every member and auditor: who wrote each sealed message, and when.
        "sealed_entries": info.entries.iter().filter_map(|id| record.entry(id).map(|(a, m)| json!({
            "entry_id": id.to_string(),
            "author": {"member_id": a.to_string(), "name": name(&a)},
            "time_ms": m.time_ms,
        }))).collect::<Vec<_>>(),
        "reader_changes": reader_changes(record, t),
        "unreadable": unreadable,
        "asks": info.asks.iter().map(|(id, m, why)| json!({"entry_id": id.to_string(), "member_id": m.to_string(), "name": name(m), "why": why})).collect::<Vec<_>>(),
        "declines": info.declines.iter().map(|(id, by, m, reason)| json!({"entry_id": id.to_string(), "by": {"member_id": by.to_string(), "name": name(by)}, "member_id": m.to_string(), "name": name(m), "reason": reason})).collect::<Vec<_>>(),
        "marks": [], "corrections": [], "understandings": [],
    }))
}

/// Who added or removed which reader, and when a new key was made: public to everyone.
fn reader_changes(record: &Record, t: &EntryId) -> Vec<Value> {
    let name = |m: &MemberId| member_name(record, m);
    record
        .referrers(t)
        .iter()
        .filter_map(|id| record.entry(id).map(|(a, m)| (id, a, m)))
        .filter_map(|(id, a, m)| {
            let (change, member) = match &m.body {
                Body::ReaderAdd { member, .. } => ("added", Some(*member)),
                Body::Rekey {
                    removes: Some(r), ..
                } => ("removed", Some(*r)),
                Body::Rekey { removes: None, .. } => ("new_key", None),
                _ => return None,
            };
            Some(json!({
                "entry_id": id.to_string(), "change": change,
                "member": member.map(|x| json!({"member_id": x.to_string(), "name": name(&x)})),
                "by": {"member_id": a.to_string(), "name": name(&a)}, "time_ms": m.time_ms,
            }))
        })
        .collect()
}

/// The device's member id (read from the key file, no passphrase needed) and, when it can unlock
/// it, its encryption secret for `show`. Without a passphrase for a protected key there is no
/// secret: sealed threads show what everyone sees, and their readers are told to give it. A wrong
/// passphrase is an error (exit 1), never a quiet "not a reader".
pub fn show_keys(ctx: &Ctx, cli: &Cli) -> anyhow::Result<(Option<MemberId>, Option<EncSecret>)> {
    let me = ctx.home.device_id().ok();
    let pass = passphrase(cli)?;
    match enc_secret(&ctx.home, pass.as_deref()) {
        Ok(secret) => Ok((me, Some(secret))),
        Err(e)
            if e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<StoreError>(),
                    Some(StoreError::PassphraseNeeded)
                )
            }) =>
        {
            Ok((me, None))
        }
        Err(e) => Err(e),
    }
}

/// Words for one sealed thread in `show`.
pub fn words(t: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let names: Vec<String> = t["reader_names"]
        .as_array()
        .into_iter()
        .flatten()
        .map(s)
        .collect();
    let mut w = format!(
        "\n== {} ==  (sealed; started by {}; id {})\nReaders: {}.\nWhy it is sealed: {}\nIt has {} sealed messages.\n",
        s(&t["title"]),
        s(&t["author"]["name"]),
        s(&t["thread_id"]),
        names.join(", "),
        s(&t["reason"]),
        t["entries"]
    );
    if t["readable"] == true || !t["messages"].as_array().is_none_or(|m| m.is_empty()) {
        if t["readable"] != true {
            w += &format!("{}\n", s(&t["why_not_shown"]));
        }
        for m in t["messages"].as_array().into_iter().flatten() {
            w += &format!(
                "- {}: {}\n    id {}\n",
                s(&m["author"]["name"]),
                s(&m["text"]),
                s(&m["entry_id"])
            );
        }
        for u in t["unreadable"].as_array().into_iter().flatten() {
            w += &format!(
                "- (not shown: {})\n    id {}\n",
                s(&u["reason"]),
                s(&u["entry_id"])
            );
        }
    } else {
        w += &format!("{}\n", s(&t["why_not_shown"]));
    }
    for a in t["asks"].as_array().into_iter().flatten() {
        w += &format!(
            "  {} asked to read it: \"{}\"\n",
            s(&a["name"]),
            s(&a["why"])
        );
    }
    for d in t["declines"].as_array().into_iter().flatten() {
        w += &format!(
            "  {} answered {}: not now, because \"{}\"\n",
            s(&d["by"]["name"]),
            s(&d["name"]),
            s(&d["reason"])
        );
    }
    w
}

/// Maps a store refusal of a sealed write to the CLI's refusal.
pub fn refused(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::Refused(r) => refuse(format!("not written: {r}")),
        other => anyhow::Error::new(other),
    }
}
