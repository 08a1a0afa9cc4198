//! The conventions of the project's command-line tools (`sqcache`,
//! `sciqlop-cache-host`), in one place:
//!
//! - exit codes: 0 ok, 1 the operation failed, 2 bad usage ([`Usage`], or what clap
//!   refuses);
//! - an error is one sentence on stderr (`error: …`, its causes joined without
//!   repeating one the message already holds), never a backtrace, also for a panic;
//! - under `--json`, errors are `{"error": …, "exit_code": …}` on stdout too;
//! - output into a closed pipe (`tool … | head`) ends quietly, with success.
//!
//! ```no_run
//! use std::process::ExitCode;
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[arg(long)]
//!     json: bool,
//! }
//!
//! fn main() -> ExitCode {
//!     sciqlop_cache_tooling::main::<Cli>(sciqlop_cache_tooling::json_requested(), |cli| {
//!         if cli.json {
//!             return Err(sciqlop_cache_tooling::usage("no JSON here"));
//!         }
//!         Ok(ExitCode::SUCCESS)
//!     })
//! }
//! ```

use std::io::Write;
use std::process::ExitCode;

/// A mistake in how the tool was called, found after parsing (exit code 2).
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// A [`Usage`] error.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(msg.into()))
}

/// Whether `--json` is on the command line before any `--` (what follows `--` belongs
/// to someone else, e.g. a plugin). Known before parsing, so that a usage error is JSON
/// too.
pub fn json_requested() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// Parses the command line as `C` and runs it, following the conventions of the module
/// docs; `json` says whether errors are printed as JSON too (see [`json_requested`]).
pub fn main<C: clap::Parser>(
    json: bool,
    run: impl FnOnce(C) -> anyhow::Result<ExitCode>,
) -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        eprintln!("error: internal error: {msg}");
    }));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        match C::try_parse() {
            Ok(cli) => run(cli),
            Err(e) if !e.use_stderr() => {
                // --help, --version.
                let _ = e.print();
                Ok(ExitCode::SUCCESS)
            }
            Err(e) if json => {
                json_error(&clap_message(&e), 2);
                Ok(ExitCode::from(2))
            }
            Err(e) => {
                let _ = e.print();
                Ok(ExitCode::from(2))
            }
        }
    }));
    match outcome {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            if is_broken_pipe(&e) {
                // The reader went away: not an error.
                return ExitCode::SUCCESS;
            }
            let code = if e.is::<Usage>() { 2 } else { 1 };
            if json {
                json_error(&sentence(&e), code);
            } else {
                eprintln!("error: {}", sentence(&e));
            }
            ExitCode::from(code)
        }
        // The panic hook said what happened.
        Err(_) => ExitCode::from(1),
    }
}

/// Clap's message up to its usage and tips, in one line.
fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let lines: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    lines.join(" ").trim_start_matches("error: ").to_owned()
}

/// Prints an error as `{"error": …, "exit_code": …}` on stdout (under `--json`), and the
/// plain message on stderr for a person watching.
pub fn json_error(message: &str, code: u8) {
    let v = serde_json::json!({"error": message, "exit_code": code});
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, &v);
    let _ = writeln!(out);
    eprintln!("error: {message}");
}

/// Whether writing the output failed because its reader closed the pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

/// The error and its causes in one line, without repeating a cause that the message
/// already includes.
pub fn sentence(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentence_does_not_repeat_a_cause() {
        let e = anyhow::Error::new(std::io::Error::other("disk on fire"))
            .context("writing x: disk on fire");
        assert_eq!(sentence(&e), "writing x: disk on fire");
        let e = anyhow::Error::new(std::io::Error::other("disk on fire")).context("writing x");
        assert_eq!(sentence(&e), "writing x: disk on fire");
    }

    #[test]
    fn usage_errors_are_told_apart() {
        assert!(usage("bad").is::<Usage>());
        assert!(!anyhow::anyhow!("bad").is::<Usage>());
    }

    #[test]
    fn a_closed_pipe_is_recognised_through_json() {
        let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(is_broken_pipe(&anyhow::Error::new(serde_json::Error::io(
            io
        ))));
        let other = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert!(!is_broken_pipe(&anyhow::Error::new(other)));
    }
}
