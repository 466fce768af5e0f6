//! A TCP proxy the test controls, between one daemon and the API server (the
//! seed's closed tunnel). TLS passes through untouched: the daemon still
//! talks to `https://127.0.0.1:<proxy port>`, for which the fixture's serving
//! certificate is valid.
//!
//! Besides a loud cut (connections closed, new ones refused), the proxy can
//! go silent, as lost NAT/conntrack or load-balancer state does: no FIN, no
//! RST, bytes just held. [`Proxy::freeze`] silences the connections open at
//! that moment and forwards new ones; [`Proxy::heal`] delivers what was held.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct State {
    upstream: SocketAddr,
    /// Guarded together with the connection list so that no connection is
    /// registered after a cut has closed the others.
    conns: Mutex<(bool, Vec<TcpStream>)>,
    stop: AtomicBool,
    refused: AtomicUsize,
    accepted: AtomicUsize,
    /// Connections are numbered as accepted; those numbered below this
    /// forward nothing (frozen).
    frozen_below: AtomicU64,
    next_id: AtomicU64,
}

impl State {
    fn silent(&self, id: u64) -> bool {
        id < self.frozen_below.load(Ordering::SeqCst)
    }
}

/// Forwards 127.0.0.1:`port` to the upstream until cut.
pub struct Proxy {
    pub port: u16,
    state: Arc<State>,
}

impl Proxy {
    /// A proxy to `upstream`, forwarding from the start.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let state = Arc::new(State {
            upstream,
            conns: Mutex::new((false, Vec::new())),
            stop: AtomicBool::new(false),
            refused: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            frozen_below: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
        });
        let st = state.clone();
        std::thread::Builder::new()
            .name(format!("e2e-proxy-{port}"))
            .spawn(move || accept_loop(listener, st))
            .expect("spawn proxy thread");
        Proxy { port, state }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Closes every open connection and refuses (accepts and closes at once)
    /// new ones until [`Proxy::heal`].
    pub fn cut(&self) {
        let mut guard = self.state.conns.lock().unwrap_or_else(|e| e.into_inner());
        guard.0 = true;
        for s in guard.1.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Silences the connections open now, in both directions (no FIN, no
    /// RST: bytes are held); new connections are forwarded normally.
    pub fn freeze(&self) {
        let next = self.state.next_id.load(Ordering::SeqCst);
        self.state.frozen_below.store(next, Ordering::SeqCst);
    }

    /// Forwards new connections again after a cut, and what frozen
    /// connections held.
    pub fn heal(&self) {
        self.state.conns.lock().unwrap_or_else(|e| e.into_inner()).0 = false;
        self.state.frozen_below.store(0, Ordering::SeqCst);
    }

    /// Connections refused while cut.
    pub fn refused(&self) -> usize {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// Connections forwarded.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.cut();
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_millis(200),
        );
    }
}

fn accept_loop(listener: TcpListener, st: Arc<State>) {
    for conn in listener.incoming() {
        if st.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = conn else { continue };
        if st.conns.lock().unwrap_or_else(|e| e.into_inner()).0 {
            st.refused.fetch_add(1, Ordering::SeqCst);
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let id = st.next_id.fetch_add(1, Ordering::SeqCst);
        let st2 = st.clone();
        // Connect upstream off the accept thread.
        std::thread::spawn(move || {
            let Ok(server) = TcpStream::connect_timeout(&st2.upstream, Duration::from_secs(2))
            else {
                let _ = client.shutdown(Shutdown::Both);
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            {
                let mut guard = st2.conns.lock().unwrap_or_else(|e| e.into_inner());
                if guard.0 {
                    st2.refused.fetch_add(1, Ordering::SeqCst);
                    let _ = client.shutdown(Shutdown::Both);
                    let _ = server.shutdown(Shutdown::Both);
                    return;
                }
                // Drop the closed ones now and then.
                guard.1.retain(|s| s.peer_addr().is_ok());
                for s in [&client, &server] {
                    if let Ok(c) = s.try_clone() {
                        guard.1.push(c);
                    }
                }
            }
            st2.accepted.fetch_add(1, Ordering::SeqCst);
            let (c2, s2) = match (client.try_clone(), server.try_clone()) {
                (Ok(c), Ok(s)) => (c, s),
                _ => return,
            };
            let st3 = st2.clone();
            std::thread::spawn(move || pump(c2, s2, &st3, id));
            pump(server, client, &st2, id);
        });
    }
}

/// Copies `from` to `to` until either side ends, then closes both. While
/// connection `id` is silent, nothing is read and what was read is held.
fn pump(mut from: TcpStream, mut to: TcpStream, st: &State, id: u64) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        if !hold_while_silent(st, id) {
            break;
        }
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if !hold_while_silent(st, id) || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Waits while connection `id` is silent; `false` when the proxy stops.
fn hold_while_silent(st: &State, id: u64) -> bool {
    while st.silent(id) {
        if st.stop.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    !st.stop.load(Ordering::SeqCst)
}
