//! Sealed threads on the command line: the `thread` subcommands for sealed threads, and what
//! `show` may reveal to whom. The entries themselves are built by `roundtable-app`.

use roundtable_app::{LetIn, Seat, limits_note, member_name};
use roundtable_core::{Body, DeviceKey, EntryId, MemberId, Record};
use roundtable_seal::{EncSecret, Keyring, thread};
use roundtable_store::{Group, Home, KeyError};
use serde_json::{Value, json};

use crate::{Cli, Ctx, Out, entry_out, parse_id, passphrase};

/// The device's encryption secret.
pub fn enc_secret(home: &Home, pass: Option<&str>) -> anyhow::Result<EncSecret> {
    Ok(EncSecret::from_bytes(&*home.enc_secret(pass)?))
}

/// Publishes this device's encryption key and hands readers the keys they lack
/// ([`Seat::prepare`]). Returns whether an entry was written.
pub fn publish_profile(
    home: &Home,
    key: &DeviceKey,
    pass: Option<&str>,
    g: &mut Group,
) -> anyhow::Result<bool> {
    let secret = enc_secret(home, pass)?;
    Ok(Seat::new(home, key, Some(&secret)).prepare(g)?)
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

/// Runs a sealed-thread subcommand through the application layer, and says what it did.
pub fn run(ctx: &Ctx, cli: &Cli, action: Action) -> anyhow::Result<Out> {
    let (out_key, id, words) = match action {
        Action::New {
            title,
            readers,
            reason,
        } => {
            let ids: Vec<MemberId> = readers
                .iter()
                .map(|r| parse_id(r))
                .collect::<anyhow::Result<_>>()?;
            ctx.act(cli, |seat, g| {
                let id = seat.new_sealed_thread(g, title, reason, &ids)?;
                let mut names: Vec<String> = ids
                    .iter()
                    .chain([seat.member()].iter())
                    .map(|m| member_name(&g.record, m))
                    .collect();
                names.sort();
                names.dedup();
                let mut w = format!(
                        "Sealed thread \"{title}\" started. Only its readers can read what is written in it: {}.\nEveryone in the group can see its title, its readers and why it is sealed: \"{reason}\".",
                        names.join(", ")
                    );
                with_limits(&g.record, &id, &mut w);
                Ok(("thread_id", id, w))
            })?
        }
        Action::AddReader { thread, member } => {
            let (t, m): (EntryId, MemberId) = (parse_id(thread)?, parse_id(member)?);
            return ctx.act(cli, |seat, g| {
                let done = seat.add_reader(g, t, m)?;
                let name = member_name(&g.record, &m);
                let names = |w: &[MemberId]| {
                    w.iter()
                        .map(|r| member_name(&g.record, r))
                        .collect::<Vec<_>>()
                };
                let still = |w: &[MemberId]| match w {
                    [] => "Everyone asked has agreed: one of the readers lets them in.".to_string(),
                    w => format!(
                        "Every reader (and everyone who was one) must agree first: still waiting for {}.",
                        names(w).join(", ")
                    ),
                };
                let people = |w: &[MemberId]| {
                    w.iter()
                        .map(|r| json!({"member_id": r.to_string(), "name": member_name(&g.record, r)}))
                        .collect::<Vec<_>>()
                };
                let (reader, waiting, mut w) = match &done {
                    LetIn::Added(_) => (
                        true,
                        vec![],
                        format!(
                            "{name} is now a reader, and can read everything written in the thread."
                        ),
                    ),
                    LetIn::Agreed { waiting, .. } => (
                        false,
                        people(waiting),
                        format!(
                            "You agreed that {name} may read the thread. {}",
                            still(waiting)
                        ),
                    ),
                    LetIn::AlreadyAgreed { waiting } => (
                        false,
                        people(waiting),
                        format!(
                            "You had agreed already that {name} may read the thread; nothing new was written. {}",
                            still(waiting)
                        ),
                    ),
                    _ => (false, vec![], String::new()),
                };
                let id = done.entry();
                if let Some(id) = id {
                    with_limits(&g.record, &id, &mut w);
                    w.push_str(&format!("\nIts id is {id}"));
                }
                Ok(Out {
                    json: json!({
                        "entry_id": id.map(|i| i.to_string()),
                        "reader": reader,
                        "waiting_for": waiting,
                    }),
                    words: w,
                })
            });
        }
        Action::RemoveReader { thread, member } => {
            let (t, m): (EntryId, MemberId) = (parse_id(thread)?, parse_id(member)?);
            ctx.act(cli, |seat, g| {
                let id = seat.remove_reader(g, t, m)?;
                let name = member_name(&g.record, &m);
                let mut w = format!(
                    "{name} is no longer a reader. A new key is in use: they cannot read anything written from now on."
                );
                with_limits(&g.record, &id, &mut w);
                Ok(("entry_id", id, w))
            })?
        }
        Action::Ask { thread, why } => {
            let t: EntryId = parse_id(thread)?;
            ctx.act(cli, |seat, g| {
                Ok((
                    "entry_id",
                    seat.ask_to_read(g, t, why)?,
                    "Your request is shared. A reader can add you, or say why not.".to_string(),
                ))
            })?
        }
        Action::Decline {
            thread,
            member,
            reason,
        } => {
            let (t, m): (EntryId, MemberId) = (parse_id(thread)?, parse_id(member)?);
            ctx.act(cli, |seat, g| {
                let id = seat.decline(g, t, m, reason)?;
                let name = member_name(&g.record, &m);
                Ok((
                    "entry_id",
                    id,
                    format!("Your answer and its reason are shared; {name} will see them."),
                ))
            })?
        }
    };
    Ok(entry_out(out_key, id, words))
}

/// What `post` says about a message written in a sealed thread, with the thread's limits once
/// they are near (also as a note on stderr).
pub fn posted_words(record: &Record, t: &EntryId, id: &EntryId) -> String {
    let readers = record
        .sealed_thread(t)
        .map(|i| {
            i.state
                .readers
                .iter()
                .map(|m| member_name(record, m))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let mut words = format!(
        "Your message is sealed: only the readers ({readers}) can read it. Everyone can see that a message was written. It cannot be deleted, only corrected."
    );
    with_limits(record, id, &mut words);
    words
}

/// Adds the limits note of `id`'s sealed thread to `words` (and to stderr), once they are near.
pub fn with_limits(record: &Record, id: &EntryId, words: &mut String) {
    if let Some(note) = limits_note(record, id) {
        eprintln!("roundtable: note: {note}");
        *words = format!("{words}\n{note}");
    }
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

/// Who agreed to let whom read, who added or removed which reader, and when a new key was made:
/// public to everyone.
fn reader_changes(record: &Record, t: &EntryId) -> Vec<Value> {
    let name = |m: &MemberId| member_name(record, m);
    record
        .referrers(t)
        .iter()
        .filter_map(|id| record.entry(id).map(|(a, m)| (id, a, m)))
        .filter_map(|(id, a, m)| {
            let (change, member) = match &m.body {
                Body::ReaderAdd { member, .. } => ("added", Some(*member)),
                Body::ReaderAgree { member, .. } => ("agreed", Some(*member)),
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
/// The member is this device's (a linked device reads as its member), in `record`.
pub fn show_keys(
    ctx: &Ctx,
    cli: &Cli,
    record: &roundtable_core::Record,
) -> anyhow::Result<(Option<MemberId>, Option<EncSecret>)> {
    let me = ctx
        .home
        .device_id()
        .ok()
        .map(|d| record.governance().member_of(&d).unwrap_or(d));
    let pass = passphrase(cli)?;
    match enc_secret(&ctx.home, pass.as_deref()) {
        Ok(secret) => Ok((me, Some(secret))),
        Err(e)
            if e.chain()
                .any(|c| matches!(crate::key_error(c), Some(KeyError::PassphraseNeeded))) =>
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
    for c in t["reader_changes"].as_array().into_iter().flatten() {
        if c["change"] == "agreed" {
            w += &format!(
                "  {} agreed that {} may read it (every reader must agree)\n",
                s(&c["by"]["name"]),
                s(&c["member"]["name"])
            );
        }
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
