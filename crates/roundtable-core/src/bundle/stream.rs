//! Reading a bundle as a stream ([`BundleReader`]): one entry at a time, never the whole file.
//!
//! **Invariant:** the reader holds at most one entry ([`MAX_ENTRY_BYTES`]) and a fixed buffer, whatever
//! the file's size; every length is checked before anything is allocated for it. Its verdict on any
//! bytes is exactly the in-memory one's ([`super::decode`] and [`super::decode_lenient`] are built on
//! it): the same entries, and the same first error or the same problems.
//!
//! The digest is the last 32 bytes, so the reader keeps the 32 most recent bytes back ([`HOLD`]):
//! what it hands to the entry decoder is always followed by 32 more bytes, and what is left when
//! the input ends is the digest. Entries are yielded before the digest can be checked: a caller that
//! must store nothing from a damaged file acts only once the reader has ended without an error.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read};

use sha2::{Digest, Sha256};

use super::{BundleError, HEADER, MAX_BUNDLE_BYTES, MIN_ENTRY, header};
use crate::change::MAX_CHANGE_BYTES;
use crate::entry::{DOC_OTHER, DOC_PUBLIC, DecodeError, DocRef, Entry};
use crate::id::GroupId;

/// Bytes held back from the entry decoder: the digest's length.
const HOLD: usize = 32;
/// Bytes asked of the input per read.
const CHUNK: usize = 64 * 1024;

/// The input, its SHA-256 so far, and the 32 bytes held back.
struct Source<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    /// SHA-256 of every byte handed out (header and body), never of the held-back bytes.
    hasher: Sha256,
    /// Bytes read from the input so far.
    read: u64,
    /// Body bytes (after the header) handed out so far.
    body: u64,
}

impl<R: Read> Source<R> {
    fn new(inner: R) -> Self {
        Source {
            inner,
            buf: vec![0u8; CHUNK + 2 * HOLD].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            hasher: Sha256::new(),
            read: 0,
            body: 0,
        }
    }

    /// One read from the input into the free end of the buffer (moved to the front first).
    fn refill(&mut self) -> Result<(), BundleError> {
        if self.eof {
            return Ok(());
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    self.read += n as u64;
                    if self.read > MAX_BUNDLE_BYTES {
                        return Err(BundleError::TooBig(MAX_BUNDLE_BYTES));
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(BundleError::Io(e.kind(), e.to_string())),
            }
        }
    }

    /// The first `HEADER` bytes of the input (fewer if it is shorter), hashed and consumed.
    fn header(&mut self) -> Result<Vec<u8>, BundleError> {
        while !self.eof && self.end - self.start < HEADER {
            self.refill()?;
        }
        let n = (self.end - self.start).min(HEADER);
        let h = self.buf[self.start..self.start + n].to_vec();
        self.hasher.update(&h);
        self.start += n;
        Ok(h)
    }

    /// Body bytes ready to hand out: all but the last `HOLD` buffered (the input may end there).
    fn ready(&self) -> usize {
        (self.end - self.start).saturating_sub(HOLD)
    }

    /// Appends up to `n` body bytes to `out`; fewer only where the body ends. Returns how many.
    fn take(&mut self, n: usize, out: &mut Vec<u8>) -> Result<usize, BundleError> {
        let mut got = 0;
        while got < n {
            if self.ready() == 0 {
                if self.eof {
                    break;
                }
                self.refill()?;
                continue;
            }
            let k = self.ready().min(n - got);
            let s = &self.buf[self.start..self.start + k];
            self.hasher.update(s);
            out.extend_from_slice(s);
            self.start += k;
            self.body += k as u64;
            got += k;
        }
        Ok(got)
    }

    /// Consumes the rest of the body, hashing it; returns how many bytes that was.
    fn drain(&mut self) -> Result<u64, BundleError> {
        let mut n = 0u64;
        loop {
            let k = self.ready();
            if k == 0 {
                if self.eof {
                    return Ok(n);
                }
                self.refill()?;
                continue;
            }
            self.hasher.update(&self.buf[self.start..self.start + k]);
            self.start += k;
            self.body += k as u64;
            n += k as u64;
        }
    }

    /// Once the body is consumed: the held-back bytes (the digest of a whole file; fewer than 32
    /// when the file is shorter than a header and a digest) and whether they match the rest.
    fn tail(&self) -> (&[u8], bool) {
        let tail = &self.buf[self.start..self.end];
        let ok = tail.len() == HOLD && <[u8; 32]>::from(self.hasher.clone().finalize()) == tail;
        (tail, ok)
    }
}

