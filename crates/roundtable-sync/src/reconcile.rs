//! Which entries the other device lacks, from its [`Hello`]. Pure: no I/O.
//!
//! A device's valid entries by one author are exactly sequence numbers `1..=seq` (each entry builds on
//! its author's previous one), so `(author, seq, tip id)` per author names a whole valid set. For each
//! author: if the other device's tip is on my chain, I send what follows it; if it is not (a fork), I
//! send my whole chain of that author and the fork rules settle it on arrival.

use std::collections::{HashMap, HashSet};

use roundtable_core::{DeviceId, EntryId, Record};

use crate::frame::Hello;

/// Ids to send, valid ones in causal order, then evidence the other device does not list.
pub fn to_send(record: &Record, my_evidence: &[EntryId], theirs: &Hello) -> Vec<EntryId> {
    let their_tips: HashMap<DeviceId, (u64, EntryId)> =
        theirs.tips.iter().map(|(d, s, t)| (*d, (*s, *t))).collect();
    let mut out = Vec::new();
    for (author, my_seq, my_tip) in record.summary() {
        let from = match their_tips.get(&author) {
            None => 1,
            Some((seq, tip)) if *seq == my_seq => {
                if *tip == my_tip {
                    continue;
                }
                1
            }
            // They are ahead on this author; if my tip is not on their chain they will send theirs.
            Some((seq, _)) if *seq > my_seq => continue,
            Some((seq, tip)) if record.valid_at(&author, *seq) == Some(*tip) => seq + 1,
            Some(_) => 1,
        };
        out.extend((from..=my_seq).filter_map(|s| record.valid_at(&author, s)));
    }
    record.sort_causally(&mut out);
    let theirs_ev: HashSet<&EntryId> = theirs.evidence.iter().collect();
    out.extend(my_evidence.iter().filter(|e| !theirs_ev.contains(e)));
    out
}
