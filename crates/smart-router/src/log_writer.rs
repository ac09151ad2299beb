//! Log output off the request path: each formatted line goes through a bounded queue to one
//! thread that writes to stderr in batches. When the queue is full (stderr is a pipe nobody
//! drains fast enough), lines are dropped and counted instead of stalling requests; the count
//! is reported in the log once output flows again.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::Duration;

/// Lines that may wait for the writer thread.
const QUEUE_LINES: usize = 16_384;
/// Largest batch written at once.
const BATCH_BYTES: usize = 256 * 1024;

enum Msg {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

/// The `MakeWriter` handed to the log formatter.
#[derive(Clone)]
pub(crate) struct LogWriter {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

/// Flushes queued lines when dropped (at process exit).
pub(crate) struct LogGuard {
    tx: SyncSender<Msg>,
}

/// Starts the writer thread for `out`.
pub(crate) fn start(out: impl Write + Send + 'static) -> (LogWriter, LogGuard) {
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE_LINES);
    let dropped = Arc::new(AtomicU64::new(0));
    let counter = dropped.clone();
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_lines(rx, out, &counter))
        .expect("spawning the log writer thread");
    (
        LogWriter {
            tx: tx.clone(),
            dropped,
        },
        LogGuard { tx },
    )
}

fn write_lines(rx: Receiver<Msg>, mut out: impl Write, dropped: &AtomicU64) {
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    let mut reported = 0;
    while let Ok(first) = rx.recv() {
        let mut acks = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Line(l) => {
                    router::admin::diagnostics::LOG_TAIL.push(&l);
                    batch.extend_from_slice(&l);
                }
                Msg::Flush(ack) => acks.push(ack),
            }
            if batch.len() < BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        let lost = dropped.load(Ordering::Relaxed);
        if lost > reported {
            let _ = writeln!(
                batch,
                "log output fell behind: {} lines dropped",
                lost - reported
            );
            reported = lost;
        }
        let _ = out.write_all(&batch);
        let _ = out.flush();
        batch.clear();
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let (ack_tx, ack_rx) = std::sync::mpsc::sync_channel(1);
        if self.tx.send(Msg::Flush(ack_tx)).is_ok() {
            let _ = ack_rx.recv_timeout(Duration::from_secs(2));
        }
    }
}

/// One log line being formatted; queued when the formatter is done with it.
pub(crate) struct Line<'a> {
    buf: Vec<u8>,
    to: &'a LogWriter,
}

impl Write for Line<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.buf);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.to.tx.try_send(Msg::Line(line))
        {
            self.to.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            buf: Vec::with_capacity(256),
            to: self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A sink that blocks until released, then records what it got.
    #[derive(Clone)]
    struct Gate {
        open: Arc<(Mutex<bool>, std::sync::Condvar)>,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let (lock, cv) = &*self.open;
            let mut open = lock.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            self.got.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_output_drops_lines_instead_of_blocking_and_reports_them() {
        use tracing_subscriber::fmt::MakeWriter;
        let gate = Gate {
            open: Arc::new((Mutex::new(false), std::sync::Condvar::new())),
            got: Arc::new(Mutex::new(Vec::new())),
        };
        let (w, guard) = start(gate.clone());
        let started = std::time::Instant::now();
        let total = 4 * QUEUE_LINES;
        for i in 0..total {
            let mut line = w.make_writer();
            writeln!(line, "line {i}").unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "writing lines must never wait for the output"
        );
        let dropped = w.dropped.load(Ordering::Relaxed) as usize;
        assert!(dropped >= QUEUE_LINES, "{dropped}");
        *gate.open.0.lock().unwrap() = true;
        gate.open.1.notify_all();
        drop(guard);
        let got = String::from_utf8(gate.got.lock().unwrap().clone()).unwrap();
        assert!(got.starts_with("line 0\n"), "{}", &got[..40]);
        // The writer may report the loss in several lines (it reports what was dropped by
        // the time each batch is written); together they must account for every drop.
        let reported: usize = got
            .lines()
            .filter_map(|l| l.strip_prefix("log output fell behind: "))
            .map(|l| {
                l.trim_end_matches(" lines dropped")
                    .parse::<usize>()
                    .unwrap()
            })
            .sum();
        assert_eq!(reported, dropped, "the loss is reported");
        let written = got.lines().filter(|l| l.starts_with("line ")).count();
        assert_eq!(written + dropped, total, "every line written or counted");
    }
}
