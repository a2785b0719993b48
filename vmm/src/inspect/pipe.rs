//! `COMMAND | grep PATTERN`: crash hands a command's output to a shell pipeline; the inspector
//! runs the common filters itself, so a pipe works the same from a script, a pipe or the prompt:
//! `grep [-v] [-i] [-w] [-c] [-e] PATTERN`, `head [-n N | -N]`, `tail [-n N | -N]`. PATTERN is a
//! fixed string; `^` and `$` anchor it to the start or end of a line.

/// Filters a pipeline may have at most.
const MAX_FILTERS: usize = 16;

/// Splits `bt -a | grep spin | head -3` into the command and its filters.
pub(super) fn split(line: &str) -> Result<(&str, Vec<Vec<String>>), String> {
    let mut parts = line.split('|');
    let cmd = parts.next().unwrap_or("");
    let mut filters = Vec::new();
    for p in parts {
        if filters.len() >= MAX_FILTERS {
            return Err("too many pipes".into());
        }
        let words: Vec<String> = p
            .split_whitespace()
            .map(|w| unquote(w).to_string())
            .collect();
        if words.is_empty() {
            return Err("empty command after |".into());
        }
        filters.push(words);
    }
    Ok((cmd, filters))
}

fn unquote(w: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = w.strip_prefix(q).and_then(|x| x.strip_suffix(q)) {
            return inner;
        }
    }
    w
}

/// Runs the filters over a command's output.
pub(super) fn apply(out: String, filters: &[Vec<String>]) -> Result<String, String> {
    let mut text = out;
    for f in filters {
        text = filter(&text, f)?;
    }
    Ok(text)
}

fn count_arg(args: &[String]) -> Result<usize, String> {
    match args {
        [] => Ok(10),
        [n] if n.starts_with('-') => n[1..].parse().map_err(|_| format!("invalid count: {n}")),
        [flag, n] if flag == "-n" => n.parse().map_err(|_| format!("invalid count: {n}")),
        _ => Err("usage: head|tail [-n N | -N]".into()),
    }
}

fn filter(text: &str, f: &[String]) -> Result<String, String> {
    let lines: Vec<&str> = text.lines().collect();
    let keep: Vec<&str> = match f[0].as_str() {
        "head" => lines.iter().take(count_arg(&f[1..])?).copied().collect(),
        "tail" => {
            let n = count_arg(&f[1..])?;
            lines[lines.len().saturating_sub(n)..].to_vec()
        }
        "grep" => return grep(&lines, &f[1..]),
        other => {
            return Err(format!(
                "{other}: not a filter the inspector runs (grep, head and tail are)"
            ));
        }
    };
    Ok(keep.iter().map(|l| format!("{l}\n")).collect())
}

fn grep(lines: &[&str], args: &[String]) -> Result<String, String> {
    let (mut invert, mut nocase, mut word, mut count) = (false, false, false, false);
    let mut pattern = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-v" => invert = true,
            "-i" => nocase = true,
            "-w" => word = true,
            "-c" => count = true,
            "-e" => pattern = it.next().cloned(),
            s if s.starts_with('-') && pattern.is_none() && s.len() > 1 => {
                return Err(format!("grep: unknown option {s}"));
            }
            s => match &mut pattern {
                None => pattern = Some(s.to_string()),
                // Words after the pattern belong to it (a pattern with spaces, unquoted).
                Some(p) => {
                    p.push(' ');
                    p.push_str(s);
                }
            },
        }
    }
    let pattern = pattern.ok_or("usage: grep [-v] [-i] [-w] [-c] PATTERN")?;
    let pattern = unquote(&pattern).to_string();
    let fold = |s: &str| {
        if nocase {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    };
    let (start, rest) = match pattern.strip_prefix('^') {
        Some(r) => (true, r),
        None => (false, pattern.as_str()),
    };
    let (end, needle) = match rest.strip_suffix('$') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let needle = fold(needle);
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let matches = |line: &str| {
        let hay = fold(line);
        hay.match_indices(needle.as_str()).any(|(i, m)| {
            let before = hay[..i].chars().next_back();
            let after = hay[i + m.len()..].chars().next();
            (!start || i == 0)
                && (!end || i + m.len() == hay.len())
                && (!word || (!is_word(before) && !is_word(after)))
        })
    };
    let hits: Vec<&&str> = lines.iter().filter(|l| matches(l) != invert).collect();
    if count {
        return Ok(format!("{}\n", hits.len()));
    }
    Ok(hits.iter().map(|l| format!("{l}\n")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str, text: &str) -> Result<String, String> {
        let (_, f) = split(line)?;
        apply(text.to_string(), &f)
    }

    #[test]
    fn filters_work_like_the_shell_ones() {
        let text = "CPU 1 spin\nCPU 2 idle\nCPU 12 spin\n";
        assert_eq!(
            run("x | grep spin", text).unwrap(),
            "CPU 1 spin\nCPU 12 spin\n"
        );
        assert_eq!(run("x | grep -v spin", text).unwrap(), "CPU 2 idle\n");
        assert_eq!(run("x | grep -w 1", text).unwrap(), "CPU 1 spin\n");
        assert_eq!(run("x | grep -c spin", text).unwrap(), "2\n");
        assert_eq!(run("x | grep -i IDLE$", text).unwrap(), "CPU 2 idle\n");
        assert_eq!(
            run("x | grep ^CPU 1", text).unwrap(),
            "CPU 1 spin\nCPU 12 spin\n"
        );
        assert_eq!(
            run("x | grep spin | tail -1", text).unwrap(),
            "CPU 12 spin\n"
        );
        assert_eq!(run("x | head -n 1", text).unwrap(), "CPU 1 spin\n");
        assert_eq!(run("x | grep \"2 idle\"", text).unwrap(), "CPU 2 idle\n");
        assert!(run("x | sort", text).is_err());
        assert!(run("x | ", text).is_err());
        assert!(run("x | grep", text).is_err());
    }
}
