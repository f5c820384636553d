//! One TCP fault proxy on loopback for every test that needs a bad network between
//! a client and an emulator: it can hold each new connection for a while (a slow
//! DynamoDB) or cut every connection and refuse new ones (a partition).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy in front of one upstream; it stops with the test's runtime.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`, to give a client as its endpoint.
    pub addr: String,
    /// Read by the accept loop: while true, new connections are closed at once.
    cut: Arc<AtomicBool>,
    /// Tells every open connection to drop both ends when a cut starts.
    cut_tx: watch::Sender<bool>,
    /// How long the accept loop holds each new connection before connecting upstream.
    delay_ms: Arc<AtomicU64>,
}

impl FaultProxy {
    /// Starts passing bytes through to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = format!("http://{}", listener.local_addr().expect("addr"));
        let (cut_tx, cut_rx) = watch::channel(false);
        let proxy = Self {
            addr,
            cut: Arc::default(),
            cut_tx,
            delay_ms: Arc::default(),
        };
        let (cut, delay) = (proxy.cut.clone(), proxy.delay_ms.clone());
        tokio::spawn(async move {
            loop {
                // An accept error (out of file descriptors) is passing: keep serving.
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if cut.load(Ordering::SeqCst) {
                    continue; // refused: closed at once
                }
                let wait = Duration::from_millis(delay.load(Ordering::SeqCst));
                tokio::spawn(pass(client, upstream.clone(), wait, cut_rx.clone()));
            }
        });
        proxy
    }

    /// Cuts every open connection and refuses new ones, or lets them through again.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
        let _ = self.cut_tx.send(cut);
    }

    /// Holds each new connection for `delay` before passing bytes through.
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.delay_ms.store(ms, Ordering::SeqCst);
    }
}

async fn pass(
    mut client: TcpStream,
    upstream: String,
    wait: Duration,
    mut cut: watch::Receiver<bool>,
) {
    tokio::time::sleep(wait).await;
    let Ok(mut server) = TcpStream::connect(&upstream).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cut.wait_for(|c| *c) => {} // drop both ends
    }
}
