//! `roundtable show`: the record as members read it, in words and as JSON.

use roundtable_core::record::Meta;
use roundtable_core::{Body, DeviceId, Effect, EntryId, Record, Status};
use roundtable_store::{Stored, StoredStatus};
use serde_json::{Value, json};

use roundtable_seal::{EncSecret, Keyring};

use crate::{Out, sealed};

struct View<'a> {
    record: &'a Record,
    names: std::collections::BTreeMap<DeviceId, String>,
    all: bool,
}

impl View<'_> {
    fn name(&self, id: &DeviceId) -> String {
        self.names
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("device {}", &id.to_string()[..8]))
    }

    fn author(&self, id: &DeviceId) -> Value {
        json!({ "member_id": id.to_string(), "name": self.name(id) })
    }

    fn marks(&self, id: &EntryId) -> Vec<&'static str> {
        let mut m = vec![];
        if self.record.concurrent_with_removal(id) {
            m.push("written_concurrently_with_removal");
        }
        if self.record.void_now(id) {
            m.push("no_effect");
        }
        if !self.record.corrections(id).is_empty() {
            m.push("corrected");
        }
        m
    }

    /// Base fields every entry has; `text` is replaced by the latest correction unless `--all`.
    fn base(&self, id: &EntryId, author: &DeviceId, meta: &Meta, kind: &str) -> Value {
        let corrections: Vec<Value> = self
            .record
            .corrections(id)
            .iter()
            .filter_map(|c| self.record.entry(c).map(|(a, m)| (c, a, m)))
            .map(|(c, a, m)| {
                let text = match &m.body {
                    Body::Correct { text, .. } => text.clone(),
                    _ => String::new(),
                };
                json!({ "entry_id": c.to_string(), "author": self.author(&a), "text": text })
            })
            .collect();
        let understandings: Vec<Value> = self
            .record
            .referrers(id)
            .iter()
            .filter_map(|u| self.record.entry(u).map(|(a, m)| (u, a, m)))
            .filter_map(|(u, a, m)| match &m.body {
                Body::Understand { text, .. } => {
                    let confirmed = self.record.referrers(u).iter().any(|c| {
                        self.record.entry(c).is_some_and(|(ca, cm)| {
                            matches!(cm.body, Body::Confirm { .. }) && ca == *author
                        })
                    });
                    let corrected: Vec<String> = self
                        .record
                        .corrections(u)
                        .iter()
                        .filter_map(|c| match self.record.entry(c).map(|(_, m)| &m.body) {
                            Some(Body::Correct { text, .. }) => Some(text.clone()),
                            _ => None,
                        })
                        .collect();
                    Some(json!({
                        "entry_id": u.to_string(), "author": self.author(&a), "text": text,
                        "confirmed": confirmed, "corrections": corrected,
                    }))
                }
                _ => None,
            })
            .collect();
        json!({
            "entry_id": id.to_string(),
            "kind": kind,
            "author": self.author(author),
            "time_ms": meta.time_ms,
            "marks": self.marks(id),
            "corrections": corrections,
            "understandings": understandings,
        })
    }

    fn text_of(&self, id: &EntryId, original: &str) -> (String, bool) {
        let cs = self.record.corrections(id);
        match cs.last().and_then(|c| self.record.entry(c)) {
            Some((_, m)) if !self.all => match &m.body {
                Body::Correct { text, .. } => (text.clone(), true),
                _ => (original.to_string(), false),
            },
            _ => (original.to_string(), !cs.is_empty()),
        }
    }

    fn thread(&self, tid: &EntryId) -> Option<Value> {
        let (author, meta) = self.record.entry(tid)?;
        let Body::Thread { title } = &meta.body else {
            return None;
        };
        let mut t = self.base(tid, &author, meta, "thread");
        t["thread_id"] = json!(tid.to_string());
        t["title"] = json!(title);
        let mut entries = Vec::new();
        for id in self.record.referrers(tid) {
            let Some((a, m)) = self.record.entry(&id) else {
                continue;
            };
            let mut v = self.base(&id, &a, m, "");
            match &m.body {
                Body::Message { text, .. } => {
                    let (shown, corrected) = self.text_of(&id, text);
                    v["kind"] = json!("message");
                    v["text"] = json!(shown);
                    v["corrected"] = json!(corrected);
                    if self.all {
                        v["original_text"] = json!(text);
                    }
                }
                Body::Proposal { .. } => match self.proposal(&id, v) {
                    Some(p) => v = p,
                    None => continue,
                },
                Body::Action {
                    text, owner, due, ..
                } => {
                    v["kind"] = json!("action");
                    v["action_id"] = json!(id.to_string());
                    v["text"] = json!(self.text_of(&id, text).0);
                    v["owner"] = self.author(owner);
                    v["due"] = json!(due);
                    let state = self.record.action_state(&id).unwrap_or_default();
                    v["done"] = json!(state.done.is_some());
                    v["suggested_done_by"] = json!(
                        state
                            .suggested
                            .iter()
                            .map(|s| self.author(&s.member))
                            .collect::<Vec<_>>()
                    );
                }
                _ => continue,
            }
            entries.push(v);
        }
        t["entries"] = json!(entries);
        Some(t)
    }

    /// A proposal's fields, its stances, how it stands, and which close stands when closes conflict.
    fn proposal(&self, id: &EntryId, mut v: Value) -> Option<Value> {
        let (_, meta) = self.record.entry(id)?;
        let Body::Proposal {
            title,
            text,
            easy_read,
            rule,
            quorum,
            effect,
            closes,
            ..
        } = &meta.body
        else {
            return None;
        };
        v["kind"] = json!("proposal");
        v["closes"] = json!(closes);
        v["proposal_id"] = json!(id.to_string());
        v["title"] = json!(title);
        v["easy_read"] = json!(easy_read);
        v["text"] = json!(text);
        v["rule"] = json!(rule.as_str());
        v["quorum"] = json!(quorum);
        let removes = match effect {
            Some(Effect::Remove { member }) => Some(member.to_string()),
            _ => None,
        };
        v["removes"] = json!(removes);
        v["effect"] = match effect {
            None => Value::Null,
            Some(e) => {
                let mut j = match e {
                    Effect::Add {
                        member,
                        name,
                        needs,
                    } => json!({"member_id": member.to_string(), "name": name, "needs": needs}),
                    Effect::Remove { member } => {
                        json!({"member_id": member.to_string(), "name": self.name(member)})
                    }
                    // Minimal view until the CLI shows recoveries (issue 16 item 2).
                    Effect::Recover {
                        member,
                        device,
                        name,
                        ..
                    } => json!({
                        "member_id": member.to_string(), "name": self.name(member),
                        "device_id": device.to_string(), "device_name": name,
                    }),
                    Effect::Auditor { device, name } => {
                        json!({"device_id": device.to_string(), "name": name})
                    }
                    Effect::Keeper { device, name } => {
                        json!({"device_id": device.to_string(), "name": name})
                    }
                    Effect::KeeperRemove { device } => {
                        json!({"device_id": device.to_string(), "name": self.record.governance().keepers.get(device).map(|k| k.name.clone())})
                    }
                    Effect::Policy { rule, quorum } => {
                        json!({"rule": rule.as_str(), "quorum": quorum})
                    }
                };
                j["kind"] = json!(e.kind());
                j
            }
        };
        v["stances"] = json!(self.stances(id));
        let standing = self.record.standing(id);
        v["outcome"] = match &standing {
            Some(st) => {
                let (oa, om) = self.record.entry(&st.outcome)?;
                let (outcome, c) = match &om.body {
                    Body::Outcome {
                        outcome, counts, ..
                    } => (outcome.clone(), *counts),
                    _ => (String::new(), Default::default()),
                };
                json!({
                    "entry_id": st.outcome.to_string(), "decision": st.decision.as_str(), "outcome": outcome,
                    "closed_by": self.author(&oa), "counts": counts_json(&c),
                })
            }
            None => Value::Null,
        };
        v["conflicting_outcomes"] = match &standing {
            Some(st) if st.conflict() => {
                json!(
                    st.frontier
                        .iter()
                        .map(|o| o.to_string())
                        .collect::<Vec<_>>()
                )
            }
            _ => json!([]),
        };
        if let Some(t) = self.record.tally_now(id) {
            v["current_counts"] = counts_json(&t.counts);
            v["would_decide"] = json!(t.decision.as_str());
            v["views"] = json!({"given": t.given, "needed": t.needed, "members": t.members});
        }
        Some(v)
    }

    fn stances(&self, proposal: &EntryId) -> Vec<Value> {
        self.record
            .referrers(proposal)
            .iter()
            .filter_map(|s| self.record.entry(s).map(|(a, m)| (s, a, m)))
            .filter_map(|(s, a, m)| match &m.body {
                Body::Stance { stance, reason, on_behalf, .. } => {
                    let member = on_behalf.unwrap_or(a);
                    let confirmed = on_behalf.is_none()
                        || self.record.referrers(s).iter().any(|c| {
                            self.record.entry(c).is_some_and(|(ca, cm)| matches!(cm.body, Body::Confirm { .. }) && ca == member)
                        });
                    Some(json!({
                        "entry_id": s.to_string(), "member_id": member.to_string(), "name": self.name(&member),
                        "stance": stance.as_str(), "reason": reason,
                        "recorded_by": on_behalf.map(|_| self.author(&a)), "confirmed": confirmed,
                        "marks": self.marks(s),
                    }))
                }
                _ => None,
            })
            .collect()
    }
}

