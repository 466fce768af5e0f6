//! N candidates (real [`Elector`]s, in run mode with a simulated supervisor
//! and child) against the [`SimApiServer`], under tokio's paused clock, with
//! the faults of one [`Schedule`] applied on time.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use lease_elector::election::{
    ElectionConfig, Elector, Handles, LeaderEvent, Leadership, Status, Timings,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until, timeout_at};
use tokio_util::sync::CancellationToken;

use crate::api::{LinkFault, SimApiServer};
use crate::faults::{FaultKind, Schedule};

/// One term of one candidate, as the checker sees it.
#[derive(Debug, Clone)]
pub struct Term {
    pub candidate: usize,
    pub fencing_token: i32,
    /// When the elector reported `is_leader` (the Leadership was handed out).
    pub started: Instant,
    /// When its token was cancelled (is_leader dropped), or its process died.
    pub ended: Option<Instant>,
    /// (when it was reported, the send instant of the last successful renew).
    pub renewals: Vec<(Instant, Instant)>,
}

/// One run of a (simulated) child.
#[derive(Debug, Clone)]
pub struct ChildRun {
    pub candidate: usize,
    pub started: Instant,
    pub stopped: Option<Instant>,
}

/// What happened, for the checker.
#[derive(Debug, Default)]
pub struct Journal {
    pub terms: Vec<Term>,
    pub children: Vec<ChildRun>,
    pub panics: Vec<String>,
    /// Each candidate's open term, by incarnation.
    open: Vec<Option<(u32, usize)>>,
    kills: Vec<(usize, CancellationToken)>,
}

type Shared = Arc<Mutex<Journal>>;

fn lock(j: &Shared) -> MutexGuard<'_, Journal> {
    j.lock().unwrap_or_else(|e| e.into_inner())
}

impl Journal {
    /// The open term that acts as leader now, if any.
    fn acting_term(&self, validity: Duration) -> Option<usize> {
        let now = Instant::now();
        self.open.iter().flatten().map(|(_, t)| *t).find(|&t| {
            self.terms[t]
                .renewals
                .last()
                .is_some_and(|(_, sent)| *sent + validity > now)
        })
    }

    fn note(&mut self, who: usize, inc: u32, before: Option<&Status>, s: &Status) {
        let now = Instant::now();
        let leading = before.is_some_and(|b| b.is_leader);
        let last = before.and_then(|b| b.last_renew_at);
        if s.is_leader && !leading {
            self.end_open(who, inc, now);
            self.terms.push(Term {
                candidate: who,
                fencing_token: s.lease_transitions,
                started: now,
                ended: None,
                renewals: s.last_renew_at.map(|t| (now, t)).into_iter().collect(),
            });
            self.open[who] = Some((inc, self.terms.len() - 1));
        } else if !s.is_leader && leading {
            self.end_open(who, inc, now);
        } else if s.is_leader
            && s.last_renew_at != last
            && let Some(sent) = s.last_renew_at
            && let Some((i, t)) = self.open[who]
            && i == inc
        {
            self.terms[t].renewals.push((now, sent));
        }
    }

    /// Ends candidate `who`'s open term if it belongs to incarnation `inc`.
    fn end_open(&mut self, who: usize, inc: u32, now: Instant) {
        if let Some((i, t)) = self.open[who]
            && i == inc
        {
            self.open[who] = None;
            self.terms[t].ended.get_or_insert(now);
        }
    }
}

/// Stops polling a future while paused, as SIGSTOP stops a process.
#[derive(Clone, Default)]
pub struct Gate(Arc<Mutex<(u32, Option<Waker>)>>);

impl Gate {
    fn set(&self, paused: bool) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if paused {
            g.0 += 1;
        } else {
            // Saturating: a pause that began in an earlier incarnation ends here.
            g.0 = g.0.saturating_sub(1);
            if g.0 == 0
                && let Some(w) = g.1.take()
            {
                w.wake();
            }
        }
    }

    fn wrap<F: Future>(&self, inner: F) -> Gated<F> {
        Gated {
            gate: self.clone(),
            inner: Box::pin(inner),
        }
    }
}

struct Gated<F> {
    gate: Gate,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        {
            let mut g = self.gate.0.lock().unwrap_or_else(|e| e.into_inner());
            if g.0 > 0 {
                g.1 = Some(cx.waker().clone());
                return Poll::Pending;
            }
        }
        self.inner.as_mut().poll(cx)
    }
}

