//! A notification target on a loopback port (a webhook receiver, Slack, WeCom, a GitHub- or
//! GitLab-shaped status API): it keeps every request it gets and answers 200, another status
//! ([`Receiver::answering`]), or never at all ([`Receiver::hanging`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::wire::{read_request, respond};

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Header names in lower case, with their values.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    stop: CancellationToken,
}

impl Receiver {
    /// Answers every request with 200.
    pub async fn start() -> Receiver {
        Receiver::with(Some(200)).await
    }

    /// Answers every request with `status`.
    pub async fn answering(status: u16) -> Receiver {
        Receiver::with(Some(status)).await
    }

    /// Reads every request and never answers.
    pub async fn hanging() -> Receiver {
        Receiver::with(None).await
    }

    async fn with(status: Option<u16>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot bind the receiver: {e}"));
        let url = match listener.local_addr() {
            Ok(addr) => format!("http://{addr}"),
            Err(e) => panic!("the receiver has no address: {e}"),
        };
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (kept, stop_) = (received.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let mut stream = tokio::select! {
                    () = stop_.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                };
                let (kept, stop) = (kept.clone(), stop_.clone());
                tokio::spawn(async move {
                    let served = async {
                        let Some((path, head, body)) = read_request(&mut stream).await else {
                            return;
                        };
                        let headers = head
                            .lines()
                            .skip(1)
                            .filter_map(|l| l.split_once(':'))
                            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                            .collect();
                        kept.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(Received {
                                path,
                                headers,
                                body,
                            });
                        match status {
                            Some(status) => respond(&mut stream, status, &[], b"{}").await,
                            None => tokio::time::sleep(Duration::from_secs(86_400)).await,
                        }
                    };
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = served => {}
                    }
                });
            }
        });
        Receiver {
            url,
            received,
            stop,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
