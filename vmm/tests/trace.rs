//! The trace (issue 15) on real KVM: the guest's ring buffers read from the snapshot and
//! checked against the captured state, the files a traced run leaves (trace.json against the
//! trace-event format, report.html rendered by a real headless Chromium), `inspect`'s `trace`,
//! `ftrace_dump_on_oops`, and the negative controls (no `[trace]`: no buffers, no files).
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use lockvmm::lab::Completed;
use lockvmm::state::locks::innermost;
use lockvmm::trace::{Event, Timeline, Trace, read_trace};
use lockvmm_abi::trace::TraceEvent;
use lockvmm_abi::vector::LOCAL_TIMER_VECTOR;
use serde_json::Value;

fn lbr() -> &'static (lockvmm::RunResult, Completed, PathBuf) {
    static RUN: OnceLock<(lockvmm::RunResult, Completed, PathBuf)> = OnceLock::new();
    RUN.get_or_init(|| common::run_complete("scenarios/lbr_gfp.toml"))
}

fn trace_of(r: &lockvmm::RunResult) -> Trace {
    read_trace(&common::analysis(r)).expect("lbr_gfp keeps a trace")
}

fn last(events: &[Event], pred: impl Fn(&Event) -> bool) -> Option<(usize, &Event)> {
    events.iter().enumerate().rev().find(|(_, e)| pred(e))
}

/// CPU 56's and CPU 51's last events tell the lockup the snapshot shows: CPU 56 took the lock
/// CPU 51 spins on, enabled interrupts in allocate_slab without releasing it, the host's
/// timer tick arrived there, and the tick's handler began spinning on the same lock.
#[test]
fn lbr_gfp_last_events_match_the_snapshot() {
    let (r, _, _) = lbr();
    let a = common::analysis(r);
    let trace = trace_of(r);
    // From the captured state: the lock CPU 51 spins on, held by CPU 56.
    let wait = innermost(&a.lock_waits(), 51)
        .expect("CPU 51 spins")
        .clone();
    assert_eq!(wait.holder, Some(56));
    let lock = wait.lock;

    let c51 = &trace.cpu(51).expect("CPU 51's buffer").events;
    let (_, spin51) = last(c51, |e| e.event == Some(TraceEvent::LockContended)).unwrap();
    assert_eq!(
        spin51.arg, lock,
        "CPU 51's last contention is on the lock it spins on"
    );
    assert!(
        !c51.iter()
            .any(|e| e.seq > spin51.seq && e.event == Some(TraceEvent::LockAcquired)),
        "CPU 51 never got it"
    );

    let c56 = &trace.cpu(56).expect("CPU 56's buffer").events;
    let (i_acq, acq) = last(c56, |e| {
        e.event == Some(TraceEvent::LockAcquired) && e.arg == lock
    })
    .expect("CPU 56 took the lock");
    let after = &c56[i_acq + 1..];
    assert!(
        !after
            .iter()
            .any(|e| e.event == Some(TraceEvent::LockReleased) && e.arg == lock),
        "CPU 56 never released it"
    );
    let slab = common::range_of(r, "allocate_slab");
    let pos = |pred: &dyn Fn(&Event) -> bool| after.iter().position(pred);
    let enable = pos(&|e| e.event == Some(TraceEvent::IrqEnable) && slab.contains(&e.ip))
        .expect("an irq enable in allocate_slab after taking the lock");
    let action = pos(&|e| e.event == Some(TraceEvent::HostAction)).expect("the host's action");
    let tick =
        pos(&|e| e.event == Some(TraceEvent::IrqEntry) && e.arg == u64::from(LOCAL_TIMER_VECTOR))
            .expect("the tick");
    let spin = pos(&|e| e.event == Some(TraceEvent::LockContended) && e.arg == lock)
        .expect("the tick's spin");
    assert!(
        enable < action && action < tick && tick < spin,
        "{enable} {action} {tick} {spin}"
    );
    // No interrupt exit after the tick: it is the one still running at the snapshot.
    assert!(
        !after[tick..]
            .iter()
            .any(|e| e.event == Some(TraceEvent::IrqExit))
    );
    assert!(after[spin].flags & lockvmm_abi::trace::flags::HARDIRQ != 0);
    // CPU 56 took the lock before CPU 51 began to spin on it; both spins outlast the trace.
    assert!(acq.seq < spin51.seq);
    // The timeline has both spins open at the snapshot and a flow from the action to the tick.
    let tl = Timeline::build(&trace);
    for cpu in [51, 56] {
        assert!(
            tl.spans.iter().any(|s| s.cpu == cpu
                && s.kind == lockvmm::trace::SpanKind::Spin
                && s.lock == Some(lock)
                && s.end_us.is_none()),
            "CPU {cpu} spins at the snapshot"
        );
    }
    let tick_at = tl.at[&after[tick].seq];
    assert!(
        tl.flows
            .iter()
            .any(|f| f.from_cpu == 56 && f.to_cpu == 56 && f.to_us == tick_at)
    );
}