/// One live incarnation of a candidate.
struct Candidate {
    process: JoinHandle<()>,
    shutdown: CancellationToken,
    gate: Gate,
    incarnation: u32,
}

struct Ctx {
    who: usize,
    incarnation: u32,
    schedule: Arc<Schedule>,
    journal: Shared,
}

/// Candidate `who`'s timings on its clock: a clock at rate `r` makes every
/// wait last `d / r` of true time. lease_duration is what it writes into the
/// record, so it stays true; followers' waits are scaled by the server's view.
fn scaled_timings(base: Timings, rate: f64) -> Timings {
    Timings {
        lease_duration: base.lease_duration,
        renew_deadline: base.renew_deadline.div_f64(rate),
        retry_period: base.retry_period.div_f64(rate),
    }
}

/// Starts one incarnation of candidate `who`: the only place that builds an
/// [`Elector`] (and its metrics), so that API changes land in one spot.
fn spawn_candidate(server: &SimApiServer, ctx: Ctx) -> Candidate {
    let s = &ctx.schedule;
    let identity = format!("c{}", ctx.who);
    let config = ElectionConfig::new("sim", "default", &identity)
        .with_timings(scaled_timings(s.timings, s.clock_rates[ctx.who]))
        .with_release_on_cancel(true);
    // No metrics: the unit reporter. The resigner is not used here.
    let (elector, handles) = Elector::new(server.client(ctx.who), config, Arc::new(()));
    // The elector's retry jitter from the seed too: replays are exact.
    let jitter_seed =
        s.seed ^ 0x717e_0000_0000 ^ ((ctx.who as u64) << 24) ^ u64::from(ctx.incarnation);
    let mut jitter = StdRng::seed_from_u64(jitter_seed);
    let elector = elector.with_jitter_source(move || jitter.random::<f64>());
    let elector = match s.planted_bug {
        Some(bug) => elector.with_planted_bug(bug),
        None => elector,
    };
    let Handles { events, status, .. } = handles;
    let shutdown = CancellationToken::new();
    let gate = Gate::default();
    let incarnation = ctx.incarnation;
    tokio::spawn(track_status(
        status,
        ctx.who,
        ctx.incarnation,
        ctx.journal.clone(),
    ));
    let run = elector.run(shutdown.clone());
    let process = tokio::spawn(gate.wrap(async move {
        tokio::join!(run, supervisor(events, ctx));
    }));
    Candidate {
        process,
        shutdown,
        gate,
        incarnation,
    }
}

/// Journals term starts, renewals and ends from the elector's status, at the
/// instant they happen (the token is handed out and cancelled in the same
/// step as `is_leader` changes).
async fn track_status(mut status: watch::Receiver<Status>, who: usize, inc: u32, journal: Shared) {
    let mut before: Option<Status> = None;
    loop {
        let now_status = status.borrow_and_update().clone();
        lock(&journal).note(who, inc, before.as_ref(), &now_status);
        before = Some(now_status);
        if status.changed().await.is_err() {
            return;
        }
    }
}

/// Mirrors `supervise::supervise`: starts a child for every uncancelled
/// Leadership, stops it with SIGTERM when the token is cancelled, SIGKILL
/// at the end of the grace period or at the Leadership's validity instant,
/// whichever comes first (at once when it has passed, and at that instant
/// even when the token is never cancelled), and drops the Leadership once
/// the child is gone. The watchdog process is a task of its own, fed the
/// validity, that kills the child at that instant while the parent is
/// paused. In library mode the user winds its work down for a moment.
async fn supervisor(mut events: mpsc::UnboundedReceiver<LeaderEvent>, ctx: Ctx) {
    let seed = ctx.schedule.seed ^ ((ctx.who as u64) << 32) ^ u64::from(ctx.incarnation);
    let mut rng = StdRng::seed_from_u64(seed);
    while let Some(event) = events.recv().await {
        let LeaderEvent::StartedLeading(leadership) = event else {
            continue;
        };
        if leadership.token.is_cancelled() {
            continue;
        }
        if ctx.schedule.run_mode {
            let term_delay = ctx.schedule.grace.mul_f64(rng.random_range(0.0..1.5));
            let mut child = start_child(&ctx, term_delay);
            tokio::spawn(watchdog(leadership.validity(), child.kill.clone()));
            keep(&leadership, &mut child, ctx.schedule.grace).await;
        } else {
            leadership.token.cancelled().await;
            sleep(Duration::from_secs_f64(rng.random_range(0.0..1.0))).await;
        }
        drop(leadership);
    }
}

