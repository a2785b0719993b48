//! How `lockvmm inspect` takes its commands: one from the command line, one per line from a
//! pipe, or at an interactive `crash>` prompt.
use std::path::PathBuf;

use super::Inspector;
use crate::process::stdout;
use crate::state::ExitStatus;

/// Commands from a pipe, one a line. A line is read as bytes (invalid UTF-8 is replaced, never
/// the end of the input); a read error ends the input with a failure status.
fn piped(insp: &Inspector) -> ExitStatus {
    use std::io::BufRead;
    let mut status = ExitStatus::Success;
    let mut input = std::io::stdin().lock();
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match input.read_until(b'\n', &mut raw) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                stdout::eprint_line(&format!("lockvmm: cannot read commands: {e}"));
                return ExitStatus::Environment;
            }
        }
        let line = String::from_utf8_lossy(&raw);
        if matches!(line.trim(), "q" | "quit" | "exit") {
            break;
        }
        match insp.exec(&line) {
            Ok(out) => stdout::print(&out),
            Err(e) => {
                stdout::eprint_line(&crate::state::text::escape_line(&e));
                status = ExitStatus::GuestFailed;
            }
        }
        if stdout::is_closed() {
            break;
        }
    }
    status
}

/// Runs the inspector: one command, commands from a pipe, or an interactive prompt.
pub fn run(insp: &Inspector, command: &[String]) -> ExitStatus {
    use std::io::IsTerminal;
    if !command.is_empty() {
        return match insp.exec(&command.join(" ")) {
            Ok(out) => {
                stdout::print(&out);
                ExitStatus::Success
            }
            Err(e) => {
                eprintln!("{e}");
                ExitStatus::GuestFailed
            }
        };
    }
    if !std::io::stdin().is_terminal() {
        return piped(insp);
    }
    print!("{}", insp.banner());
    let Ok(mut rl) = rustyline::DefaultEditor::new() else {
        return ExitStatus::Environment;
    };
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".lockvmm_history"));
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    while let Ok(line) = rl.readline("crash> ") {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = rl.add_history_entry(line);
        if matches!(line, "q" | "quit" | "exit") {
            break;
        }
        match insp.exec(line) {
            Ok(out) => print!("{out}"),
            Err(e) => println!("{e}"),
        }
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    ExitStatus::Success
}