/// One step of reading an entry from the body.
enum Step {
    Entry(Entry),
    /// A framing error within the body (never "cut short": that is `End`).
    Bad(DecodeError),
    /// The body ended inside this entry, or before its first byte: the bytes of it read so far.
    End(Vec<u8>),
}

/// Reads a bundle from any [`Read`], one entry at a time ([`Iterator`]), holding one entry at most.
///
/// Strict ([`BundleReader::new`]): the entries, then `None`; or `Some(Err)` once, with the error
/// [`super::decode`] gives, and nothing after. Entries come before the digest is checked: a bundle
/// is whole only when the reader ends with no error, and a caller that must take nothing from a
/// damaged file keeps nothing until then.
///
/// Lenient ([`BundleReader::lenient`]): every entry [`super::decode_lenient`] salvages; framing
/// problems are not yielded but listed by [`BundleReader::problems`] once the reader ends. Only a
/// failing input ([`BundleError::Io`], [`BundleError::TooBig`]) is yielded as an error.
pub struct BundleReader<R> {
    src: Source<R>,
    group: GroupId,
    count: u64,
    lenient: bool,
    /// Entries read so far (yielded or queued).
    index: u64,
    /// Entries read from the tail after the body ended, still to yield.
    queue: VecDeque<Entry>,
    problems: Vec<BundleError>,
    done: bool,
}

impl<R: Read> BundleReader<R> {
    /// Reads the header; the error, if any, is the one [`super::decode`] gives for a bad header.
    pub fn new(input: R) -> Result<Self, BundleError> {
        Self::open(input, false)
    }

    /// A lenient reader, for an auditor who must see every problem rather than stop at the first.
    /// Fails only when the header itself is unreadable (as [`super::decode_lenient`]).
    pub fn lenient(input: R) -> Result<Self, BundleError> {
        Self::open(input, true)
    }

    fn open(input: R, lenient: bool) -> Result<Self, BundleError> {
        let mut src = Source::new(input);
        let (group, count) = header(&src.header()?)?;
        Ok(BundleReader {
            src,
            group,
            count,
            lenient,
            index: 0,
            queue: VecDeque::new(),
            problems: Vec::new(),
            done: false,
        })
    }

    /// The group the header names.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The entry count the header gives (what a whole bundle holds).
    pub fn entry_count(&self) -> u64 {
        self.count
    }

    /// Bytes read from the input so far (for progress).
    pub fn bytes_read(&self) -> u64 {
        self.src.read
    }

    /// A lenient reader's framing problems, complete once it has ended; always empty when strict.
    pub fn problems(&self) -> &[BundleError] {
        &self.problems
    }

    /// The lenient reader's problems, taken.
    pub fn into_problems(self) -> Vec<BundleError> {
        self.problems
    }

