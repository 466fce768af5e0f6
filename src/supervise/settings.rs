//! `[run]`: how `lease-elector run -- CMD` treats its child, owned here and
//! embedded in the daemon's settings.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error};

/// `[run]`: how `lease-elector run -- CMD` treats its child.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    /// Signal sent to the child's process group when leadership ends.
    pub stop_signal: StopSignal,
    /// Time between the stop signal and SIGKILL.
    #[serde(with = "crate::duration_serde")]
    pub grace_period: Duration,
    /// What to do when the child exits on its own.
    pub on_child_exit: OnChildExit,
    /// First delay before restarting a child that exited; doubles up to 30 s.
    #[serde(with = "crate::duration_serde")]
    pub restart_backoff: Duration,
    /// Label the own Pod `lease-elector.io/leader=true|false`.
    pub label_pod: bool,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            stop_signal: StopSignal::TERM,
            grace_period: Duration::from_secs(3),
            on_child_exit: OnChildExit::Recompete,
            restart_backoff: Duration::from_secs(1),
            label_pod: false,
        }
    }
}

/// What `lease-elector run` does when its child exits by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnChildExit {
    /// Release the Lease and compete again; the child restarts (with backoff)
    /// when leadership is won again.
    Recompete,
    /// Release the Lease and exit with the child's exit code.
    Exit,
}

/// A signal that stops a child gracefully, parsed from "SIGTERM", "TERM" or
/// "term". It keeps the spelling it was given, for `lease-elector config`.
#[derive(Debug, Clone)]
pub struct StopSignal {
    name: String,
    number: i32,
}

impl StopSignal {
    /// SIGTERM, the default.
    pub const TERM: StopSignal = StopSignal {
        name: String::new(),
        number: libc::SIGTERM,
    };

    /// Parses a signal name; `None` for anything but SIGTERM, SIGINT, SIGHUP,
    /// SIGQUIT, SIGUSR1 and SIGUSR2 (SIGKILL would give no grace).
    pub fn parse(name: &str) -> Option<StopSignal> {
        let number = parse_signal(name)?;
        Some(StopSignal {
            name: name.to_string(),
            number,
        })
    }

    /// The signal number.
    pub fn number(&self) -> i32 {
        self.number
    }
}

/// Equal when the signal is, however it was spelled.
impl PartialEq for StopSignal {
    fn eq(&self, other: &Self) -> bool {
        self.number == other.number
    }
}

impl Eq for StopSignal {}

impl fmt::Display for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.is_empty() {
            write!(f, "SIGTERM")
        } else {
            write!(f, "{}", self.name)
        }
    }
}

impl Serialize for StopSignal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StopSignal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        StopSignal::parse(&name).ok_or_else(|| {
            D::Error::custom(format!(
                "{name:?} is not one of SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2"
            ))
        })
    }
}

/// Parses "SIGTERM", "TERM" or "term" into a signal number.
pub fn parse_signal(name: &str) -> Option<i32> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    Some(match bare {
        "TERM" => libc::SIGTERM,
        "INT" => libc::SIGINT,
        "HUP" => libc::SIGHUP,
        "QUIT" => libc::SIGQUIT,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        _ => return None,
    })
}
