//! Checks of the values serde cannot check: ranges, CPUs that exist, names that resolve, ops
//! that can run. Each error points at the offending value.
use super::errors::{ScenarioError, nearest};
use lockvmm_abi::hook::Hook;
use lockvmm_abi::knob::KernelVersion;

use super::LoadedScenario;
use crate::memory::{MAX_MEM_MIB, MIN_MEM_MIB};

impl LoadedScenario {
    /// Checks the values serde cannot; `vcpus_override` is the command line's `--vcpus`.
    pub fn validate(&self, vcpus_override: Option<usize>) -> Result<(), ScenarioError> {
        let vcpus = match vcpus_override {
            Some(v) => v as i64,
            None => *self.scenario.machine.get_ref().vcpus.get_ref(),
        };
        self.validate_machine(vcpus)?;
        self.validate_actions(vcpus)?;
        self.validate_expect(vcpus)?;
        self.validate_limits()?;
        self.validate_locks()?;
        self.validate_tasks(vcpus)?;
        self.validate_handlers(vcpus)?;
        self.validate_references(vcpus)?;
        self.validate_trace(vcpus)?;
        self.validate_explore(vcpus)?;
        self.validate_capacity(vcpus)
    }

    /// `[machine]`: vCPUs, memory, consoles.
    fn validate_machine(&self, vcpus: i64) -> Result<(), ScenarioError> {
        let m = self.scenario.machine.get_ref();
        if vcpus < 1 {
            return Err(self.error_at(
                m.vcpus.span(),
                format!("machine.vcpus = {vcpus}: a machine needs at least 1 vCPU"),
            ));
        }
        if let Some(mem) = &m.memory_mib {
            let v = *mem.get_ref();
            if !(MIN_MEM_MIB as i64..=MAX_MEM_MIB as i64).contains(&v) {
                return Err(self.error_at(
                    mem.span(),
                    format!(
                        "machine.memory_mib = {v}: must be between {MIN_MEM_MIB} and {MAX_MEM_MIB}"
                    ),
                ));
            }
        }
        for c in &m.console {
            if !matches!(c.get_ref().as_str(), "ttyS0" | "tty0") {
                return Err(self.error_at(
                    c.span(),
                    format!(
                        "machine.console: unknown console `{}` (ttyS0 or tty0)",
                        c.get_ref()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `[[action]]`: one trigger each, hooks that exist, CPUs that exist.
    fn validate_actions(&self, vcpus: i64) -> Result<(), ScenarioError> {
        for spanned in &self.scenario.action {
            let a = spanned.get_ref();
            match (&a.at_hook, &a.at_time) {
                (Some(h), None) if Hook::from_name(h.get_ref()).is_none() => {
                    let known: Vec<&str> = Hook::ALL.iter().map(|h| h.name()).collect();
                    let msg = format!(
                        "action.at_hook: unknown hook `{}` ({})",
                        h.get_ref(),
                        known.join(", ")
                    );
                    return Err(self.error_at(h.span(), msg));
                }
                (None, Some(t)) if !t.get_ref().is_finite() || *t.get_ref() < 0.0 => {
                    return Err(self.error_at(
                        t.span(),
                        "action.at_time must be a time in virtual seconds, 0 or more",
                    ));
                }
                (None, Some(_)) if a.cpu.is_none() && a.target.is_none() => {
                    return Err(self.error_at(
                        spanned.span(),
                        "an action at_time needs `cpu` (or `target`): the CPU to act on",
                    ));
                }
                (Some(_), None) | (None, Some(_)) => {}
                _ => {
                    return Err(self.error_at(
                        spanned.span(),
                        "an action needs exactly one of `at_hook` and `at_time`",
                    ));
                }
            }
            if let Some(n) = &a.nth
                && (*n.get_ref() < 1 || a.at_hook.is_none())
            {
                return Err(self.error_at(
                    n.span(),
                    "action.nth counts a hook's occurrences from 1 (with at_hook)",
                ));
            }
            for c in [&a.cpu, &a.target].into_iter().flatten() {
                if !(0..vcpus).contains(c.get_ref()) {
                    return Err(self.error_at(
                        c.span(),
                        format!(
                            "action: CPU {} does not exist (0 to {})",
                            c.get_ref(),
                            vcpus - 1
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// `[expect]`: CPUs that exist, hooks that exist.
    fn validate_expect(&self, vcpus: i64) -> Result<(), ScenarioError> {
        self.validate_expect_hooks(vcpus)?;
        self.validate_expect_splats(vcpus)?;
        let e = &self.scenario.expect;
        for c in [&e.cpu, &e.holder].into_iter().flatten() {
            if !(0..vcpus).contains(c.get_ref()) {
                return Err(self.error_at(
                    c.span(),
                    format!(
                        "expect: CPU {} does not exist (0 to {})",
                        c.get_ref(),
                        vcpus - 1
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `[watchdog]` and `[run]`: Linux's range for the threshold, a sane time limit.
    fn validate_limits(&self) -> Result<(), ScenarioError> {
        if let Some(k) = &self.scenario.machine.get_ref().kernel
            && KernelVersion::from_name(k.get_ref()).is_none()
        {
            let known: Vec<&str> = KernelVersion::ALL.iter().map(|v| v.name()).collect();
            return Err(self.error_at(
                k.span(),
                format!(
                    "machine.kernel: unknown version {:?} (one of {})",
                    k.get_ref(),
                    known.join(", ")
                ),
            ));
        }
        if let Err((span, msg)) =
            super::sysctl::WatchdogKnobs::resolve(&self.scenario.watchdog, &self.scenario.sysctl)
        {
            return Err(self.error_at(span, &msg));
        }
        let limit = &self.scenario.run.max_virtual_seconds;
        if !(*limit.get_ref() > 0.0 && *limit.get_ref() <= 86_400.0) {
            return Err(self.error_at(
                limit.span(),
                "run.max_virtual_seconds must be in (0, 86400]",
            ));
        }
        Ok(())
    }

    /// `[[lock]]`: few enough, no duplicates, every op's lock declared.
    fn validate_locks(&self) -> Result<(), ScenarioError> {
        let names: Vec<&str> = self
            .scenario
            .lock
            .iter()
            .map(|l| l.name.get_ref().as_str())
            .collect();
        if names.len() > lockvmm_abi::program::MAX_LOCKS {
            let at = self.scenario.lock[lockvmm_abi::program::MAX_LOCKS]
                .name
                .span();
            return Err(self.error_at(
                at,
                format!("at most {} locks", lockvmm_abi::program::MAX_LOCKS),
            ));
        }
        for (i, l) in self.scenario.lock.iter().enumerate() {
            if names[..i].contains(&l.name.get_ref().as_str()) {
                return Err(self.error_at(
                    l.name.span(),
                    format!("lock `{}` is declared twice", l.name.get_ref()),
                ));
            }
        }
        for (op, at) in self.scenario.all_ops() {
            if let Some(lock) = op.lock()
                && !names.contains(&lock)
            {
                let hint = nearest(lock, &names).map_or_else(
                    || " (declare it with [[lock]] name = ...)".to_string(),
                    |n| format!(" (did you mean `{n}`?)"),
                );
                return Err(self.error_at(at, format!("no lock named `{lock}`{hint}")));
            }
        }
        Ok(())
    }

    /// `[[task]]`: no op after one that never returns, CPUs that exist, Linux's comm and pid limits.
    fn validate_tasks(&self, vcpus: i64) -> Result<(), ScenarioError> {
        for task in &self.scenario.task {
            self.validate_ops(&task.get_ref().ops)?;
        }
        for task in &self.scenario.task {
            let t = task.get_ref();
            let cpu = *t.cpu.get_ref();
            if cpu < 0 || cpu >= vcpus {
                return Err(self.error_at(
                    t.cpu.span(),
                    format!("task.cpu = {cpu}: the machine has CPUs 0 to {}", vcpus - 1),
                ));
            }
            if t.comm.get_ref().is_empty() || t.comm.get_ref().len() > 15 {
                return Err(self.error_at(
                    t.comm.span(),
                    "task.comm must be 1 to 15 bytes (TASK_COMM_LEN)",
                ));
            }
            if let Some(pid) = t
                .pid
                .as_ref()
                .filter(|p| !(1..=i64::from(u32::MAX)).contains(p.get_ref()))
            {
                return Err(self.error_at(pid.span(), "task.pid must be a positive 32-bit number"));
            }
        }
        Ok(())
    }

    /// `[[expect.splats]]`: known kinds, existing CPUs, counts of 0 or more.
    fn validate_expect_splats(&self, vcpus: i64) -> Result<(), ScenarioError> {
        use lockvmm_abi::lockdep::SplatKind;
        for s in &self.scenario.expect.splats {
            let s = s.get_ref();
            if let Some(k) = s
                .kind
                .as_ref()
                .filter(|k| SplatKind::from_name(k.get_ref()).is_none())
            {
                let known: Vec<&str> = SplatKind::ALL.iter().map(|k| k.name()).collect();
                let msg = format!(
                    "expect.splats: unknown kind `{}` ({})",
                    k.get_ref(),
                    known.join(", ")
                );
                return Err(self.error_at(k.span(), msg));
            }
            if let Some(c) = s.cpu.as_ref().filter(|c| !(0..vcpus).contains(c.get_ref())) {
                let msg = format!(
                    "expect.splats: CPU {} does not exist (0 to {})",
                    c.get_ref(),
                    vcpus - 1
                );
                return Err(self.error_at(c.span(), msg));
            }
            if let Some(n) = s.count.as_ref().filter(|n| *n.get_ref() < 0) {
                return Err(self.error_at(n.span(), "expect.splats: count must be 0 or more"));
            }
        }
        Ok(())
    }

    /// `[[expect.hooks]]`: known hooks, existing CPUs, counts of 0 or more.
    fn validate_expect_hooks(&self, vcpus: i64) -> Result<(), ScenarioError> {
        for h in &self.scenario.expect.hooks {
            let h = h.get_ref();
            if Hook::from_name(h.hook.get_ref()).is_none() {
                let known: Vec<&str> = Hook::ALL.iter().map(|h| h.name()).collect();
                return Err(self.error_at(
                    h.hook.span(),
                    format!(
                        "expect.hooks: unknown hook `{}` ({})",
                        h.hook.get_ref(),
                        known.join(", ")
                    ),
                ));
            }
            if let Some(c) = h.cpu.as_ref().filter(|c| !(0..vcpus).contains(c.get_ref())) {
                return Err(self.error_at(
                    c.span(),
                    format!(
                        "expect.hooks: CPU {} does not exist (0 to {})",
                        c.get_ref(),
                        vcpus - 1
                    ),
                ));
            }
            if let Some(n) = h.count.as_ref().filter(|n| *n.get_ref() < 0) {
                return Err(self.error_at(n.span(), "expect.hooks: count must be 0 or more"));
            }
        }
        Ok(())
    }
}
