//! The `lease-elector` command: parses the command line and dispatches.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lease_elector::config;

use cli::demo::DemoArgs;
use cli::flags::SettingFlags;

/// Kubernetes Lease leader election, compatible with client-go, with metrics.
///
/// Without a command, competes for the Lease and reports through /metrics,
/// /healthz, /readyz and /leader until SIGTERM, then releases it.
///
/// Settings come from built-in defaults, then the TOML file (--config, or
/// ./config.toml when present), then LEASE_ELECTOR_* environment variables
/// (nested keys with "__", e.g. LEASE_ELECTOR_HTTP__LISTEN), then these flags;
/// later layers win. `lease-elector config` shows the result and the origin of
/// each value. An invalid setting exits with code 2.
#[derive(Parser, Debug)]
#[command(name = "lease-elector", version = lease_elector::metrics::VERSION_LINE, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    settings: SettingFlags,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run CMD only while this candidate leads (like `consul lock`).
    ///
    /// CMD starts when leadership is won and gets LEASE_ELECTOR_IDENTITY,
    /// LEASE_ELECTOR_LEASE, LEASE_ELECTOR_NAMESPACE and
    /// LEASE_ELECTOR_FENCING_TOKEN. When leadership ends, its process group
    /// gets run.stop_signal, then SIGKILL after run.grace_period; requires
    /// renew_deadline + grace_period < lease_duration.
    Run {
        /// The command and its arguments, after `--`.
        #[arg(required = true, last = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Print the effective configuration with the origin of each value.
    Config,
    /// Three candidates over an in-memory Lease, no cluster needed: replays
    /// the release, crash and network-cut failovers with a timeline.
    Demo(DemoArgs),
    /// Internal: the run mode's watchdog process (fed over stdin).
    #[command(name = "__watchdog", hide = true)]
    Watchdog,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Cmd::Watchdog) = cli.command {
        lease_elector::supervise::watchdog::watchdog_main();
    }
    let env: Vec<(String, String)> = std::env::vars().collect();
    let loaded = match config::load(cli.settings.file(), &env, cli.settings.values()) {
        Ok(l) => l,
        Err(e) => return settings_error(e),
    };
    cli::memory::one_malloc_arena();
    // One Lease needs one thread: a current-thread runtime (blocking work,
    // such as DNS lookups, still gets the blocking pool).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lease-elector: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(Cmd::Config) => {
            print!("{}", loaded.describe());
            return ExitCode::SUCCESS;
        }
        Some(Cmd::Demo(args)) => runtime.block_on(cli::demo::run(args, &loaded)),
        Some(Cmd::Watchdog) => lease_elector::supervise::watchdog::watchdog_main(),
        Some(Cmd::Run { command }) => match config::validate_run(&loaded) {
            Ok(()) => runtime.block_on(cli::daemon::run(&loaded, Some(command))),
            Err(e) => return settings_error(e),
        },
        None => runtime.block_on(cli::daemon::run(&loaded, None)),
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("lease-elector: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// An invalid setting: say which and where from, exit 2.
fn settings_error(e: config::ConfigError) -> ExitCode {
    eprintln!("lease-elector: {e}");
    ExitCode::from(2)
}