    /// Reads the next entry of the body.
    fn step(&mut self) -> Result<Step, BundleError> {
        let mut head = Vec::with_capacity(1 + 32 + 64 + 4);
        if self.src.take(1, &mut head)? < 1 {
            return Ok(Step::End(head));
        }
        let doc = match head[0] {
            DOC_PUBLIC => DocRef::Public,
            DOC_OTHER => {
                if self.src.take(32, &mut head)? < 32 {
                    return Ok(Step::End(head));
                }
                let mut id = [0u8; 32];
                id.copy_from_slice(&head[1..33]);
                DocRef::Other(id)
            }
            k => return Ok(Step::Bad(DecodeError::DocKind(k))),
        };
        let at = head.len();
        if self.src.take(64 + 4, &mut head)? < 64 + 4 {
            return Ok(Step::End(head));
        }
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&head[at..at + 64]);
        let mut len = [0u8; 4];
        len.copy_from_slice(&head[at + 64..at + 68]);
        let len = u32::from_le_bytes(len);
        // Checked before anything is allocated for the change.
        if len as usize > MAX_CHANGE_BYTES {
            return Ok(Step::Bad(DecodeError::TooLarge(len.into())));
        }
        let mut change = Vec::with_capacity(len as usize);
        if self.src.take(len as usize, &mut change)? < len as usize {
            head.extend_from_slice(&change);
            return Ok(Step::End(head));
        }
        Ok(Step::Entry(Entry {
            doc,
            signature,
            change,
        }))
    }

    /// Whether `count` entries are more than `len` bytes could hold.
    fn too_many(&self, len: u64) -> bool {
        self.count > len / MIN_ENTRY as u64
    }

    /// The body ended inside entry `index` (its bytes so far: `partial`): the rest is read from
    /// memory, exactly as the in-memory decoders read their last bytes.
    fn end_in(&mut self, partial: Vec<u8>) -> Option<BundleError> {
        let body = self.src.body;
        let (tail, digest_ok) = self.src.tail();
        if !self.lenient {
            if tail.len() < HOLD {
                return Some(BundleError::Truncated);
            }
            if !digest_ok {
                return Some(BundleError::Digest);
            }
            if self.too_many(body) {
                return Some(BundleError::Count(self.count));
            }
            let mut rest = &partial[..];
            for index in self.index..self.count {
                match Entry::decode_prefix(rest) {
                    Ok((e, used)) => {
                        self.queue.push_back(e);
                        rest = &rest[used..];
                    }
                    Err(error) => return Some(BundleError::Entry { index, error }),
                }
            }
            return (!rest.is_empty()).then_some(BundleError::Trailing(rest.len()));
        }
        // Lenient: with a bad digest its 32 bytes may be entry bytes too.
        let mut region = partial;
        if !digest_ok {
            self.problems.push(BundleError::Digest);
            region.extend_from_slice(tail);
        }
        let held = if digest_ok { 0 } else { tail.len() as u64 };
        if self.too_many(body + held) {
            self.problems.push(BundleError::Count(self.count));
        }
        let mut rest = &region[..];
        for index in self.index..self.count {
            if rest.is_empty() {
                self.problems.push(BundleError::Truncated);
                break;
            }
            match Entry::decode_prefix(rest) {
                Ok((e, used)) => {
                    self.queue.push_back(e);
                    rest = &rest[used..];
                }
                Err(error) => {
                    self.problems.push(BundleError::Entry { index, error });
                    rest = &[];
                    break;
                }
            }
        }
        // With a bad digest, 32 bytes left over are that digest, not trailing bytes.
        if !rest.is_empty() && (digest_ok || rest.len() != HOLD) {
            self.problems.push(BundleError::Trailing(rest.len()));
        }
        None
    }

    /// All `count` entries were read within the body, or entry `index` is broken (`bad`): read
    /// the rest of the input for the digest, then give the error the in-memory decoders give.
    fn end_after(&mut self, bad: Option<DecodeError>) -> Result<Option<BundleError>, BundleError> {
        let rest = self.src.drain()?;
        let body = self.src.body;
        let (tail, digest_ok) = self.src.tail();
        let held = tail.len() as u64;
        if !self.lenient {
            if held < HOLD as u64 {
                return Ok(Some(BundleError::Truncated));
            }
            if !digest_ok {
                return Ok(Some(BundleError::Digest));
            }
            if self.too_many(body) {
                return Ok(Some(BundleError::Count(self.count)));
            }
            return Ok(match bad {
                Some(error) => Some(BundleError::Entry {
                    index: self.index,
                    error,
                }),
                None => (rest > 0).then(|| BundleError::Trailing(to_usize(rest))),
            });
        }
        if !digest_ok {
            self.problems.push(BundleError::Digest);
        }
        let held = if digest_ok { 0 } else { held };
        if self.too_many(body + held) {
            self.problems.push(BundleError::Count(self.count));
        }
        match bad {
            Some(error) => self.problems.push(BundleError::Entry {
                index: self.index,
                error,
            }),
            None => {
                let left = rest + held;
                if left > 0 && (digest_ok || left != HOLD as u64) {
                    self.problems.push(BundleError::Trailing(to_usize(left)));
                }
            }
        }
        Ok(None)
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl<R: Read> Iterator for BundleReader<R> {
    type Item = Result<Entry, BundleError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.queue.pop_front() {
            return Some(Ok(e));
        }
        if self.done {
            return None;
        }
        let ended = if self.index < self.count {
            match self.step() {
                Ok(Step::Entry(e)) => {
                    self.index += 1;
                    return Some(Ok(e));
                }
                Ok(Step::Bad(error)) => self.end_after(Some(error)),
                Ok(Step::End(partial)) => Ok(self.end_in(partial)),
                Err(e) => Err(e),
            }
        } else {
            self.end_after(None)
        };
        self.done = true;
        match ended {
            Ok(None) => self.queue.pop_front().map(Ok),
            // A strict error refuses the whole file: nothing read from its tail is yielded.
            Ok(Some(e)) | Err(e) => {
                self.queue.clear();
                Some(Err(e))
            }
        }
    }
}
