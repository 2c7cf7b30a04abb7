//! Progress on stderr: shown only when stderr is a terminal, `--quiet` is
//! off, and the work has already taken about a second.

use std::io::IsTerminal;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long work runs before a bar appears.
const DELAY: Duration = Duration::from_secs(1);

/// Whether progress may be drawn at all.
pub fn wanted(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

/// A bar that stays hidden for its first second.
pub struct Bar {
    pb: ProgressBar,
    start: Instant,
    wanted: bool,
    shown: bool,
}

impl Bar {
    /// A bar counting bytes up to `total`.
    pub fn bytes(wanted: bool, total: u64, msg: &str) -> Bar {
        Self::with_style(
            wanted,
            total,
            msg,
            "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
    }

    /// A bar counting items (files, bindings) up to `total`.
    pub fn items(wanted: bool, total: u64, msg: &str) -> Bar {
        Self::with_style(wanted, total, msg, "{msg} [{bar:30}] {pos}/{len}")
    }

    fn with_style(wanted: bool, total: u64, msg: &str, template: &str) -> Bar {
        let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
        if let Ok(style) = ProgressStyle::with_template(template) {
            pb.set_style(style.progress_chars("=> "));
        }
        pb.set_message(msg.to_string());
        Bar {
            pb,
            start: Instant::now(),
            wanted,
            shown: false,
        }
    }

    /// Advances by `n`.
    pub fn inc(&mut self, n: u64) {
        if self.wanted && !self.shown && self.start.elapsed() >= DELAY {
            self.pb.set_draw_target(ProgressDrawTarget::stderr());
            self.shown = true;
        }
        self.pb.inc(n);
    }

    /// Removes the bar.
    pub fn finish(self) {
        self.pb.finish_and_clear();
    }
}

/// Runs `f`, with a spinner saying `msg` once it has run for a second.
pub fn spin<T>(wanted: bool, msg: &str, f: impl FnOnce() -> T) -> T {
    if !wanted {
        return f();
    }
    let (done, wait) = mpsc::channel::<()>();
    let msg = msg.to_string();
    let spinner = std::thread::spawn(move || {
        if wait.recv_timeout(DELAY).is_ok() {
            return;
        }
        let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            pb.set_style(style);
        }
        pb.set_message(msg);
        pb.enable_steady_tick(Duration::from_millis(100));
        let _ = wait.recv();
        pb.finish_and_clear();
    });
    let out = f();
    let _ = done.send(());
    let _ = spinner.join();
    out
}
