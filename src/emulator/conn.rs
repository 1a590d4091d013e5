//! Connections that can be killed from outside.
//!
//! axum's graceful shutdown waits for every connection to finish, and a 1 GiB
//! download can take a while; the `drop_rate` fault must close a connection
//! without answering. Both need to kill a connection on demand, which hyper
//! does not offer. So the listener wraps every accepted socket in [`ConnIo`],
//! whose reads and writes fail as soon as the connection's token is
//! cancelled (the token is polled, so a connection idle in a read is woken).
//! The token is handed to handlers as [`Conn`] through axum's `ConnectInfo`.

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
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// A TCP listener whose connections die when `stop` (or their own token) is cancelled.
pub(crate) struct KillableListener {
    pub inner: TcpListener,
    pub stop: CancellationToken,
}

/// What a handler knows about its connection.
#[derive(Clone, Debug)]
pub(crate) struct Conn {
    #[allow(dead_code)]
    pub peer: SocketAddr,
    pub kill: CancellationToken,
}

impl Listener for KillableListener {
    type Io = ConnIo;
    type Addr = Conn;

    async fn accept(&mut self) -> (ConnIo, Conn) {
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let kill = self.stop.child_token();
                    let io = ConnIo {
                        stream,
                        dead: Box::pin(kill.clone().cancelled_owned()),
                        killed: false,
                    };
                    return (io, Conn { peer, kill });
                }
                Err(e) => {
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
    stream: TcpStream,
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