/// The four files exist; trace.txt is trace-cmd's format; waitfor.dot has the cycle in red.
#[test]
fn lbr_gfp_leaves_the_trace_files() {
    let (_, _, dir) = lbr();
    let txt = std::fs::read_to_string(dir.join("trace.txt")).unwrap();
    assert!(txt.starts_with("cpus=64\n"), "{}", &txt[..40]);
    let spin = txt
        .lines()
        .rev()
        .find(|l| l.contains("[051]") && l.contains("contention_begin:"))
        .expect("CPU 51's spin");
    assert!(
        spin.contains("runqueues[56].__lock") && spin.contains("crond-1000877"),
        "{spin}"
    );
    let dot = std::fs::read_to_string(dir.join("waitfor.dot")).unwrap();
    assert!(dot.starts_with("digraph waitfor {"), "{dot}");
    assert!(
        dot.contains("cpu56 -> lock_") && dot.contains("color=red"),
        "{dot}"
    );
    assert!(dir.join("report.html").is_file());
}

/// Google's Trace Event Format: required fields per phase, slices that nest on each track,
/// every flow start paired with its end, and metadata naming each CPU.
#[test]
fn trace_json_follows_the_trace_event_format() {
    let (_, _, dir) = lbr();
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("trace.json")).unwrap()).unwrap();
    let events = doc["traceEvents"].as_array().expect("traceEvents");
    assert!(events.len() > 1000, "{}", events.len());
    let mut slices: HashMap<(u64, u64), Vec<(f64, f64)>> = HashMap::new();
    let mut flows: HashMap<u64, (usize, usize)> = HashMap::new();
    let mut names = Vec::new();
    for e in events {
        let ph = e["ph"].as_str().expect("ph");
        let track = (
            e["pid"].as_u64().expect("pid"),
            e["tid"].as_u64().expect("tid"),
        );
        assert!(e["name"].is_string(), "{e}");
        match ph {
            "X" => {
                let (ts, dur) = (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap());
                assert!(ts >= 0.0 && dur >= 0.0, "{e}");
                slices.entry(track).or_default().push((ts, ts + dur));
            }
            "i" => {
                assert!(e["ts"].is_number(), "{e}");
                assert!(matches!(e["s"].as_str(), Some("t" | "p" | "g")), "{e}");
            }
            "s" | "f" => {
                assert!(
                    e["ts"].is_number() && e["id"].is_u64() && e["cat"].is_string(),
                    "{e}"
                );
                let f = flows.entry(e["id"].as_u64().unwrap()).or_default();
                if ph == "s" {
                    f.0 += 1;
                } else {
                    assert_eq!(e["bp"], "e", "{e}");
                    f.1 += 1;
                }
            }
            "M" => {
                assert!(e["args"].is_object(), "{e}");
                if e["name"] == "process_name" {
                    names.push(e["args"]["name"].as_str().unwrap().to_string());
                }
            }
            other => panic!("unexpected phase {other}: {e}"),
        }
    }
    assert!(names.contains(&"CPU 51".to_string()) && names.contains(&"CPU 56".to_string()));
    assert!(!flows.is_empty());
    for (id, (s, f)) in &flows {
        assert_eq!((*s, *f), (1, 1), "flow {id}");
    }
    // On one track, two slices are disjoint or one holds the other.
    for (track, mut v) in slices {
        v.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
        let mut open: Vec<f64> = Vec::new();
        for (s, e) in v {
            while open.last().is_some_and(|&end| end <= s) {
                open.pop();
            }
            if let Some(&end) = open.last() {
                assert!(
                    e <= end,
                    "slices overlap on {track:?}: [{s}, {e}] vs end {end}"
                );
            }
            open.push(e);
        }
    }
}

