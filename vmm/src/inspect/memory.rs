//! `sym`: symbols and the C expressions of addresses (`rd` is in `rd.rs`, `p` and `struct` in
//! `types.rs`).
use super::{Inspector, parse_addr};

impl Inspector {
    pub(super) fn sym(&self, args: &[&str]) -> Result<String, String> {
        let [what] = args else {
            return Err("usage: sym ADDR | sym NAME".into());
        };
        if let Some(s) = self.syms.get(what) {
            return Ok(format!(
                "{:016x} ({}) {}\n",
                s.addr,
                if s.is_text { 'T' } else { 'D' },
                s.name
            ));
        }
        // `sym NAME+OFF` is the address there (`code_addr` in disasm.rs).
        let addr = match what.contains('+') {
            true => self.code_addr(what).map_err(|e| format!("sym: {e}"))?.0,
            false => {
                parse_addr(what).ok_or_else(|| format!("sym: invalid address or symbol: {what}"))?
            }
        };
        let a = self.analysis();
        match self.syms.lookup(addr) {
            Some(l) => {
                let kind = if self.syms.get(&l.name).is_some_and(|s| s.is_text) {
                    'T'
                } else {
                    'D'
                };
                let c = self
                    .dwarf
                    .describe(&self.syms, addr)
                    .filter(|d| *d != l.to_string());
                let mut extra = c.map_or_else(String::new, |d| format!(" = &{d}"));
                // crash adds the source line of a text address: ` file.c: 155`.
                if let Some(loc) = self
                    .lines
                    .as_ref()
                    .filter(|_| kind == 'T')
                    .and_then(|x| x.location(addr))
                {
                    let (file, line) = loc.rsplit_once(':').unwrap_or((&loc, ""));
                    extra.push_str(&format!(" {file}: {line}"));
                }
                Ok(format!("{addr:016x} ({kind}) {l}{extra}\n"))
            }
            None => match a.stack_of(addr) {
                Some(stack) => Ok(format!("{addr:016x} is on the {stack}\n")),
                None => Err(format!("sym: {addr:016x}: no symbol")),
            },
        }
    }
}
