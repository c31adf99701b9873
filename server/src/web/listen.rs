//! The HTTP accept loop: a cap on connections per client address, a deadline for request heads
//! (from the first byte on; it also ends idle keep-alive connections), and a graceful stop.
//!
//! `axum::serve` has neither: a client that opens connections and sends nothing (or half a
//! request) could hold them for minutes, up to the process's limit on open files.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use dashmap::DashMap;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::sms::guard::ip_key;

/// Limits on client connections.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A connection must send a complete request head within this long of opening, and of its
    /// previous response (so an idle keep-alive connection is closed after it too).
    pub header_timeout: Duration,
    /// Open connections (sockets included) per client address (an IPv6 /64 counts as one);
    /// 0 for no cap.
    pub per_address: usize,
    /// Proxies: all their clients arrive from their address, so they are not capped.
    pub trusted: Vec<ipnet::IpNet>,
}

/// Open connections per address; an entry leaves the map with its last connection.
#[derive(Default)]
struct Counts(DashMap<IpAddr, usize>);

/// One counted connection; gives its place back when dropped (with the socket, wherever the
/// socket went: a WebSocket upgrade carries it along).
struct Slot {
    counts: Arc<Counts>,
    key: IpAddr,
}

impl Counts {
    fn take(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<Slot> {
        let key = ip_key(ip);
        let mut n = self.0.entry(key).or_insert(0);
        if cap > 0 && *n >= cap {
            return None;
        }
        *n += 1;
        Some(Slot { counts: self.clone(), key })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counts.0.remove_if_mut(&self.key, |_, n| {
            *n -= 1;
            *n == 0
        });
    }
}

/// A TCP stream that holds its connection's [`Slot`]. A watcher's socket keeps it after the
/// upgrade (see `web::upgrade`), shared by its task and the publisher.
pub struct Counted {
    tcp: TcpStream,
    _slot: Slot,
}

impl Counted {
    /// The stream.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }
}

/// The publisher writes watchers' frames straight to the stream (`live::fanout`).
impl crate::live::fanout::Wire for Counted {
    fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.tcp.try_write_vectored(bufs)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp.poll_write_ready(cx)
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Waits until the first bytes of a connection show an HTTP/1 request. HTTP/2 (its preface) is
/// refused: AlertMe serves HTTP/1.1, which every browser and proxy speaks for WebSockets.
async fn speaks_http1(tcp: &TcpStream) -> io::Result<()> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut buf = [0u8; PREFACE.len()];
    loop {
        let n = tcp.peek(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if buf[..n] != PREFACE[..n] {
            return Ok(());
        }
        if n == PREFACE.len() {
            return Err(io::Error::other("HTTP/2 is not served"));
        }
        // A prefix of the preface so far: peek answers at once with the same bytes, so wait.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long a stop waits for requests in flight (sockets are not waited for).
const DRAIN: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let counts = Arc::new(Counts::default());
    // HTTP/1 only, served by hyper itself: an upgraded connection then hands back our own
    // stream type (hyper-util's auto builder wraps it in a private one), which is what lets the
    // publisher write to watchers' sockets directly.
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let (connections, stopping) = (TaskTracker::new(), CancellationToken::new());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let ip = peer.ip().to_canonical();
        let cap = if limits.trusted.iter().any(|n| n.contains(&ip)) { 0 } else { limits.per_address };
        let Some(slot) = counts.take(ip, cap) else {
            tracing::debug!("connection refused: too many open from one address");
            continue;
        };
        // Every frame is written when it is ready; Nagle's algorithm would hold a second small
        // write until the peer acknowledges the first, up to a delayed-ACK timeout (200 ms).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
        let (app, deadline) = (app.clone(), limits.header_timeout);
        let service = tower::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            app.clone().oneshot(req)
        });
        let (builder, stopping) = (builder.clone(), stopping.clone());
        connections.spawn(async move {
            // hyper's head deadline starts only once the protocol is known: a client that
            // sends nothing (or creeps through the HTTP/2 preface) must not hold a connection,
            // nor a stop (it has no request in flight to finish).
            tokio::select! {
                // A request whose first bytes are here when the stop comes is served.
                biased;
                first = tokio::time::timeout(deadline, speaks_http1(&tcp)) => match first {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return tracing::debug!(error = %e, "connection closed before a request"),
                    Err(_) => return tracing::debug!("connection closed: no request within the deadline"),
                },
                () = stopping.cancelled() => return,
            }
            let conn = builder
                .serve_connection(
                    TokioIo::new(Counted { tcp, _slot: slot }),
                    TowerToHyperService::new(service),
                )
                .with_upgrades();
            tokio::pin!(conn);
            // A stop lets the request in flight finish and ends keep-alive; an upgraded
            // connection has left hyper already (its socket closes on its own).
            let ended = tokio::select! {
                r = conn.as_mut() => r,
                () = stopping.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    stopping.cancel();
    connections.close();
    if tokio::time::timeout(DRAIN, connections.wait()).await.is_err() {
        tracing::warn!("requests still running after {DRAIN:?}; stopping anyway");
    }
    Ok(())
}
