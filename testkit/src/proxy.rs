//! A TCP link that a test can cut and restore, to give one component a PostgreSQL (or any
//! service) outage while the shared server keeps serving every other test running in parallel.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The link's state, as every connection sees it.
#[derive(Clone, Copy)]
struct Link {
    up: bool,
    /// How many times the link was cut: a connection dies when this moves past the value it was
    /// accepted under, even if the link is already restored by the time it notices.
    cuts: u64,
}

/// Forwards every connection to its address to a target, until [`cut`](TcpProxy::cut).
/// Dropping it closes the listener and every forwarded connection.
pub struct TcpProxy {
    addr: SocketAddr,
    link: watch::Sender<Link>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (link, watching) = watch::channel(Link { up: true, cuts: 0 });
        tokio::spawn(accept(listener, target, watching));
        TcpProxy { addr, link }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Resets every open connection and, until [`restore`](TcpProxy::restore), every new one as
    /// soon as it is accepted: to clients the service is gone.
    pub fn cut(&self) {
        self.link.send_modify(|link| {
            link.up = false;
            link.cuts += 1;
        });
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.link.send_modify(|link| link.up = true);
    }
}

/// Accepts until the proxy is dropped (the watch's sender with it).
async fn accept(listener: TcpListener, target: SocketAddr, mut link: watch::Receiver<Link>) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            // Ends only when the proxy (the sender) is dropped.
            _ = async { while link.changed().await.is_ok() {} } => return,
        };
        let now = *link.borrow();
        if now.up {
            tokio::spawn(forward(stream, target, link.clone(), now.cuts));
        } else {
            reset(stream);
        }
    }
}

/// Copies both ways until either side closes, or resets the client once the link is cut after
/// `cuts` cuts or the proxy is dropped.
async fn forward(
    mut client: TcpStream,
    target: SocketAddr,
    mut link: watch::Receiver<Link>,
    cuts: u64,
) {
    let copied = async {
        let mut server = TcpStream::connect(target).await?;
        copy_bidirectional(&mut client, &mut server).await
    };
    let cut = tokio::select! {
        _ = copied => false,
        _ = async { let _ = link.wait_for(|link| link.cuts != cuts).await; } => true,
    };
    if cut {
        reset(client);
    }
}

/// Closes with a reset rather than a clean shutdown, as a crashed server or a broken network
/// looks to the client.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
}
