//! The invariants, checked over one run's journal and the server's commits.
//!
//! A candidate *acts as leader* while it holds a Leadership whose token is not
//! cancelled and which is still within its validity: the send instant of its
//! last successful renew (as its status reported it) plus lease_duration less
//! the clock-rate bound on both sides ([`Schedule::validity`]). A
//! paused candidate's token stays uncancelled, but once the validity has
//! passed it is no longer counted: a library user must not act on it
//! (issue 10, defect 2, asks for `Leadership::valid_until()` for that). Its
//! child is another matter: a child runs on while its parent is paused, and
//! every child run counts, valid or not.

use std::time::Duration;

use tokio::time::Instant;

use crate::faults::Schedule;
use crate::world::Outcome;

/// A broken invariant.
#[derive(Debug, Clone)]
pub struct Violation {
    pub rule: &'static str,
    pub detail: String,
}

/// What the checker found in one run.
#[derive(Debug, Default)]
pub struct Report {
    pub violations: Vec<Violation>,
    /// Most candidates acting as leader at one instant.
    pub max_leaders: usize,
    /// Most children running at one instant.
    pub max_children: usize,
    pub terms: usize,
    pub commits: usize,
    /// Time from the end of the faults to a leader (None: none within the bound).
    pub recovery: Option<Duration>,
}

/// A half-open interval [start, end) owned by `owner`.
#[derive(Debug, Clone, Copy)]
struct Span {
    owner: usize,
    candidate: usize,
    start: Instant,
    end: Instant,
}

/// Most spans open at one instant, and the first overlap of two owners.
fn sweep(spans: &mut [Span]) -> (usize, Option<(Span, Span)>) {
    spans.sort_by_key(|s| (s.start, s.end));
    let mut most = 0;
    let mut first = None;
    for (i, a) in spans.iter().enumerate() {
        let open = spans[..=i].iter().filter(|b| b.end > a.start).count();
        most = most.max(open);
        if first.is_none()
            && let Some(b) = spans[..i]
                .iter()
                .find(|b| b.end > a.start && b.owner != a.owner)
        {
            first = Some((*b, *a));
        }
    }
    (most, first)
}

fn at(o: &Outcome, t: Instant) -> f64 {
    (t - o.origin).as_secs_f64()
}

/// Checks every invariant of one run.
pub fn check(schedule: &Schedule, o: &Outcome) -> Report {
    let mut r = Report {
        terms: o.journal.terms.len(),
        commits: o.commits.len(),
        ..Report::default()
    };
    let mut fail = |rule, detail: String| r.violations.push(Violation { rule, detail });
    let validity = schedule.validity();

    // Acting spans: uncancelled and within validity.
    let mut acting = Vec::new();
    for (i, t) in o.journal.terms.iter().enumerate() {
        let end = t.ended.unwrap_or(o.finished);
        for (k, (noticed, sent)) in t.renewals.iter().enumerate() {
            let next = t.renewals.get(k + 1).map_or(end, |n| n.0);
            let span = Span {
                owner: i,
                candidate: t.candidate,
                start: (*noticed).max(t.started),
                end: end.min(next).min(*sent + validity),
            };
            if span.end > span.start {
                acting.push(span);
            }
        }
    }
    let (most, overlap) = sweep(&mut acting.clone());
    r.max_leaders = most;
    if let Some((a, b)) = overlap {
        fail(
            "two_leaders",
            format!(
                "c{} (term {}, from {:.3}s) and c{} (term {}, from {:.3}s) both act as leader at {:.3}s",
                a.candidate,
                o.journal.terms[a.owner].fencing_token,
                at(o, a.start),
                b.candidate,
                o.journal.terms[b.owner].fencing_token,
                at(o, b.start),
                at(o, b.start)
            ),
        );
    }

    // Children: every run counts, whether its parent can still act or not.
    let mut children: Vec<Span> = o
        .journal
        .children
        .iter()
        .enumerate()
        .map(|(i, c)| Span {
            owner: i,
            candidate: c.candidate,
            start: c.started,
            end: c.stopped.unwrap_or(o.finished),
        })
        .filter(|s| s.end > s.start)
        .collect();
    let (most, overlap) = sweep(&mut children);
    r.max_children = most;
    if let Some((a, b)) = overlap {
        fail(
            "two_children",
            format!(
                "c{}'s child ({:.3}s..{:.3}s) still runs when c{}'s starts at {:.3}s",
                a.candidate,
                at(o, a.start),
                at(o, a.end),
                b.candidate,
                at(o, b.start)
            ),
        );
    }

    // Fencing: leaseTransitions never decreases; a new holder's term has a larger token.
    for w in o.commits.windows(2) {
        if w[1].transitions < w[0].transitions {
            fail(
                "transitions_decrease",
                format!(
                    "c{} wrote leaseTransitions {} after {} at {:.3}s",
                    w[1].writer,
                    w[1].transitions,
                    w[0].transitions,
                    at(o, w[1].at)
                ),
            );
            break;
        }
    }
    let mut terms: Vec<_> = o.journal.terms.iter().collect();
    terms.sort_by_key(|t| t.started);
    for w in terms.windows(2) {
        let (a, b) = (w[0], w[1]);
        let grows = if a.candidate == b.candidate {
            b.fencing_token >= a.fencing_token
        } else {
            b.fencing_token > a.fencing_token
        };
        if !grows {
            fail(
                "fencing_token",
                format!(
                    "c{}'s term from {:.3}s has fencing token {} after c{}'s {}",
                    b.candidate,
                    at(o, b.started),
                    b.fencing_token,
                    a.candidate,
                    a.fencing_token
                ),
            );
            break;
        }
    }

    // Liveness: a leader within the bound after the faults stop.
    let deadline = o.faults_end + schedule.liveness_bound();
    let first = acting
        .iter()
        .filter(|s| s.end > o.faults_end && s.start <= deadline)
        .map(|s| s.start.max(o.faults_end))
        .min();
    r.recovery = first.map(|t| t - o.faults_end);
    if first.is_none() {
        fail(
            "no_leader",
            format!(
                "no leader by {:.3}s, {:.3}s after the faults stopped",
                at(o, deadline),
                schedule.liveness_bound().as_secs_f64()
            ),
        );
    } else if !acting
        .iter()
        .any(|s| s.start < o.finished && s.end >= o.finished)
    {
        fail(
            "no_leader",
            format!(
                "no leader at the end of the run ({:.3}s)",
                at(o, o.finished)
            ),
        );
    }

    for p in &o.journal.panics {
        fail("panic", p.clone());
    }
    r
}
