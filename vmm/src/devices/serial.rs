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

/// How much console text a run keeps in memory (the log file keeps everything).
const CONSOLE_KEEP_BYTES: usize = 8 << 20;

/// Everything the guest wrote to its console.
#[derive(Default)]
pub struct ConsoleText {
    pub text: String,
    pub dropped: usize,
}

/// Line-buffered sink behind the UART.
pub struct ConsoleSink {
    line: Vec<u8>,
    echo: bool,
    log: Option<File>,
    kept: Arc<Mutex<ConsoleText>>,
    /// Names addresses the guest prints as `[<ffffffff81005bf0>]` (it has no kallsyms).
    symbols: Option<Arc<crate::image::Symbols>>,
}

impl ConsoleSink {
    pub fn new(echo: bool, log: Option<File>, kept: Arc<Mutex<ConsoleText>>) -> Self {
        ConsoleSink {
            line: Vec::with_capacity(256),
            echo,
            log,
            kept,
            symbols: None,
        }
    }

    /// Names the `[<address>]`s of the guest's lines with these symbols.
    pub fn with_symbols(mut self, symbols: Arc<crate::image::Symbols>) -> Self {
        self.symbols = Some(symbols);
        self
    }

    /// Writes out a last, unterminated line and syncs the log (at the end of a run).
    pub fn finish(&mut self) -> io::Result<()> {
        self.flush_line();
        match self.log.as_mut() {
            Some(log) => log.flush(),
            None => Ok(()),
        }
    }

    fn flush_line(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let mut text = String::from_utf8_lossy(&self.line).into_owned();
        if let Some(syms) = self.symbols.as_ref().filter(|_| text.contains("[<")) {
            text = crate::image::symbols::annotate_addresses(&text, syms);
        }
        self.line.clear();
        if self.echo {
            let mut out = io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
        if let Some(log) = self.log.as_mut() {
            let _ = log.write_all(text.as_bytes());
        }
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.text.len() + text.len() <= CONSOLE_KEEP_BYTES {
            kept.text.push_str(&text);
        } else {
            kept.dropped += text.len();
        }
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