fn counts_json(c: &roundtable_core::Counts) -> Value {
    json!({"agree": c.agree, "abstain": c.abstain, "disagree": c.disagree, "block": c.block})
}

/// Builds the `show` output. `keys` are this device's member id and encryption secret, when it could
/// unlock them: sealed threads it reads are shown in full, others by their public facts only.
pub fn show(
    record: &Record,
    only: Option<EntryId>,
    all: bool,
    stored: &[Stored],
    me: Option<DeviceId>,
    secret: Option<EncSecret>,
) -> Out {
    let members = record.members();
    let names = members.iter().map(|m| (m.id, m.name.clone())).collect();
    let view = View { record, names, all };
    let ids = match only {
        Some(t) => vec![t],
        None => record.threads(),
    };
    let mut ring = match (me, secret.as_ref()) {
        (Some(m), Some(s)) => Some(Keyring::new(m, s)),
        _ => None,
    };
    let threads: Vec<Value> = ids
        .iter()
        .filter_map(|t| match record.sealed_thread(t) {
            Some(_) => {
                let mut t = sealed::thread_json(record, t, ring.as_mut(), me)?;
                // Inside the group view a thread's entries are a list, as for open threads.
                t["entry_count"] = t["entries"].clone();
                t["entries"] = t["messages"].clone();
                Some(t)
            }
            None => view.thread(t),
        })
        .collect();
    if let Some(t) = only
        && record.sealed_thread(&t).is_some()
    {
        // `show THREAD_ID` of a sealed thread: its public facts at the top, for everyone.
        let mut top = sealed::thread_json(record, &t, ring.as_mut(), me).unwrap_or(Value::Null);
        let words = sealed::words(&top);
        top["group"] = json!({"group_id": record.group().to_string()});
        top["threads"] = json!(threads);
        return Out { json: top, words };
    }
    let pending = stored
        .iter()
        .filter(|s| s.status == StoredStatus::Pending)
        .count();
    let quarantined: Vec<Value> = stored
        .iter()
        .filter_map(|s| match &s.status {
            StoredStatus::Quarantined { kind, reason } => {
                // Evidence signed for this group travels with it; bytes whose signature failed
                // (or that belong elsewhere) stay on this device.
                let shared = !matches!(
                    kind.as_str(),
                    "malformed" | "bad_signature" | "unsupported_document" | "not_in_group"
                );
                Some(
                    json!({"entry_id": s.id.to_string(), "kind": kind, "reason": reason, "evidence": true, "shared": shared}),
                )
            }
            _ => None,
        })
        .collect();
    let (gname, rule, quorum) = record
        .group_info()
        .map(|(n, r, q)| (n.to_string(), r.as_str(), q))
        .unwrap_or_default();
    // Proposals about the group itself (members, auditors, its rule) sit in the group, not a thread.
    let group_proposals: Vec<Value> = match record.genesis() {
        Some(g) if only.is_none() => record
            .referrers(&g)
            .iter()
            .filter_map(|p| {
                let (a, m) = record.entry(p)?;
                view.proposal(p, view.base(p, &a, m, "proposal"))
            })
            .collect(),
        _ => vec![],
    };
    let json = json!({
        "group": {"group_id": record.group().to_string(), "name": gname, "rule": rule, "quorum": quorum},
        "members": members.iter().map(|m| json!({"member_id": m.id.to_string(), "name": m.name, "status": m.status.as_str()})).collect::<Vec<_>>(),
        "group_proposals": group_proposals,
        "threads": threads,
        "pending": pending,
        "quarantined": quarantined,
    });
    let words = words(&json, &members, all);
    Out { json, words }
}