/// Mirrors `supervise::keep` and `supervise::stop`.
async fn keep(leadership: &Leadership, child: &mut Child, grace: Duration) {
    let mut validity = leadership.validity();
    loop {
        let valid_until = *validity.borrow_and_update();
        tokio::select! {
            biased;
            _ = sleep_until(valid_until) => break,
            _ = leadership.token.cancelled() => {
                let grace_end = (Instant::now() + grace).min(valid_until);
                if grace_end > Instant::now() {
                    child.term.cancel();
                    let _ = timeout_at(grace_end, &mut child.exited).await;
                }
                break;
            }
            Ok(()) = validity.changed() => {}
        }
    }
    child.kill.cancel();
}

/// The watchdog process: not paused with its parent; it hears of a new
/// validity only when the parent runs (a renew), and kills at the last one.
async fn watchdog(mut validity: watch::Receiver<Instant>, kill: CancellationToken) {
    loop {
        let valid_until = *validity.borrow_and_update();
        tokio::select! {
            biased;
            _ = kill.cancelled() => return,
            _ = sleep_until(valid_until) => { kill.cancel(); return; }
            Ok(()) = validity.changed() => {}
        }
    }
}

struct Child {
    term: CancellationToken,
    kill: CancellationToken,
    exited: oneshot::Receiver<()>,
}

/// A child process: its own task, so it runs on while its parent is paused.
/// SIGTERM makes it exit after `term_delay`; SIGKILL at once.
fn start_child(ctx: &Ctx, term_delay: Duration) -> Child {
    let term = CancellationToken::new();
    let kill = CancellationToken::new();
    let (done, exited) = oneshot::channel();
    let id = {
        let mut j = lock(&ctx.journal);
        j.children.push(ChildRun {
            candidate: ctx.who,
            started: Instant::now(),
            stopped: None,
        });
        j.kills.push((ctx.who, kill.clone()));
        j.children.len() - 1
    };
    let journal = ctx.journal.clone();
    let (t, k) = (term.clone(), kill.clone());
    tokio::spawn(async move {
        tokio::select! {
            biased;
            _ = k.cancelled() => {}
            _ = async { t.cancelled().await; sleep(term_delay).await } => {}
        }
        lock(&journal).children[id].stopped = Some(Instant::now());
        let _ = done.send(());
    });
    Child { term, kill, exited }
}

/// What the world does at one instant.
#[derive(Debug, Clone, Copy)]
enum Action {
    Start(FaultKind, usize),
    End(FaultKind, usize),
}

fn link_fault(kind: FaultKind) -> Option<LinkFault> {
    match kind {
        FaultKind::Partition => Some(LinkFault::Partitioned),
        FaultKind::RepliesLost => Some(LinkFault::RepliesLost),
        FaultKind::Refused => Some(LinkFault::Refused),
        FaultKind::ServerErrors => Some(LinkFault::ServerErrors),
        FaultKind::WatchDown => Some(LinkFault::WatchDown),
        _ => None,
    }
}

/// What one run leaves for the checker.
pub struct Outcome {
    pub journal: Journal,
    pub commits: Vec<crate::api::Commit>,
    pub counts: std::collections::BTreeMap<&'static str, u64>,
    pub origin: Instant,
    pub faults_end: Instant,
    pub finished: Instant,
}

struct World {
    server: SimApiServer,
    schedule: Arc<Schedule>,
    journal: Shared,
    candidates: Vec<Candidate>,
    finished: Vec<JoinHandle<()>>,
}

impl World {
    fn start(&mut self, who: usize, incarnation: u32) -> Candidate {
        spawn_candidate(
            &self.server,
            Ctx {
                who,
                incarnation,
                schedule: self.schedule.clone(),
                journal: self.journal.clone(),
            },
        )
    }

