//! The Automerge document of valid entries, and snapshots of it with the engine's index.
//!
//! **Invariant (Automerge is fed in batches):** each `apply_changes` call costs Automerge time in
//! proportion to the whole document, so valid changes queue in the record and are applied in one
//! call when the document is read ([`Record::doc`], [`Record::snapshot`]). A restored record keeps
//! the saved document as bytes until then, so opening reads only the index.

use automerge::Automerge;

use super::{Index, Record};
use crate::id::GroupId;

/// The first bytes of a saved index: its layout's version (postcard is not self-describing, so an
/// index of another layout must never be read as this one). Bump it whenever [`Index`] or
/// [`super::Meta`] changes.
const INDEX_MAGIC: &[u8; 4] = b"RTX2";

impl Record {
    /// The Automerge document of valid entries, brought up to date.
    pub fn doc(&mut self) -> Result<&Automerge, SnapshotError> {
        self.flush_doc()?;
        match &self.doc {
            Doc::Loaded(d) => Ok(d),
            Doc::Saved(_) => Err(SnapshotError::Decode("the document did not load".into())),
        }
    }

    /// Gives Automerge every queued change in one call.
    pub(super) fn flush_doc(&mut self) -> Result<(), SnapshotError> {
        if !self.keep_doc {
            return Err(SnapshotError::Decode(
                "this record was built without its document; open it again to read the document"
                    .into(),
            ));
        }
        if let Doc::Saved(bytes) = &self.doc {
            let d = Automerge::load(bytes).map_err(|e| SnapshotError::Decode(e.to_string()))?;
            self.doc = Doc::Loaded(Box::new(d));
        }
        if let Doc::Loaded(d) = &mut self.doc
            && !self.doc_queue.is_empty()
        {
            // Only valid changes are queued; Automerge has no say in validity. A refusal here is a
            // bug to report, and the entries themselves stay safe in the store.
            d.apply_changes(std::mem::take(&mut self.doc_queue))
                .map_err(|e| SnapshotError::Apply(e.to_string()))?;
        }
        Ok(())
    }

    /// The state a snapshot saves: Automerge's saved document and the engine's index.
    pub fn snapshot(&mut self) -> Result<(Vec<u8>, Vec<u8>), SnapshotError> {
        let mut index = INDEX_MAGIC.to_vec();
        index.extend(
            postcard::to_stdvec(&self.ix).map_err(|e| SnapshotError::Encode(e.to_string()))?,
        );
        let doc = self.doc()?.save();
        Ok((doc, index))
    }

    /// Restores a record from a snapshot taken by this device. Entries valid after the snapshot are then
    /// applied with [`Record::ingest`]; pending and rejected entries are handed back the same way.
    ///
    /// The document itself is loaded only when first needed (opening reads just the index); the caller
    /// is expected to have checked the snapshot's integrity.
    pub fn restore(group: GroupId, doc: &[u8], index: &[u8]) -> Result<Record, SnapshotError> {
        let doc = Doc::Saved(doc.to_vec());
        // An index of another layout (an older version's) is refused, and the caller rebuilds.
        let index = index
            .strip_prefix(INDEX_MAGIC.as_slice())
            .ok_or_else(|| SnapshotError::Decode("an index saved by another version".into()))?;
        let ix: Index =
            postcard::from_bytes(index).map_err(|e| SnapshotError::Decode(e.to_string()))?;
        let mut positions = super::Positions::default();
        for (h, m) in &ix.entries {
            let a = *ix
                .actors
                .get(m.actor as usize)
                .ok_or_else(|| SnapshotError::Decode("actor index".into()))?;
            positions.insert((a, m.seq), *h);
        }
        let mut r = Record::new(group);
        r.doc = doc;
        r.ix = ix;
        r.positions = positions;
        Ok(r)
    }
}

/// The Automerge document. Applying changes costs Automerge time in proportion to the whole document
/// per call, so valid changes queue up and are applied in one call when the document is read
/// (snapshots, exports); a restored snapshot stays as bytes until then.
pub(super) enum Doc {
    Saved(Vec<u8>),
    Loaded(Box<Automerge>),
}

/// A snapshot could not be written or read. The entries themselves are untouched; rebuild from them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The index could not be serialised.
    #[error("could not encode the snapshot: {0}")]
    Encode(String),
    /// The saved index or document could not be read back.
    #[error("the snapshot is damaged ({0}); the record can be rebuilt from its entries")]
    Decode(String),
    /// Automerge refused changes the rules accepted: a bug, never a verdict on the entries.
    #[error("Automerge refused validated changes ({0}); please report this. The entries are safe")]
    Apply(String),
}