fn words(v: &Value, members: &[roundtable_core::Member], all: bool) -> String {
    let mut w = String::new();
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    w += &format!("Group: {}\n", s(&v["group"]["name"]));
    let active = members
        .iter()
        .filter(|m| m.status == Status::Active)
        .count();
    w += &format!("{} members are active.\n", active);
    let about_group: Vec<Value> = v["group_proposals"].as_array().cloned().unwrap_or_default();
    if !about_group.is_empty() {
        w += "\n== About the group: who is in it, and its rules ==\n";
        for e in &about_group {
            proposal_words(&mut w, e);
        }
    }
    for t in v["threads"].as_array().into_iter().flatten() {
        if t["sealed"] == true {
            let mut t = t.clone();
            t["entries"] = t["entry_count"].clone();
            w += &sealed::words(&t);
            continue;
        }
        w += &format!(
            "\n== {} ==  (started by {}; id {})\n",
            s(&t["title"]),
            s(&t["author"]["name"]),
            s(&t["thread_id"])
        );
        for e in t["entries"].as_array().into_iter().flatten() {
            let who = s(&e["author"]["name"]);
            let mark = if has_mark(e, "written_concurrently_with_removal") {
                " [written at the same time as their removal]"
            } else {
                ""
            };
            match e["kind"].as_str() {
                Some("message") => {
                    let corrected = if e["corrected"] == true {
                        " (corrected)"
                    } else {
                        ""
                    };
                    w += &format!(
                        "- {who}: {}{corrected}{mark}\n    id {}\n",
                        s(&e["text"]),
                        s(&e["entry_id"])
                    );
                }
                Some("proposal") => proposal_words(&mut w, e),
                Some("action") => {
                    let due = e["due"]
                        .as_str()
                        .map(|d| format!(" by {d}"))
                        .unwrap_or_default();
                    let suggested: Vec<&str> = e["suggested_done_by"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|a| a["name"].as_str())
                        .collect();
                    let done = if e["done"] == true {
                        " — done".to_string()
                    } else if !suggested.is_empty() {
                        format!(
                            " — {} said it is done; waiting for its owner",
                            suggested.join(", ")
                        )
                    } else {
                        String::new()
                    };
                    w += &format!(
                        "  Action for {}: {}{due}{done}\n    id {}\n",
                        s(&e["owner"]["name"]),
                        s(&e["text"]),
                        s(&e["action_id"])
                    );
                }
                _ => {}
            }
            for u in e["understandings"].as_array().into_iter().flatten() {
                let state = if u["confirmed"] == true {
                    "confirmed by the author"
                } else {
                    "not confirmed yet"
                };
                w += &format!(
                    "      {} understood this as: \"{}\" ({state})\n",
                    s(&u["author"]["name"]),
                    s(&u["text"])
                );
            }
        }
    }
    let q = v["quarantined"].as_array().map(|a| a.len()).unwrap_or(0);
    if q > 0 {
        w += &format!("\n{q} entries were rejected and are kept aside with the reason.\n");
        if all {
            w += "Kept as evidence (never part of the record):\n";
            for e in v["quarantined"].as_array().into_iter().flatten() {
                w += &format!(
                    "- {}: {}{}\n",
                    e["entry_id"].as_str().unwrap_or_default(),
                    e["reason"].as_str().unwrap_or_default(),
                    if e["shared"] == true {
                        ""
                    } else {
                        " (kept on this device only)"
                    }
                );
            }
        }
    }
    if v["pending"].as_u64().unwrap_or(0) > 0 {
        w += &format!(
            "{} entries are waiting for entries this device has not seen yet.\n",
            v["pending"]
        );
    }
    w
}

