//! A `/leader/stream` client: reads a daemon's Server-Sent Events in a
//! thread of its own (HTTP/1.1 chunked, as curl reads them) and keeps every
//! event with the instant it arrived.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// One event as received.
#[derive(Debug, Clone)]
pub struct Event {
    pub at: Instant,
    pub id: u64,
    pub name: String,
    pub data: Value,
}

#[derive(Default)]
struct Received {
    events: Vec<Event>,
    ended: bool,
}

/// An open stream of one daemon.
pub struct EventStream {
    received: Arc<Mutex<Received>>,
    _reader: JoinHandle<()>,
}

impl EventStream {
    /// Opens `GET /leader/stream` on 127.0.0.1:`port`.
    pub fn open(port: u16) -> EventStream {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        let req = format!("GET /leader/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        s.write_all(req.as_bytes()).expect("send the request");
        let received = Arc::new(Mutex::new(Received::default()));
        let sink = received.clone();
        let reader = std::thread::spawn(move || read_events(BufReader::new(s), &sink));
        EventStream {
            received,
            _reader: reader,
        }
    }

    /// Every event so far, in order of arrival.
    pub fn events(&self) -> Vec<Event> {
        self.received.lock().unwrap().events.clone()
    }

    /// The first event named `name`.
    pub fn first(&self, name: &str) -> Option<Event> {
        self.events().into_iter().find(|e| e.name == name)
    }

    /// Whether the daemon ended the stream (the last chunk arrived).
    pub fn ended(&self) -> bool {
        self.received.lock().unwrap().ended
    }
}

fn read_events(mut r: BufReader<TcpStream>, sink: &Mutex<Received>) {
    let mut line = String::new();
    // the response head: the status line and headers, up to a blank line
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        assert!(
            !line.starts_with("HTTP/1.1") || line.contains(" 200 "),
            "{line}"
        );
        if line == "\r\n" {
            break;
        }
    }
    let mut pending = String::new();
    while let Some(chunk) = next_chunk(&mut r) {
        pending.push_str(&chunk);
        while let Some(end) = pending.find("\n\n") {
            let block: String = pending.drain(..end + 2).collect();
            record(&block, sink);
        }
    }
    sink.lock().unwrap().ended = true;
}

/// One chunk of a chunked body; `None` at the last chunk or a closed socket.
fn next_chunk(r: &mut BufReader<TcpStream>) -> Option<String> {
    let mut size = String::new();
    r.read_line(&mut size).ok()?;
    let n = usize::from_str_radix(size.trim(), 16).ok()?;
    if n == 0 {
        return None;
    }
    let mut data = vec![0; n + 2];
    r.read_exact(&mut data).ok()?;
    data.truncate(n);
    String::from_utf8(data).ok()
}

fn record(block: &str, sink: &Mutex<Received>) {
    if block.starts_with(':') {
        return; // a keep-alive comment
    }
    let field = |name: &str| block.lines().find_map(|l| l.strip_prefix(name));
    let event = Event {
        at: Instant::now(),
        id: field("id: ").and_then(|v| v.parse().ok()).expect("id"),
        name: field("event: ").expect("event").to_string(),
        data: serde_json::from_str(field("data: ").expect("data")).expect("JSON data"),
    };
    sink.lock().unwrap().events.push(event);
}
