//! The 16550 UART at COM1 (vm-superio) and where its output goes: the terminal (unless
//! quiet), the run's console log, and an in-memory copy for reports and tests.
use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use vm_superio::{Serial, Trigger};

/// The lab does not wire the UART's interrupt: the guest console only transmits.
pub struct NoIrq;

impl Trigger for NoIrq {
    type E = io::Error;
    fn trigger(&self) -> Result<(), io::Error> {
        Ok(())
    }
}

/// Everything the guest wrote to its console (up to the sink's limit).
#[derive(Default)]
pub struct ConsoleText {
    pub text: String,
    pub dropped: usize,
}

/// Line-buffered sink behind the UART. Every line is escaped (guest text never reaches the
/// terminal raw), and the console is bounded: past `limit` bytes, lines are counted and dropped
/// from the terminal, the log and the kept text alike, and `finish` adds a line saying so.
pub struct ConsoleSink {
    line: Vec<u8>,
    echo: bool,
    log: Option<File>,
    kept: Arc<Mutex<ConsoleText>>,
    /// Names addresses the guest prints as `[<ffffffff81005bf0>]` (it has no kallsyms).
    symbols: Option<Arc<crate::image::Symbols>>,
    limit: usize,
    written: usize,
    dropped: usize,
    log_error: Option<String>,
}

/// A sink's own state at a snapshot: the partial line and the counts against the limit.
#[derive(Debug, Clone, Default)]
pub struct SinkState {
    line: Vec<u8>,
    written: usize,
    dropped: usize,
}

impl ConsoleSink {
    /// Its state, to resume another sink from (`resume`).
    pub fn state(&self) -> SinkState {
        SinkState {
            line: self.line.clone(),
            written: self.written,
            dropped: self.dropped,
        }
    }

    /// Continues where `state` left off (the kept text is the caller's to restore).
    pub fn resume(&mut self, state: &SinkState) {
        self.line.clone_from(&state.line);
        self.written = state.written;
        self.dropped = state.dropped;
    }

    pub fn new(echo: bool, log: Option<File>, kept: Arc<Mutex<ConsoleText>>) -> Self {
        ConsoleSink {
            line: Vec::with_capacity(256),
            echo,
            log,
            kept,
            symbols: None,
            limit: usize::MAX,
            written: 0,
            dropped: 0,
            log_error: None,
        }
    }

    /// Names the `[<address>]`s of the guest's lines with these symbols.
    pub fn with_symbols(mut self, symbols: Arc<crate::image::Symbols>) -> Self {
        self.symbols = Some(symbols);
        self
    }

    /// Keeps at most `bytes` of console text.
    pub fn with_limit(mut self, bytes: usize) -> Self {
        self.limit = bytes;
        self
    }

    /// Writes out a last, unterminated line, says how much was dropped, and syncs the log (at
    /// the end of a run).
    pub fn finish(&mut self) {
        self.flush_line();
        if self.dropped > 0 {
            let marker = format!(
                "[lockvmm: console output truncated: {} bytes dropped after the first {} bytes]\n",
                self.dropped, self.written
            );
            self.emit(&marker);
            self.kept_text().dropped = self.dropped;
        }
        if let Some(Err(e)) = self.log.as_mut().map(|l| l.flush()) {
            self.log_error.get_or_insert(e.to_string());
        }
    }

    /// Bytes of console output dropped past the limit.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// The first error writing the console log, if any.
    pub fn log_error(&self) -> Option<String> {
        self.log_error.clone()
    }

    fn kept_text(&self) -> std::sync::MutexGuard<'_, ConsoleText> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&mut self, text: &str) {
        if self.echo {
            crate::process::stdout::print(text);
        }
        if let Some(log) = self.log.as_mut()
            && let Err(e) = log.write_all(text.as_bytes())
        {
            self.log_error.get_or_insert(e.to_string());
        }
        self.kept_text().text.push_str(text);
    }

    fn flush_line(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let mut text = crate::state::text::escape_controls(&String::from_utf8_lossy(&self.line));
        self.line.clear();
        if self.written.saturating_add(text.len()) > self.limit {
            self.dropped += text.len();
            return;
        }
        if let Some(syms) = self.symbols.as_ref().filter(|_| text.contains("[<")) {
            text = crate::image::symbols::annotate_addresses(&text, syms);
        }
        self.written += text.len();
        self.emit(&text);
    }
}

impl Write for ConsoleSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &b in buf {
            if b == b'\r' {
                continue;
            }
            self.line.push(b);
            if b == b'\n' || self.line.len() >= 4096 {
                self.flush_line();
            }
        }
        Ok(buf.len())
    }

    /// The UART flushes after every byte; a partial line waits for its newline (or `finish`).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// COM1.
pub type SerialConsole = Serial<NoIrq, vm_superio::serial::NoEvents, ConsoleSink>;

pub fn new_console(sink: ConsoleSink) -> SerialConsole {
    Serial::new(NoIrq, sink)
}