/// Whether an entry's JSON carries `mark` in its `marks`.
fn has_mark(e: &Value, mark: &str) -> bool {
    e["marks"]
        .as_array()
        .is_some_and(|m| m.iter().any(|x| x == mark))
}

fn proposal_words(w: &mut String, e: &Value) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mark = if has_mark(e, "written_concurrently_with_removal") {
        " [written at the same time as their removal]"
    } else {
        ""
    };
    let closes = match e["closes"].as_str() {
        Some(d) => format!("\n    Meant to close by {d}"),
        None => String::new(),
    };
    *w += &format!(
        "* Proposal by {}: {}{mark}\n    In short: {}{closes}\n    id {}\n",
        s(&e["author"]["name"]),
        s(&e["title"]),
        s(&e["easy_read"]),
        s(&e["proposal_id"])
    );
    for st in e["stances"].as_array().into_iter().flatten() {
        let reason = s(&st["reason"]);
        let reason = if reason.is_empty() {
            String::new()
        } else {
            format!(" because \"{reason}\"")
        };
        let pending = if st["confirmed"] == true {
            ""
        } else {
            " (waiting for them to confirm)"
        };
        let void = if has_mark(st, "no_effect") {
            " (does not count: written at the same time as their removal)"
        } else {
            ""
        };
        *w += &format!(
            "    {} says {}{reason}{pending}{void}\n",
            s(&st["name"]),
            s(&st["stance"])
        );
    }
    let conflicts = e["conflicting_outcomes"]
        .as_array()
        .map(|a| a.len())
        .unwrap_or(0);
    if e["outcome"].is_object() {
        let d = if e["outcome"]["decision"] == "passed" {
            "passed"
        } else {
            "did not pass"
        };
        *w += &format!("    Outcome: {d}. {}\n", s(&e["outcome"]["outcome"]));
        if conflicts > 1 {
            *w += &format!(
                "    Note: {conflicts} members closed it at the same time without seeing each other's close, and they disagree. The close that counted more views stands (on a tie, \"did not pass\"). Closing it again settles it.\n"
            );
        }
    } else {
        let views = &e["views"];
        *w += &format!(
            "    Still open: {} of {} members have given a view; {} needed to close it.\n",
            views["given"], views["members"], views["needed"]
        );
    }
}
