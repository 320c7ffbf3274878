//! `/healthz`, `/readyz` and `/metrics` over HTTP/1.1, for probes and Prometheus. Nothing else
//! is served; the listener stops with the daemon.
//!
//! Whoever can reach the port is a stranger: every connection must send its request headers
//! within [`HEADERS`], is served one request and closed, and lives at most [`LIFETIME`]; at most
//! the budget's probe connections (128, fewer under a low open-file limit: see
//! `descriptors`) are open at once, and a new one closes the oldest, so that a flood of idle or
//! slow connections can neither exhaust the process's file descriptors nor keep a probe from
//! being answered. A failure to accept is the listener's problem, logged as such (at most once
//! a minute), never mistaken for anything else.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::health::Health;
use crate::metrics::{self, Metrics};

/// How long a connection may take to send its request headers.
pub(super) const HEADERS: Duration = Duration::from_secs(5);
/// How long a connection may stay open at all.
pub(super) const LIFETIME: Duration = Duration::from_secs(30);
/// Largest request read (probes send a few hundred bytes).
const MAX_REQUEST: usize = 16 << 10;

/// Binds `listen`; returns the address bound (port 0 picks one).
pub(super) async fn bind(listen: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// The connections open now, oldest first, each closed by cancelling its token; and how many
/// may be.
struct Open {
    tokens: Mutex<VecDeque<CancellationToken>>,
    max: usize,
}

impl Open {
    /// Admits a new connection, closing the oldest one still open when at the cap.
    fn admit(&self) -> CancellationToken {
        let mut open = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|c| !c.is_cancelled());
        if open.len() >= self.max
            && let Some(oldest) = open.pop_front()
        {
            oldest.cancel();
        }
        let token = CancellationToken::new();
        open.push_back(token.clone());
        token
    }
}

/// Serves until `stop` is cancelled, at most `max_connections` at once.
pub(super) async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    stop: CancellationToken,
    max_connections: usize,
) {
    let tracker = TaskTracker::new();
    let open = Arc::new(Open {
        tokens: Mutex::default(),
        max: max_connections.max(1),
    });
    let mut last_complaint: Option<tokio::time::Instant> = None;
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    let now = tokio::time::Instant::now();
                    if last_complaint.is_none_or(|t| now - t >= Duration::from_secs(60)) {
                        tracing::warn!(%error, "the health listener cannot accept connections (probes may time out); retrying");
                        last_complaint = Some(now);
                    }
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let closed = open.admit();
        let (metrics, health, stop) = (metrics.clone(), health.clone(), stop.clone());
        tracker.spawn(async move {
            let service = service_fn(move |req| {
                let answer = route(&req, &metrics, &health);
                async move { Ok::<_, Infallible>(answer) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADERS)
                .keep_alive(false)
                .max_buf_size(MAX_REQUEST)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = closed.cancelled() => {}
                () = tokio::time::sleep(LIFETIME) => {}
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
                }
            }
            closed.cancel();
        });
    }
    tracker.close();
    tracker.wait().await;
}

fn route(req: &Request<Incoming>, metrics: &Metrics, health: &Health) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
    }
    match req.uri().path() {
        "/healthz" => match health.live() {
            Ok(()) => text(StatusCode::OK, "ok\n".into()),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        },
        "/readyz" => match health.ready() {
            Ok(None) => text(StatusCode::OK, "ready\n".into()),
            Ok(Some(note)) => text(StatusCode::OK, format!("ready; {note}\n")),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        },
        "/metrics" => {
            let mut response = text(StatusCode::OK, metrics.encode());
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            response
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /healthz, /readyz or /metrics\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
