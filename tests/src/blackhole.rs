//! A TCP proxy on loopback that can black-hole its traffic: while it does, every byte
//! in either direction is swallowed and no connection is closed, the way a dead network
//! path looks to the two ends (nothing arrives, nothing fails).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, tcp::OwnedReadHalf, tcp::OwnedWriteHalf},
    task::JoinHandle,
};

/// A running proxy to one upstream address; stops when dropped.
pub struct BlackholeProxy {
    pub address: SocketAddr,
    swallowing: Arc<AtomicBool>,
    accepting: JoinHandle<()>,
}

impl BlackholeProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let swallowing = Arc::new(AtomicBool::new(false));
        let flag = swallowing.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, flag.clone()));
                tokio::spawn(pump(server_read, client_write, flag.clone()));
            }
        });
        Ok(Self {
            address,
            swallowing,
            accepting,
        })
    }

    /// From now on, swallow everything.
    pub fn black_hole(&self) {
        self.swallowing.store(true, Ordering::SeqCst);
    }

    /// From now on, forward again (connections that lost bytes are broken for good).
    pub fn heal(&self) {
        self.swallowing.store(false, Ordering::SeqCst);
    }
}

impl Drop for BlackholeProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, swallowing: Arc<AtomicBool>) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if swallowing.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