#[test]
fn inspect_trace_filters_by_cpu_time_and_count() {
    let (_, _, dir) = lbr();
    let insp = lockvmm::inspect::Inspector::open(&dir.join("vmcore"), None).unwrap();
    let out = insp.exec("trace -c 51 -n 3").unwrap();
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(": ")).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines.iter().all(|l| l.contains("[051]")), "{out}");
    // Only the NMI watchdog's check at the end is after 5 s on CPU 51.
    let late = insp.exec("trace show -c 51 -s 5").unwrap();
    assert!(
        late.contains("watchdog_check:") && !late.contains("contention_begin"),
        "{late}"
    );
    let early = insp.exec("trace -c 56 -e 0.015").unwrap();
    assert!(
        early.contains("[056]") && !early.contains("irq=236 name=timer (LOC)\n           perf")
    );
    assert!(insp.exec("trace -c 64").is_err());
    assert!(insp.exec("trace -s soon").is_err());
    assert!(insp.exec("trace -n").is_err());
}

/// report.html in a real headless Chromium: the DOM has the timeline's and the graph's SVG
/// elements, and the screenshot is a picture (many colours, the fatal interrupt's purple).
#[test]
fn report_html_renders_in_headless_chromium() {
    let (_, _, dir) = lbr();
    let html = dir.join("report.html");
    let url = format!("file://{}", html.display());
    let profile = tempdir("chromium-profile");
    let chromium = |extra: &[&str]| {
        let out = std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                &format!("--user-data-dir={}", profile.display()),
                "--window-size=1400,1000",
            ])
            .args(extra)
            .arg(&url)
            .output()
            .expect("chromium (Debian's `chromium` package; .ci/run installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let dom = String::from_utf8(chromium(&["--dump-dom"])).unwrap();
    for needle in [
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="timeline""#,
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="waitfor""#,
        r#"data-cpu="51""#,
        r#"data-cpu="56""#,
        r#"class="span spin""#,
        r#"class="span hold""#,
        r#"class="span handler hardirq fatal""#,
        r#"class="irqsoff""#,
        r#"class="flow""#,
        r#"class="node cpu cycle""#,
        r#"class="edge cycle""#,
        "fatal interrupt: timer (LOC)",
    ] {
        assert!(dom.contains(needle), "no {needle} in the DOM");
    }
    let png = profile.join("shot.png");
    chromium(&[&format!("--screenshot={}", png.display())]);
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = info.line_size / info.width as usize;
    assert!(px >= 3, "{info:?}");
    let mut colours = std::collections::HashSet::new();
    let (mut non_white, mut purple) = (0usize, 0usize);
    for p in buf[..info.buffer_size()].chunks(px) {
        colours.insert((p[0], p[1], p[2]));
        non_white += usize::from(p[..3] != [255, 255, 255]);
        // The fatal interrupt's bar (#7b2cbf).
        purple += usize::from(
            p[0].abs_diff(0x7b) < 8 && p[1].abs_diff(0x2c) < 8 && p[2].abs_diff(0xbf) < 8,
        );
    }
    let total = (info.width * info.height) as usize;
    assert!(colours.len() > 50, "{} colours", colours.len());
    assert!(
        non_white * 20 > total,
        "{non_white} of {total} pixels are not white"
    );
    assert!(purple > 500, "{purple} purple pixels");
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lockvmm-trace-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `ftrace_dump_on_oops`: the panic prints the panicking CPU's trace between ftrace's markers,
/// its last line the watchdog check that found the lockup.
#[test]
fn ftrace_dump_on_oops_prints_the_trace_at_panic() {
    let (r, _, dir) = common::run_complete("vmm/tests/scenarios/trace_dump.toml");
    let console = r.console.clone();
    let start = console.find("Dumping ftrace buffer:\n---------------------------------\n");
    let start = start.expect("the dump's header");
    let body = &console[start..];
    let end = body[40..]
        .find("---------------------------------")
        .expect("its end")
        + 40;
    let lines: Vec<&str> = body[..end].lines().skip(2).collect();
    assert!(lines.len() > 5, "{lines:?}");
    assert!(
        lines.iter().all(|l| l.contains(" 1d")),
        "only CPU 1, irqs off: {lines:?}"
    );
    assert!(
        lines.last().unwrap().contains("watchdog_check:"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("lock_acquired:") && l.contains("lab_lock+"))
    );
    // The classes the scenario left out are not recorded.
    let trace = read_trace(&common::analysis(&r)).unwrap();
    assert!(trace.cpus.iter().flat_map(|c| &c.events).all(|e| matches!(
        e.event.map(|e| e.class()),
        Some(
            lockvmm_abi::trace::class::LOCK
                | lockvmm_abi::trace::class::WATCHDOG
                | lockvmm_abi::trace::class::IRQ
        )
    )));
    assert!(dir.join("trace.json").is_file());
    // Negative control: lbr_gfp traces but does not ask for the dump.
    let lbr_console = &lbr().0.console;
    assert!(!lbr_console.contains("Dumping ftrace buffer:"));
}

/// Without `[trace]`: no buffers in the guest, no trace files.
#[test]
fn untraced_runs_keep_no_buffers_and_write_no_trace_files() {
    let (r, _, dir) = common::run_complete("examples/nmi_lock.toml");
    assert!(r.snapshot.is_some());
    for cpu in 0..r.snapshot.as_ref().unwrap().cpus.len() as u64 {
        assert_eq!(common::read_u64(&r, "trace_buffers", cpu * 8), 0);
    }
    assert!(read_trace(&common::analysis(&r)).is_none());
    for f in lockvmm::lab::trace_files::TRACE_FILES {
        assert!(!dir.join(f).exists(), "{f}");
    }
    let insp = lockvmm::inspect::Inspector::open(&dir.join("vmcore"), None).unwrap();
    assert!(insp.exec("trace").unwrap_err().contains("no trace buffers"));
}

/// `[trace]` errors name the file, the line and the field.
#[test]
fn trace_section_errors_name_file_line_and_field() {
    let dir = tempdir("bad");
    let cases = [
        (
            "events = [\"locks\"]",
            "trace.events: unknown event class `locks` (did you mean `lock`?)",
        ),
        (
            "buffer_kib = 2",
            "trace.buffer_kib = 2: must be between 4 and",
        ),
        ("buffer_kib = 4096", "more than a quarter of the machine's"),
        ("buffers = 4", "unknown field `buffers`"),
    ];
    for (i, (line, want)) in cases.iter().enumerate() {
        let p: PathBuf = dir.join(format!("bad{i}.toml"));
        std::fs::write(
            &p,
            format!("description = \"x\"\n[machine]\nvcpus = 64\n[trace]\n{line}\n"),
        )
        .unwrap();
        let e = lockvmm::LoadedScenario::load(Path::new(&p))
            .err()
            .expect(line)
            .to_string();
        assert!(e.starts_with(&format!("{}:5:", p.display())), "{e}");
        assert!(e.contains(want), "{e}");
    }
}
