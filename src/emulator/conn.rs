//! Connections that can be killed from outside, over TCP or TLS.
//!
//! axum's graceful shutdown waits for every connection to finish, and a 1 GiB
//! download can take a while; the `drop_rate` fault must close a connection
//! without answering. Both need to kill a connection on demand, which hyper
//! does not offer. So the listener wraps every accepted socket in [`ConnIo`],
//! whose reads and writes fail as soon as the connection's token is
//! cancelled (the token is polled, so a connection idle in a read is woken).
//! The token is handed to handlers as [`Conn`] through axum's `ConnectInfo`.
//!
//! With TLS, the listener hands axum only connections whose handshake is
//! done, so axum never sees TLS. Subtle points:
//! - Each handshake runs in a task of its own, bounded by
//!   [`HANDSHAKE_TIMEOUT`] and by `stop`; finished ones come back through a
//!   channel that `accept` waits on together with the socket. A client that
//!   connects and says nothing cannot hold up the others.
//! - A failed handshake (plain HTTP sent to the TLS port, a client that
//!   rejects the certificate) only drops that connection, logged at debug.
//! - The kill token is made when the connection is handed to axum, after
//!   the handshake, as a child of `stop` like any other.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// How long a client may take over its TLS handshake before it is dropped.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection whose TLS handshake is done, with its peer (boxed: a rustls
/// connection is over a kilobyte).
type Handshaken = (Box<TlsStream<TcpStream>>, SocketAddr);

/// A TCP listener whose connections die when `stop` (or their own token) is
/// cancelled; with an acceptor, it serves TLS.
pub(crate) struct KillableListener {
    inner: TcpListener,
    stop: CancellationToken,
    tls: Option<TlsAcceptor>,
    done_tx: mpsc::Sender<Handshaken>,
    done: mpsc::Receiver<Handshaken>,
}

impl KillableListener {
    pub fn new(inner: TcpListener, stop: CancellationToken, tls: Option<TlsAcceptor>) -> Self {
        let (done_tx, done) = mpsc::channel(64);
        KillableListener {
            inner,
            stop,
            tls,
            done_tx,
            done,
        }
    }

    /// A connection ready for HTTP, with a fresh kill token.
    fn hand_over(&self, stream: Stream, peer: SocketAddr) -> (ConnIo, Conn) {
        let kill = self.stop.child_token();
        let io = ConnIo {
            stream,
            dead: Box::pin(kill.clone().cancelled_owned()),
            killed: false,
        };
        (io, Conn { peer, kill })
    }

    /// Run the handshake of `stream` in a task of its own; the stream comes
    /// back through `done` if it succeeds.
    fn handshake(&self, acceptor: TlsAcceptor, stream: TcpStream, peer: SocketAddr) {
        let done = self.done_tx.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let shake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let shaken = tokio::select! {
                r = shake => r,
                () = stop.cancelled() => return,
            };
            match shaken {
                Ok(Ok(tls)) => {
                    // Fails only when the listener is gone: drop the stream.
                    let _ = done.send((Box::new(tls), peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// What a handler knows about its connection.
#[derive(Clone, Debug)]
pub(crate) struct Conn {
    #[allow(dead_code)]
    pub peer: SocketAddr,
    pub kill: CancellationToken,
}

/// What `accept` waited for.
enum Event {
    Accepted(io::Result<(TcpStream, SocketAddr)>),
    Handshaken(Handshaken),
}

impl Listener for KillableListener {
    type Io = ConnIo;
    type Addr = Conn;

    async fn accept(&mut self) -> (ConnIo, Conn) {
        loop {
            // Both are cancel-safe: what the branch not taken was waiting
            // for stays for the next turn.
            let event = tokio::select! {
                Some(done) = self.done.recv() => Event::Handshaken(done),
                accepted = self.inner.accept() => Event::Accepted(accepted),
            };
            match event {
                Event::Handshaken((tls, peer)) => return self.hand_over(Stream::Tls(tls), peer),
                Event::Accepted(Ok((stream, peer))) => {
                    let _ = stream.set_nodelay(true);
                    match &self.tls {
                        None => return self.hand_over(Stream::Plain(stream), peer),
                        Some(acceptor) => self.handshake(acceptor.clone(), stream, peer),
                    }
                }
                Event::Accepted(Err(e)) => {
                    // EMFILE and friends: wait a little instead of spinning.
                    tracing::debug!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Conn> {
        Ok(Conn {
            peer: self.inner.local_addr()?,
            kill: self.stop.clone(),
        })
    }
}

impl Connected<IncomingStream<'_, KillableListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A socket that fails every read and write once its token is cancelled.
pub(crate) struct ConnIo {
    stream: Stream,
    dead: Pin<Box<WaitForCancellationFutureOwned>>,
    killed: bool,
}

impl ConnIo {
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if !self.killed && self.dead.as_mut().poll(cx).is_ready() {
            self.killed = true;
        }
        if self.killed {
            Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection killed by the emulator",
            ))
        } else {
            Ok(())
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The bytes under HTTP: the socket itself, or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
