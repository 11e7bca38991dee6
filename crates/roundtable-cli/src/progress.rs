//! Progress on stderr for a long `audit`: never on stdout, only when stderr is a terminal, and only
//! once the run has taken a few seconds (a small bundle shows nothing).

use std::io::{IsTerminal, Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar is drawn once reading has taken this long.
const AFTER: Duration = Duration::from_secs(2);
/// Files at least this large show the rules phase's spinner even when reading was quick.
const LARGE: u64 = 32 << 20;

/// The progress of one run; `None` inside when it must stay hidden.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
}

impl Progress {
    /// A bar over `total` bytes of input, hidden unless `wanted` and stderr is a terminal.
    pub fn new(total: u64, wanted: bool) -> Self {
        let bar = (wanted && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
            reading_style(&b);
            b.set_message("reading the bundle and checking signatures");
            b
        });
        Progress { bar, total }
    }

    /// `input`, counted on the bar as it is read.
    pub fn reader<R: Read>(&self, input: R) -> Counted<R> {
        Counted {
            input,
            bar: self.bar.clone(),
            total: self.total,
            start: Instant::now(),
            shown: false,
            ended: false,
        }
    }

    /// Clears the bar (the report follows on stdout).
    pub fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// A reader that moves the bar.
pub struct Counted<R> {
    input: R,
    bar: Option<ProgressBar>,
    total: u64,
    start: Instant,
    shown: bool,
    ended: bool,
}

/// A bar over the bytes read.
fn reading_style(b: &ProgressBar) {
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes}, {elapsed} (about {eta} left)",
    ) {
        b.set_style(style.progress_chars("=> "));
    }
}

/// The audit reads a bundle with a fork a second time from the start (`roundtable_audit::audit_from`).
impl<R: Seek> Seek for Counted<R> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let at = self.input.seek(to)?;
        if let Some(b) = &self.bar {
            b.set_position(at);
            if self.ended {
                self.ended = false;
                reading_style(b);
                b.disable_steady_tick();
                b.set_message("reading the bundle again with every fork known");
            }
        }
        Ok(at)
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.input.read(buf)?;
        if let Some(b) = &self.bar {
            b.inc(n as u64);
            let late = self.start.elapsed() >= AFTER;
            if !self.shown && (late || (n == 0 && self.total >= LARGE)) {
                b.set_draw_target(ProgressDrawTarget::stderr());
                self.shown = true;
            }
            if n == 0 && !self.ended {
                self.ended = true;
                // The file is read; the rules walk follows, whose length is not known ahead.
                if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}, {elapsed}") {
                    b.set_style(style);
                }
                b.set_message("checking every entry by the rules and recounting decisions");
                b.enable_steady_tick(Duration::from_millis(200));
            }
        }
        Ok(n)
    }
}
