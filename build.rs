//! Stamps the binary with its git commit and build date, for
//! `lease-elector --version` and `lease_elector_build_info`.
//!
//! Read here, at build time (never by the daemon):
//! - `BUILD_GIT_COMMIT`: the commit, when the source has no `.git` (the
//!   Dockerfile passes its `REVISION` build arg); otherwise `git rev-parse`;
//!   else `unknown`.
//! - `SOURCE_DATE_EPOCH` (the reproducible-builds convention): the build
//!   date in Unix seconds; otherwise the time of this build.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-env-changed=BUILD_GIT_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-changed=build.rs");
    for path in git_paths() {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rustc-env=LE_BUILD_GIT_COMMIT={}", commit());
    println!("cargo:rustc-env=LE_BUILD_DATE={}", rfc3339(build_epoch()));
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The files that move when HEAD does (a worktree's `.git` is a file, so
/// they are asked of git).
fn git_paths() -> Vec<String> {
    let mut paths = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        paths.push(branch);
    }
    paths
        .iter()
        .filter_map(|p| git(&["rev-parse", "--git-path", p]))
        .filter(|p| std::path::Path::new(p).exists())
        .collect()
}

fn commit() -> String {
    let given = std::env::var("BUILD_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty());
    let commit = given
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    let is_hash = commit.len() >= 12 && commit.chars().all(|c| c.is_ascii_hexdigit());
    if is_hash {
        commit[..12].to_string()
    } else {
        commit
    }
}

fn build_epoch() -> u64 {
    match std::env::var("SOURCE_DATE_EPOCH").map(|v| v.trim().to_string()) {
        Ok(v) if !v.is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")),
        _ => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` of Unix seconds (civil-from-days on the
/// proleptic Gregorian calendar).
fn rfc3339(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem / 60 % 60, rem % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}
