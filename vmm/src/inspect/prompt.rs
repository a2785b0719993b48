//! How `lockvmm inspect` takes its commands: one from the command line, one per line from a
//! pipe, or at an interactive `crash>` prompt.
use std::path::PathBuf;

use super::Inspector;
use crate::state::ExitStatus;

/// Runs the inspector: one command, commands from a pipe, or an interactive prompt.
pub fn run(insp: &Inspector, command: &[String]) -> ExitStatus {
    use std::io::IsTerminal;
    if !command.is_empty() {
        return match insp.exec(&command.join(" ")) {
            Ok(out) => {
                print!("{out}");
                ExitStatus::Success
            }
            Err(e) => {
                eprintln!("{e}");
                ExitStatus::GuestFailed
            }
        };
    }
    if !std::io::stdin().is_terminal() {
        let mut status = ExitStatus::Success;
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if matches!(line.trim(), "q" | "quit" | "exit") {
                break;
            }
            match insp.exec(&line) {
                Ok(out) => print!("{out}"),
                Err(e) => {
                    eprintln!("{e}");
                    status = ExitStatus::GuestFailed;
                }
            }
        }
        return status;
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
