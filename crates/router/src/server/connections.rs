//! Client connections: the accept loop, a cap on open connections, and the timeouts hostile or
//! forgotten connections cannot outlive.
//!
//! - **Cap.** At most `max_connections` are open (by default about half the process's file
//!   limit, leaving a descriptor per connection for its upstream call). At the cap, the oldest
//!   connection that has not yet sent a complete request head is closed to make room, else the
//!   longest-idle keep-alive connection; when every connection has a request in flight, new
//!   ones wait in the kernel's accept queue.
//! - **Timeouts.** A connection must deliver its first complete request head within
//!   `header_read_timeout`; between requests it may stay idle (or dribble a partial head) for
//!   `idle_timeout`. One reaper task enforces both every fraction of a second: no timer per
//!   request.
//! - **Drain.** On shutdown the listener closes, idle connections close at once and busy ones
//!   after their response, within `drain_timeout`.

use crate::metrics::Metrics;
use crate::reload::Live;
use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tower_service::Service;

/// Connection limits, resolved from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most open connections.
    pub max_connections: usize,
    /// Longest wait for a first complete request head.
    pub header_read_timeout: Duration,
    /// Longest idle time between requests.
    pub idle_timeout: Duration,
}

impl Limits {
    /// The limits of a config, deriving an unset `max_connections` from the file limit.
    pub fn of(server: &crate::config::ServerConfig) -> Self {
        Limits {
            max_connections: server
                .max_connections
                .unwrap_or_else(default_max_connections),
            header_read_timeout: server.header_read_timeout,
            idle_timeout: server.idle_timeout,
        }
    }
}

/// Half of what the soft file limit leaves after a reserve for the store, logs and listener:
/// each proxied request holds a client and an upstream descriptor.
#[allow(unsafe_code)] // one libc call; std has no API for resource limits
fn default_max_connections() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    let soft = if ok && lim.rlim_cur != libc::RLIM_INFINITY {
        usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
    } else {
        65_536
    };
    (soft.saturating_sub(128) / 2).clamp(16, 1 << 20)
}

/// Why a connection was closed by the router.
#[derive(Debug, Clone, Copy)]
enum CloseReason {
    HeaderTimeout,
    IdleTimeout,
    Evicted,
}

/// One connection's shared state.
#[derive(Debug)]
struct ConnState {
    /// Requests in flight (from their head to the end of their response body).
    active: AtomicU32,
    /// A complete request head has arrived at least once.
    served: AtomicBool,
    /// When the connection last became idle (ns since the tracker's epoch).
    idle_since: AtomicU64,
    /// Set when the router closes it; woken through `close`.
    closing: AtomicBool,
    close: Notify,
}

/// Every open connection.
#[derive(Debug)]
struct Tracker {
    epoch: Instant,
    conns: Mutex<HashMap<u64, (Instant, Arc<ConnState>)>>,
    freed: Notify,
    next: AtomicU64,
}

impl Tracker {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn len(&self) -> usize {
        self.conns.lock().expect("tracker lock").len()
    }

    fn add(&self) -> (u64, Arc<ConnState>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState {
            active: AtomicU32::new(0),
            served: AtomicBool::new(false),
            idle_since: AtomicU64::new(self.now_ns()),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        });
        self.conns
            .lock()
            .expect("tracker lock")
            .insert(id, (Instant::now(), state.clone()));
        (id, state)
    }

    fn remove(&self, id: u64) {
        self.conns.lock().expect("tracker lock").remove(&id);
        self.freed.notify_waiters();
    }

    /// Asks the connection that can best be spared to close: the oldest one that never sent a
    /// complete head, else the longest idle. Returns false when every connection is busy.
    fn evict_one(&self) -> bool {
        let conns = self.conns.lock().expect("tracker lock");
        let candidates = conns.values().filter(|(_, c)| {
            !c.closing.load(Ordering::Relaxed) && c.active.load(Ordering::Relaxed) == 0
        });
        let pick = candidates.min_by_key(|(accepted, c)| {
            if c.served.load(Ordering::Relaxed) {
                (1, c.idle_since.load(Ordering::Relaxed), *accepted)
            } else {
                (0, 0, *accepted)
            }
        });
        match pick {
            Some((_, c)) => {
                close(c);
                true
            }
            None => false,
        }
    }

    /// Closes connections past their header-read or idle timeout; returns how many of each.
    fn reap(&self, limits: &Limits) -> (u64, u64) {
        let now = Instant::now();
        let now_ns = self.now_ns();
        let idle_ns = u64::try_from(limits.idle_timeout.as_nanos()).unwrap_or(u64::MAX);
        let (mut header, mut idle) = (0, 0);
        for (accepted, c) in self.conns.lock().expect("tracker lock").values() {
            if c.closing.load(Ordering::Relaxed) || c.active.load(Ordering::Relaxed) > 0 {
                continue;
            }
            if !c.served.load(Ordering::Relaxed) {
                if now.duration_since(*accepted) >= limits.header_read_timeout {
                    close(c);
                    header += 1;
                }
            } else if now_ns.saturating_sub(c.idle_since.load(Ordering::Relaxed)) >= idle_ns {
                close(c);
                idle += 1;
            }
        }
        (header, idle)
    }
}

fn close(c: &ConnState) {
    c.closing.store(true, Ordering::Relaxed);
    c.close.notify_one();
}