    /// The process dies: its children die with it (PDEATHSIG).
    fn kill(&mut self, who: usize) {
        let c = &self.candidates[who];
        c.process.abort();
        let now = Instant::now();
        let mut j = lock(&self.journal);
        j.end_open(who, c.incarnation, now);
        let kills: Vec<_> = j
            .kills
            .iter()
            .filter(|(w, _)| *w == who)
            .map(|(_, k)| k.clone())
            .collect();
        for k in kills {
            k.cancel();
        }
        j.kills.retain(|(w, _)| *w != who);
        for ch in j
            .children
            .iter_mut()
            .filter(|c| c.candidate == who && c.stopped.is_none())
        {
            ch.stopped = Some(now);
        }
    }

    /// A new incarnation with the same identity, once the old one is gone.
    fn restart(&mut self, who: usize) {
        if !self.candidates[who].process.is_finished() {
            self.kill(who);
        }
        let inc = self.candidates[who].incarnation + 1;
        let fresh = self.start(who, inc);
        let old = std::mem::replace(&mut self.candidates[who], fresh);
        self.finished.push(old.process);
    }

    async fn act(&mut self, action: Action) {
        match action {
            Action::Start(kind, who) => match kind {
                FaultKind::ConflictStorm => self.server.conflict_storm(true),
                FaultKind::Crash => self.kill(who),
                FaultKind::Terminate => self.candidates[who].shutdown.cancel(),
                FaultKind::Pause => self.candidates[who].gate.set(true),
                k => self
                    .server
                    .link_fault(who, link_fault(k).expect("a link fault"), true),
            },
            Action::End(kind, who) => match kind {
                FaultKind::ConflictStorm => self.server.conflict_storm(false),
                FaultKind::Crash => self.restart(who),
                // A supervisor that waited this long kills what is left.
                FaultKind::Terminate => self.restart(who),
                FaultKind::Pause => self.candidates[who].gate.set(false),
                k => self
                    .server
                    .link_fault(who, link_fault(k).expect("a link fault"), false),
            },
        }
    }
}

/// Runs `schedule` to its end on the current (paused-clock) runtime.
pub async fn run(schedule: Schedule) -> Outcome {
    let schedule = Arc::new(schedule);
    let n = schedule.clock_rates.len();
    let server = SimApiServer::new(schedule.seed, schedule.network, &schedule.clock_rates);
    let journal: Shared = Arc::new(Mutex::new(Journal {
        open: vec![None; n],
        ..Journal::default()
    }));
    let mut world = World {
        server: server.clone(),
        schedule: schedule.clone(),
        journal: journal.clone(),
        candidates: Vec::new(),
        finished: Vec::new(),
    };
    let origin = Instant::now();
    for who in 0..n {
        let c = world.start(who, 0);
        world.candidates.push(c);
    }
    let mut timeline: Vec<(Duration, u8, Action)> = Vec::new();
    for f in &schedule.faults {
        // Ends sort before starts at the same instant.
        timeline.push((f.at, 1, Action::Start(f.kind, f.target)));
        timeline.push((f.at + f.length, 0, Action::End(f.kind, f.target)));
    }
    timeline.sort_by_key(|t| (t.0, t.1));
    for (at, _, action) in timeline {
        sleep_until(origin + at).await;
        world.act(action).await;
    }
    sleep_until(origin + schedule.faults_end).await;
    server.stop_faults();
    let faults_end = Instant::now();
    // Until a leader has held for a retry_period, at most the liveness bound.
    let give_up = faults_end + schedule.liveness_bound() + Duration::from_secs(1);
    let mut seen = None;
    while Instant::now() < give_up {
        sleep(schedule.timings.retry_period).await;
        let leader = lock(&journal).acting_term(schedule.validity());
        if leader.is_some() && leader == seen {
            break;
        }
        seen = leader;
    }
    let finished = Instant::now();
    let mut handles = std::mem::take(&mut world.finished);
    handles.extend(world.candidates.drain(..).map(|c| c.process));
    for h in handles {
        if h.is_finished()
            && let Err(e) = h.await
            && e.is_panic()
        {
            lock(&journal).panics.push(format!("{e:?}"));
        }
    }
    let journal = std::mem::take(&mut *lock(&journal));
    Outcome {
        journal,
        commits: server.commits(),
        counts: server.counts(),
        origin,
        faults_end,
        finished,
    }
}
