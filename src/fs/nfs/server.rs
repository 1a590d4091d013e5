//! The NFSv3 server: MOUNT and NFS on one loopback TCP port, no
//! portmapper, so a client is pointed at it with `port=` and `mountport=`.
//!
//! The protocol is `nfs3_server`'s (Vaiz/nfs3, a maintained fork of
//! xet-core's nfsserve). Its own accept loop gives the filesystem no way to
//! know who connected, so this module runs its own, through the crate's
//! `__test_reexports` (which is why the crate is pinned exactly):
//! - each connection gets a filesystem value that knows the client's address,
//!   so calls from an unprivileged source port can be refused (kernel NFS
//!   clients use reserved ports, and any local user can open an
//!   unprivileged one), each with an RPC auth error;
//! - each connection's RPC record marks are checked before the crate sees
//!   them ([`Capped`]): the crate allocates whatever length a fragment
//!   declares, before any auth check, so one local user could otherwise make
//!   it allocate gigabytes;
//! - an accept error never stops the server.
//!
//! The crate is a vendored copy (`vendor/nfs3_server`, one change in
//! `vendor/nfs3_server-null-any-auth.patch`): the NULL procedure is answered
//! whatever the credentials, since a Linux kernel's first call is NULL under
//! AUTH_NONE; every other call goes through [`Shared::authorize`].
//!
//! All connections share one context, so a handle from the MOUNT
//! connection works on the NFS one, and its generation (the server's start
//! time) makes a handle of an earlier server NFS3ERR_STALE.

use super::{NfsFs, Peer, Shared};
use crate::fs::core::Fs;
use nfs3_server::test_reexports::{process_socket, RPCContext};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The export clients mount: `127.0.0.1:/importfs`.
pub const EXPORT: &str = "/importfs";

/// The largest RPC fragment a client may send: a 1 MiB WRITE (the most
/// `fsinfo` offers) and its headers, with room to spare.
const MAX_FRAGMENT: u32 = 4 << 20;

/// How often idle read handles and write sessions are looked for.
const REAP_EVERY: Duration = Duration::from_secs(1);

/// Who may use the server, beyond being on this machine.
#[derive(Debug, Clone, Copy)]
pub struct NfsOptions {
    /// Let clients in from unprivileged source ports (user-space clients,
    /// such as libnfs's tools run by a user). Off by default.
    pub allow_unprivileged_ports: bool,
    /// The uid whose AUTH_SYS credentials are accepted, besides root's: the
    /// user serving the mount.
    pub uid: u32,
}

/// A bound server, not yet serving.
pub struct NfsServer {
    listener: TcpListener,
    shared: Arc<Shared>,
    base: RPCContext<NfsFs>,
}

impl NfsServer {
    /// Bind `addr`, which must be a loopback address (port 0 picks one).
    pub async fn bind(addr: SocketAddr, fs: Arc<Fs>, opts: NfsOptions) -> io::Result<NfsServer> {
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{addr} is not a loopback address: the NFS server listens on this machine \
                     only (127.0.0.1), so that no other host can reach the account's files"
                ),
            ));
        }
        let listener = TcpListener::bind(addr).await?;
        let shared = Arc::new(Shared::new(fs, opts));
        let me = Arc::new(NfsFs {
            shared: shared.clone(),
            peer: Arc::new(Peer::new(listener.local_addr()?)),
        });
        let mut base = RPCContext::test_ctx(EXPORT, me);
        base.local_port = listener.local_addr()?.port();
        Ok(NfsServer {
            listener,
            shared,
            base,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `shutdown` completes; then send what open write
    /// sessions hold (as closes would) and release every handle.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let shared = self.shared.clone();
        let reaper = tokio::spawn(async move {
            loop {
                tokio::time::sleep(REAP_EVERY).await;
                shared.reap(false).await;
            }
        });
        tokio::select! {
            _ = shutdown => {}
            _ = self.accept_forever() => {}
        }
        reaper.abort();
        self.shared.reap(true).await;
    }

    async fn accept_forever(&self) {
        loop {
            let (socket, peer) = match self.listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and the like: wait, and go on serving.
                    tracing::warn!(error = %e, "accepting an NFS connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            tracing::debug!(client = %peer, "NFS connection");
            let mut ctx = self.base.clone();
            ctx.client_addr = peer.to_string();
            ctx.vfs = Arc::new(NfsFs {
                shared: self.shared.clone(),
                peer: Arc::new(Peer::new(peer)),
            });
            let _ = socket.set_nodelay(true);
            tokio::spawn(async move {
                if let Err(e) = process_socket(Capped::new(socket), ctx).await {
                    tracing::debug!(client = %peer, error = %e, "NFS connection closed");
                }
            });
        }
    }
}

/// A client's TCP stream, read through a check of its RPC record marks
/// (RFC 5531, 11): each fragment starts with 4 bytes, the top bit "last
/// fragment", the other 31 its length. A fragment longer than
/// [`MAX_FRAGMENT`] ends the connection before the crate sees its header.
struct Capped {
    inner: TcpStream,
    /// Bytes of the current fragment still to come.
    body_left: u32,
    /// The header being read, and how much of it has come.
    head: [u8; 4],
    head_len: usize,
}

impl Capped {
    fn new(inner: TcpStream) -> Capped {
        Capped {
            inner,
            body_left: 0,
            head: [0; 4],
            head_len: 0,
        }
    }

    /// Follow the record marks through `bytes`, just read.
    fn check(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = bytes.len().min(self.body_left as usize);
                self.body_left -= n as u32;
                bytes = &bytes[n..];
                continue;
            }
            self.head[self.head_len] = bytes[0];
            self.head_len += 1;
            bytes = &bytes[1..];
            if self.head_len == 4 {
                self.head_len = 0;
                let len = u32::from_be_bytes(self.head) & 0x7fff_ffff;
                if len > MAX_FRAGMENT {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("an RPC fragment of {len} bytes (at most {MAX_FRAGMENT})"),
                    ));
                }
                self.body_left = len;
            }
        }
        Ok(())
    }
}

impl AsyncRead for Capped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut me.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = buf.filled()[before..].to_vec();
                if let Err(e) = me.check(&new) {
                    tracing::warn!(error = %e, "closing an NFS connection");
                    buf.set_filled(before);
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl AsyncWrite for Capped {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(last: bool, len: u32) -> [u8; 4] {
        (len | if last { 1 << 31 } else { 0 }).to_be_bytes()
    }

    #[tokio::test]
    async fn record_marks_are_followed_across_reads_and_a_huge_one_refused() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        let mut c = Capped::new(s);
        let mut stream = Vec::new();
        stream.extend(mark(false, 3));
        stream.extend(b"abc");
        stream.extend(mark(true, 5));
        stream.extend(b"hello");
        // Any split of a valid stream passes.
        for cut in 0..stream.len() {
            c.check(&stream[..cut]).unwrap();
            c.check(&stream[cut..]).unwrap();
        }
        c.check(&mark(true, MAX_FRAGMENT)).unwrap();
        c.check(&vec![0; MAX_FRAGMENT as usize]).unwrap();
        let huge = mark(true, 0x7fff_fff0);
        c.check(&huge[..2]).unwrap();
        assert!(c.check(&huge[2..]).is_err(), "a 2 GiB fragment is refused");
    }
}