/// Marks a request in flight on its connection until dropped (when its response body ends).
#[derive(Debug)]
struct InFlight {
    conn: Arc<ConnState>,
    tracker: Arc<Tracker>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn
            .idle_since
            .store(self.tracker.now_ns(), Ordering::Relaxed);
        self.conn.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request counted as in flight until it ends.
struct TrackedBody {
    inner: Body,
    in_flight: Option<InFlight>,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.in_flight = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Sends small writes (SSE events, the end of a chunked body) at once: without it, Nagle's
/// algorithm and the client's delayed ACK add ~40 ms to the end of every stream.
fn set_nodelay(tcp: &tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY not set");
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains for up to
/// `server.drain_timeout`. Returns whether every connection finished in time.
pub(super) async fn run(
    listener: TcpListener,
    live: Arc<Live>,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<bool> {
    // Connection settings are read once, at start (a reload reports them as restart-only);
    // metrics series are the same in every runtime.
    let limits = Limits::of(&live.current().config.server);
    let metrics = live.current().recorder.metrics.clone();
    let metrics = &metrics;
    let tracker = Arc::new(Tracker {
        epoch: Instant::now(),
        conns: Mutex::new(HashMap::new()),
        freed: Notify::new(),
        next: AtomicU64::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let reaper = {
        let tracker = tracker.clone();
        let metrics = metrics.clone();
        let mut stop = stop_rx.clone();
        let tick = (limits.header_read_timeout.min(limits.idle_timeout) / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        tokio::spawn(async move {
            let mut every = tokio::time::interval(tick);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = stop.changed() => return,
                }
                let (header, idle) = tracker.reap(&limits);
                let m = &metrics;
                m.connections_closed(CloseReason::HeaderTimeout.label(), header);
                m.connections_closed(CloseReason::IdleTimeout.label(), idle);
            }
        })
    };
    // One permit per open connection, held by its task until the socket is closed.
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                // At the cap: ask the connection that can best be spared to close, and take its
                // slot when it has (or any other that frees first).
                if tracker.evict_one() {
                    metrics.connections_closed(CloseReason::Evicted.label(), 1);
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                    _ = &mut shutdown => return drain(live, tracker, stop_tx, reaper).await,
                }
            }
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of descriptors or a connection reset before accept: back off briefly.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        set_nodelay(&tcp);
        let (id, conn) = tracker.add();
        metrics.connections_open.inc();
        tokio::spawn(serve_connection(
            tcp,
            app.clone(),
            Slot {
                conn,
                id,
                tracker: tracker.clone(),
                _permit: slot,
            },
            stop_rx.clone(),
            metrics.clone(),
        ));
    }
    drop(listener);
    drain(live, tracker, stop_tx, reaper).await
}

/// Stops accepting, asks every connection to finish, and waits up to the drain timeout.
async fn drain(
    live: Arc<Live>,
    tracker: Arc<Tracker>,
    stop: watch::Sender<bool>,
    reaper: tokio::task::JoinHandle<()>,
) -> std::io::Result<bool> {
    let state = live.current();
    let drain = state.config.server.drain_timeout;
    state.start_draining();
    tracing::info!(
        drain_ms = drain.as_millis() as u64,
        "shutting down, draining in-flight requests"
    );
    let _ = stop.send(true);
    let _ = reaper.await;
    let done = async {
        while tracker.len() > 0 {
            let freed = tracker.freed.notified();
            if tracker.len() == 0 {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), freed).await;
        }
    };
    match tokio::time::timeout(drain, done).await {
        Ok(()) => Ok(true),
        Err(_) => {
            tracing::warn!("drain timeout reached; closing remaining connections");
            Ok(false)
        }
    }
}

/// A connection's place: its shared state, its entry in the tracker and its permit.
struct Slot {
    conn: Arc<ConnState>,
    id: u64,
    tracker: Arc<Tracker>,
    _permit: OwnedSemaphorePermit,
}

/// Drives one connection until it ends, the router closes it, or shutdown drains it.
async fn serve_connection(
    tcp: tokio::net::TcpStream,
    app: Router,
    slot: Slot,
    mut stop: watch::Receiver<bool>,
    metrics: Metrics,
) {
    let (conn, id, tracker) = (slot.conn.clone(), slot.id, slot.tracker.clone());
    let service = {
        let conn = conn.clone();
        let tracker = tracker.clone();
        hyper::service::service_fn(move |req: http::Request<Incoming>| {
            conn.active.fetch_add(1, Ordering::Relaxed);
            conn.served.store(true, Ordering::Relaxed);
            let in_flight = InFlight {
                conn: conn.clone(),
                tracker: tracker.clone(),
            };
            let mut app = app.clone();
            async move {
                let resp = match app.call(req.map(Body::new)).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                };
                Ok::<_, std::convert::Infallible>(resp.map(|inner| TrackedBody {
                    inner,
                    in_flight: Some(in_flight),
                }))
            }
        })
    };
    {
        let http = hyper::server::conn::http1::Builder::new();
        let connection = http.serve_connection(TokioIo::new(tcp), service);
        tokio::pin!(connection);
        let mut draining = *stop.borrow();
        if draining {
            connection.as_mut().graceful_shutdown();
        }
        loop {
            tokio::select! {
                res = connection.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    break;
                }
                _ = conn.close.notified() => break,
                changed = stop.changed(), if !draining => {
                    draining = true;
                    if changed.is_ok() {
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        }
        // The connection (and its socket) is dropped here, before its slot is given back.
    }
    tracker.remove(id);
    metrics.connections_open.dec();
    drop(slot);
}

impl CloseReason {
    fn label(self) -> &'static str {
        match self {
            CloseReason::HeaderTimeout => "header_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::Evicted => "evicted",
        }
    }
}
