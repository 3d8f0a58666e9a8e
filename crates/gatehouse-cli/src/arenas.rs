//! glibc malloc's arenas and configuration reloads.
//!
//! Every configuration change reads every record and builds a new snapshot (sharing the
//! unchanged entries of the last one) on whichever thread polls, and glibc
//! malloc gives threads their own arenas (up to eight per core) and keeps the freed pages of
//! each: resident memory rose change after change (BENCHMARKS.md, "Memory across configuration
//! changes"). With two arenas it levels off near two snapshots' worth. The limit can only be set before the first allocation,
//! that is in the environment the process starts with, so `serve` re-executes itself once
//! with `MALLOC_ARENA_MAX` set, unless the operator set it.

use std::{ffi::OsString, os::unix::process::CommandExt, process::Command};

/// Arenas glibc malloc may create; other allocators ignore the variable.
const ARENAS: &str = "2";
const VARIABLE: &str = "MALLOC_ARENA_MAX";

/// Replaces this process with itself under a bounded arena count. Returns only when that is
/// not needed (already set) or not possible, and then the gateway runs as it is.
pub fn bound() {
    if std::env::var_os(VARIABLE).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let err = Command::new(exe).args(args).env(VARIABLE, ARENAS).exec();
    eprintln!("warning: could not restart with {VARIABLE}={ARENAS}: {err}");
}
