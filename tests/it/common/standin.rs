//! A stand-in for the service that misbehaves on purpose, on a loopback port: it answers each
//! call as the test's handler says, however wrong (a body without end, an answer to a
//! question nobody asked, silence, a 429). Written on raw TCP, so that nothing between it and
//! the client tidies the answer up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use subsync::testing::{read_request, respond};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How the stand-in answers one call.
#[derive(Debug, Clone)]
pub enum Reply {
    /// HTTP 200 with this JSON.
    Json(serde_json::Value),
    /// Any status, headers and body.
    Raw {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// HTTP 200 and a body that goes on for `bytes` (a JSON string that never closes), sent
    /// as fast as the client reads it, without a length.
    Endless { bytes: u64 },
    /// HTTP 200 and a subscriber page listing `items` subscribers, made as it is sent (so
    /// that the stand-in itself stays small), without a length.
    Items { items: u64 },
    /// Reads the request and says nothing, ever.
    Silence,
}

type Handler = dyn Fn(&str, &serde_json::Value) -> Reply + Send + Sync;

/// A running stand-in; stops when dropped.
pub struct StandIn {
    url: String,
    calls: Arc<Mutex<Vec<String>>>,
    stop: CancellationToken,
}

impl StandIn {
    /// Answers each call with `handler(command, body)`, on the servers' runtime.
    pub fn start(
        handler: impl Fn(&str, &serde_json::Value) -> Reply + Send + Sync + 'static,
    ) -> StandIn {
        super::block_on(StandIn::serving(Arc::new(handler)))
    }

    async fn serving(handler: Arc<Handler>) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot bind the stand-in: {e}"));
        let url = match listener.local_addr() {
            Ok(addr) => format!("http://{addr}"),
            Err(e) => panic!("the stand-in has no address: {e}"),
        };
        let calls = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (calls_, stop_) = (calls.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    () = stop_.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                };
                let (handler, calls, stop) = (handler.clone(), calls_.clone(), stop_.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = serve(stream, handler, calls) => {}
                    }
                });
            }
        });
        StandIn { url, calls, stop }
    }

    /// `http://127.0.0.1:PORT`, the base URL to give subsync.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many calls of `command` arrived.
    pub fn calls(&self, command: &str) -> usize {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|c| *c == command)
            .count()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(mut stream: TcpStream, handler: Arc<Handler>, calls: Arc<Mutex<Vec<String>>>) {
    let Some((path, _, body)) = read_request(&mut stream).await else {
        return;
    };
    let command = path
        .split('?')
        .next()
        .and_then(|p| p.rsplit('/').next())
        .unwrap_or("")
        .to_owned();
    calls
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(command.clone());
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    match handler(&command, &body) {
        Reply::Json(value) => {
            let body = value.to_string().into_bytes();
            respond(&mut stream, 200, &[], &body).await;
        }
        Reply::Raw {
            status,
            headers,
            body,
        } => respond(&mut stream, status, &headers, &body).await,
        Reply::Endless { bytes } => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"ActionStatus\":\"OK\",\"ErrorCode\":0,\"Filler\":\"";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b'x'; 64 << 10];
            let mut sent = 0u64;
            while sent < bytes {
                if stream.write_all(&chunk).await.is_err() {
                    return;
                }
                sent += chunk.len() as u64;
            }
        }
        Reply::Items { items } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{{\"ActionStatus\":\"OK\",\"ErrorCode\":0,\"Next\":\"\",\"SubscriberNum\":{items},\"SubscriberList\":["
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let mut chunk = String::new();
            for i in 0..items {
                let comma = if i + 1 < items { "," } else { "" };
                chunk.push_str(&format!("{{\"Subscriber_Account\":\"u{i}\"}}{comma}"));
                if chunk.len() > 64 << 10 {
                    if stream.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                    chunk.clear();
                }
            }
            chunk.push_str("]}");
            let _ = stream.write_all(chunk.as_bytes()).await;
        }
        Reply::Silence => tokio::time::sleep(Duration::from_secs(86_400)).await,
    }
}

/// A TCP port that accepts connections and never says a word (a server that hangs, a
/// misrouted load balancer). Connections are held until this is dropped.
pub struct Mute {
    pub port: u16,
    stop: CancellationToken,
}

impl Mute {
    /// Listens on the servers' runtime.
    pub fn start() -> Mute {
        super::block_on(Mute::listening())
    }

    async fn listening() -> Mute {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot bind: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let stop = CancellationToken::new();
        let stop_ = stop.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                tokio::select! {
                    () = stop_.cancelled() => return,
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            held.push(stream);
                        }
                    }
                }
            }
        });
        Mute { port, stop }
    }
}

impl Drop for Mute {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
