//! Serving one TCP connection with hyper, so that a handler can end its own connection without
//! an answer: with a TCP reset (SO_LINGER 0), the one failure a client sees as no response at
//! all, or with a plain close. `axum::serve` cannot do either.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Lets a handler end its own connection without answering.
#[derive(Default)]
struct ConnControl {
    /// Close with SO_LINGER 0, so the peer gets a RST instead of a FIN.
    reset: AtomicBool,
    dropped: Notify,
}

/// Handed to handlers in the request's extensions.
#[derive(Clone)]
pub(crate) struct Connection(Arc<ConnControl>);

impl Connection {
    /// Drops the connection with a TCP reset: the client sees a connection error.
    pub(crate) fn reset(&self) {
        self.0.reset.store(true, Ordering::SeqCst);
        self.0.dropped.notify_one();
    }

    /// Drops the connection with a normal close and no response.
    pub(crate) fn close(&self) {
        self.0.dropped.notify_one();
    }
}

/// The TCP stream, which resets rather than closes when its connection was reset.
struct ResettableStream {
    stream: TcpStream,
    control: Arc<ConnControl>,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.control.reset.load(Ordering::SeqCst) {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

pub(crate) async fn serve_connection(stream: TcpStream, app: Router, shutdown: CancellationToken) {
    let control = Arc::new(ConnControl::default());
    let io = TokioIo::new(ResettableStream {
        stream,
        control: control.clone(),
    });
    let handle = Connection(control.clone());
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(handle.clone());
        app.clone().oneshot(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new());
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    // Returning drops the connection and with it the stream: a reset if one was asked for.
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = control.dropped.notified() => return,
        _ = shutdown.cancelled() => connection.as_mut().graceful_shutdown(),
    }
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = control.dropped.notified() => {}
    }
}
