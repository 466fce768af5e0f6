//! A tiny HTTP/1.1 GET over std's TcpStream, and a Prometheus text parser.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// GET `path` from 127.0.0.1:`port`; `(status, body)`.
pub fn get(port: u16, path: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err(std::io::Error::other(format!("no HTTP header in {text:?}")));
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Err(std::io::Error::other("chunked responses are not supported"));
    }
    Ok((status, body.to_string()))
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone)]
pub struct MetricLine {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl MetricLine {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the text exposition format (comments skipped).
pub fn parse_metrics(text: &str) -> Vec<MetricLine> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, labels, rest) = match line.find('{') {
            Some(open) => {
                let Some(close) = line.rfind('}') else {
                    continue;
                };
                (
                    &line[..open],
                    parse_labels(&line[open + 1..close]),
                    &line[close + 1..],
                )
            }
            None => match line.split_once(' ') {
                Some((n, r)) => (n, Vec::new(), r),
                None => continue,
            },
        };
        let Some(value) = rest.split_whitespace().next().and_then(|v| v.parse().ok()) else {
            continue;
        };
        out.push(MetricLine {
            name: name.to_string(),
            labels,
            value,
        });
    }
    out
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(',') | Some(' ')) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('"') {
            break;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.push((key.trim().to_string(), value));
    }
    out
}

/// The value of `name` whose labels include all of `labels`.
pub fn metric(lines: &[MetricLine], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    lines
        .iter()
        .find(|m| m.name == name && labels.iter().all(|(k, v)| m.label(k) == Some(*v)))
        .map(|m| m.value)
}

/// The sum of every series of `name` whose labels include all of `labels`.
pub fn metric_sum(lines: &[MetricLine], name: &str, labels: &[(&str, &str)]) -> f64 {
    lines
        .iter()
        .filter(|m| m.name == name && labels.iter().all(|(k, v)| m.label(k) == Some(*v)))
        .map(|m| m.value)
        .sum()
}
