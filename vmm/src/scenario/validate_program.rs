//! Checks of the program's structure: op lists (what never returns, `repeat` nesting),
//! interrupt-context handlers (what may run there), and every name an op or action refers to
//! (handlers of the right context, CPUs that exist, labels that some `mark` sets).
use lockvmm_abi::hook::Hook;
use lockvmm_abi::program::MAX_HANDLERS;
use toml::Spanned;

use super::LoadedScenario;
use super::errors::{ScenarioError, nearest};
use super::ops::LockMode;
use super::ops::OpSpec;
use super::schema::{DeliverSpec, HandlerContext, LockKindSpec, OpAt, flatten};

/// How deeply `repeat`s may nest (the guest's interpreter has the same bound).
const MAX_REPEAT_NESTING: usize = 8;

impl LoadedScenario {
    /// A task's or handler's ops: nothing after an op that never returns; `repeat` bodies
    /// likewise, nested at most `MAX_REPEAT_NESTING` deep.
    pub(super) fn validate_ops(&self, ops: &[Spanned<OpSpec>]) -> Result<(), ScenarioError> {
        let list: Vec<OpAt<'_>> = ops.iter().map(|o| (o.get_ref(), o.span())).collect();
        self.validate_op_list(&list, 0)
    }

    fn validate_op_list(&self, ops: &[OpAt<'_>], depth: usize) -> Result<(), ScenarioError> {
        if let Some((end, name)) = ops
            .iter()
            .enumerate()
            .find_map(|(i, (o, _))| o.never_returns().map(|n| (i, n)))
            && let Some((_, next)) = ops.get(end + 1)
        {
            return Err(self.error_at(
                next.clone(),
                format!(
                    "this op would never run: `{name}` before it does not return (make it the task's last op)"
                ),
            ));
        }
        for (o, at) in ops {
            if let OpSpec::Repeat { ops: body, .. } = o {
                if depth + 1 > MAX_REPEAT_NESTING {
                    return Err(self.error_at(
                        at.clone(),
                        format!("repeat: nested more than {MAX_REPEAT_NESTING} deep"),
                    ));
                }
                if let Some(n) = body.iter().find_map(|b| b.never_returns()) {
                    return Err(self.error_at(
                        at.clone(),
                        format!("repeat: `{n}` inside a repeat never returns, so it cannot repeat"),
                    ));
                }
                let body: Vec<OpAt<'_>> = body.iter().map(|b| (b, at.clone())).collect();
                self.validate_op_list(&body, depth + 1)?;
            }
        }
        Ok(())
    }

    /// `[[handler]]`: unique names, few enough, existing CPUs, `on_tick` only for hardirq,
    /// and no op that sleeps or never returns (interrupt context cannot).
    pub(super) fn validate_handlers(&self, vcpus: i64) -> Result<(), ScenarioError> {
        let handlers = &self.scenario.handler;
        if handlers.len() > MAX_HANDLERS {
            return Err(self.error_at(
                handlers[MAX_HANDLERS].span(),
                format!("at most {MAX_HANDLERS} handlers"),
            ));
        }
        for (i, h) in handlers.iter().enumerate() {
            let hs = h.get_ref();
            if handlers[..i]
                .iter()
                .any(|o| o.get_ref().name.get_ref() == hs.name.get_ref())
            {
                return Err(self.error_at(
                    hs.name.span(),
                    format!("handler `{}` is declared twice", hs.name.get_ref()),
                ));
            }
            if let Some(c) = hs
                .cpu
                .as_ref()
                .filter(|c| !(0..vcpus).contains(c.get_ref()))
            {
                return Err(self.error_at(
                    c.span(),
                    format!(
                        "handler.cpu = {}: the machine has CPUs 0 to {}",
                        c.get_ref(),
                        vcpus - 1
                    ),
                ));
            }
            if hs.on_tick && hs.context != HandlerContext::Hardirq {
                return Err(self.error_at(
                    h.span(),
                    "handler.on_tick: only a hardirq handler runs from the tick",
                ));
            }
            if let Some((o, at)) = flatten(&hs.ops)
                .into_iter()
                .find(|(o, _)| o.sleeps().is_some())
            {
                let n = o.sleeps().unwrap_or_default();
                return Err(self.error_at(
                    at,
                    format!(
                        "`{n}` cannot run in a {} handler: interrupt context must not sleep or loop forever",
                        format!("{:?}", hs.context).to_lowercase()
                    ),
                ));
            }
            self.validate_ops(&hs.ops)?;
        }
        Ok(())
    }

    /// Names ops and actions refer to: handlers (of the right context), CPUs, labels, locks.
    pub(super) fn validate_references(&self, vcpus: i64) -> Result<(), ScenarioError> {
        for (o, at) in self.scenario.all_ops() {
            let (handler, want, cpu) = match o {
                OpSpec::SendIpi { cpu, handler } => {
                    (Some(handler), HandlerContext::Hardirq, Some(*cpu))
                }
                OpSpec::SmpCallFunctionSingle { cpu, handler, .. } => {
                    (Some(handler), HandlerContext::Hardirq, Some(*cpu))
                }
                OpSpec::SendNmi { cpu } => (None, HandlerContext::Nmi, Some(*cpu)),
                OpSpec::RaiseSoftirq { handler: Some(h) } => {
                    (Some(h), HandlerContext::Softirq, None)
                }
                OpSpec::ArmTimer {
                    handler: Some(h), ..
                } => (Some(h), HandlerContext::Timer, None),
                OpSpec::Mark { label } if label.is_empty() => {
                    return Err(self.error_at(at, "mark: the label must not be empty"));
                }
                _ => continue,
            };
            if let Some(c) = cpu.filter(|c| !(0..vcpus).contains(c)) {
                return Err(self.error_at(
                    at.clone(),
                    format!("CPU {c} does not exist (0 to {})", vcpus - 1),
                ));
            }
            if let Some(h) = handler {
                self.check_handler(at, h, want)?;
            }
        }
        for a in &self.scenario.action {
            let spec = a.get_ref();
            match (spec.deliver, &spec.handler) {
                (DeliverSpec::Irq, Some(h)) => {
                    self.check_handler(h.span(), h.get_ref(), HandlerContext::Hardirq)?
                }
                (DeliverSpec::Irq, None) => {
                    return Err(self.error_at(a.span(), "deliver = \"irq\" needs `handler`: the hardirq handler whose vector to deliver"));
                }
                (_, Some(h)) => {
                    return Err(
                        self.error_at(h.span(), "action.handler goes with deliver = \"irq\"")
                    );
                }
                _ => {}
            }
            let hook = spec
                .at_hook
                .as_ref()
                .and_then(|h| Hook::from_name(h.get_ref()));
            if let Some(l) = &spec.lock {
                if !matches!(hook, Some(Hook::LockAcquired | Hook::LockReleased)) {
                    return Err(self.error_at(
                        l.span(),
                        "action.lock goes with at_hook = \"lock_acquired\" or \"lock_released\"",
                    ));
                }
                if !self
                    .scenario
                    .lock
                    .iter()
                    .any(|x| x.name.get_ref() == l.get_ref())
                {
                    return Err(self.error_at(l.span(), format!("no lock named `{}`", l.get_ref())));
                }
            }
            if let Some(l) = &spec.label {
                if hook != Some(Hook::Mark) {
                    return Err(
                        self.error_at(l.span(), "action.label goes with at_hook = \"mark\"")
                    );
                }
                let used = self
                    .scenario
                    .all_ops()
                    .iter()
                    .any(|(o, _)| matches!(o, OpSpec::Mark { label } if label == l.get_ref()));
                if !used {
                    return Err(
                        self.error_at(l.span(), format!("no mark op sets label `{}`", l.get_ref()))
                    );
                }
            }
        }
        self.validate_lock_kinds()?;
        let t = &self.scenario.watchdog.hung_task_timeout_secs;
        if !(0..=86_400).contains(t.get_ref()) {
            return Err(self.error_at(
                t.span(),
                "watchdog.hung_task_timeout_secs must be 0 (off) to 86400 seconds",
            ));
        }
        let e = &self.scenario.expect;
        if let Some(c) = e
            .context
            .as_ref()
            .filter(|c| !matches!(c.get_ref().as_str(), "task" | "softirq" | "hardirq" | "nmi"))
        {
            return Err(self.error_at(
                c.span(),
                format!(
                    "expect.context: `{}` is not a context (task, softirq, hardirq, nmi)",
                    c.get_ref()
                ),
            ));
        }
        if let Some(q) = &e.quiet_cpus
            && let Some(bad) = q.get_ref().iter().find(|c| !(0..vcpus).contains(*c))
        {
            return Err(self.error_at(
                q.span(),
                format!(
                    "expect.quiet_cpus: CPU {bad} does not exist (0 to {})",
                    vcpus - 1
                ),
            ));
        }
        for t in [&e.detected_after, &e.detected_before]
            .into_iter()
            .flatten()
        {
            if !(t.get_ref().is_finite() && *t.get_ref() >= 0.0) {
                return Err(self.error_at(
                    t.span(),
                    "expect: a detection time is virtual seconds, 0 or more",
                ));
            }
        }
        for t in &self.scenario.task {
            if let Some(s) = &t.get_ref().start_at {
                let v = *s.get_ref();
                if !(v.is_finite() && v >= 0.0) {
                    return Err(self.error_at(
                        s.span(),
                        "task.start_at must be a time in virtual seconds, 0 or more",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Ops fit the kind of lock they name: `lock`/`unlock` a spinlock, mutex or semaphore,
    /// `read_lock`/`write_lock` an rwlock; sleeping locks only in plain mode and not from a
    /// handler; a kernel alias only for a spinlock.
    fn validate_lock_kinds(&self) -> Result<(), ScenarioError> {
        let kind_of = |name: &str| {
            self.scenario
                .lock
                .iter()
                .find(|l| l.name.get_ref() == name)
                .map(|l| l.kind)
        };
        for l in &self.scenario.lock {
            if l.kernel.is_some() && l.kind != LockKindSpec::Spinlock {
                return Err(self.error_at(
                    l.name.span(),
                    "lock.kernel: only a spinlock can alias a kernel lock",
                ));
            }
            if let Some(c) = &l.count {
                if l.kind != LockKindSpec::Semaphore {
                    return Err(
                        self.error_at(c.span(), "lock.count goes with kind = \"semaphore\"")
                    );
                }
                if !(0..=1_000_000).contains(c.get_ref()) {
                    return Err(self.error_at(c.span(), "lock.count must be 0 to 1000000"));
                }
            }
        }
        // Every op, with whether it runs in a handler (interrupt context cannot sleep).
        let task_ops = self
            .scenario
            .task
            .iter()
            .flat_map(|t| flatten(&t.get_ref().ops))
            .map(|op| (op, false));
        let handler_ops = self
            .scenario
            .handler
            .iter()
            .flat_map(|h| flatten(&h.get_ref().ops))
            .map(|op| (op, true));
        for ((o, at), in_handler) in task_ops.chain(handler_ops) {
            let Some(name) = o.lock() else { continue };
            let Some(kind) = kind_of(name) else { continue };
            let rw = matches!(
                o,
                OpSpec::ReadLock { .. }
                    | OpSpec::ReadUnlock { .. }
                    | OpSpec::WriteLock { .. }
                    | OpSpec::WriteUnlock { .. }
            );
            let sleeping = matches!(kind, LockKindSpec::Mutex | LockKindSpec::Semaphore);
            let why = match (kind, rw, o) {
                (LockKindSpec::Rwlock, false, _) => Some(format!(
                    "`{name}` is an rwlock: use read_lock/write_lock and their unlocks"
                )),
                (k, true, _) if k != LockKindSpec::Rwlock => {
                    Some(format!("`{name}` is not an rwlock"))
                }
                (_, _, OpSpec::Trylock { .. }) if kind != LockKindSpec::Spinlock => {
                    Some(format!("trylock takes a spinlock; `{name}` is not one"))
                }
                (_, _, OpSpec::Lock { mode, .. } | OpSpec::Unlock { mode, .. })
                    if sleeping && *mode != LockMode::Plain =>
                {
                    Some(format!("`{name}` sleeps: it has no irq or bh modes"))
                }
                _ if sleeping && in_handler => {
                    Some(format!("`{name}` sleeps: a handler cannot take it"))
                }
                _ => None,
            };
            if let Some(why) = why {
                return Err(self.error_at(at, why));
            }
        }
        Ok(())
    }

    /// `name` is a declared handler of context `want`.
    fn check_handler(
        &self,
        at: std::ops::Range<usize>,
        name: &str,
        want: HandlerContext,
    ) -> Result<(), ScenarioError> {
        let names: Vec<&str> = self
            .scenario
            .handler
            .iter()
            .map(|h| h.get_ref().name.get_ref().as_str())
            .collect();
        match self
            .scenario
            .handler
            .iter()
            .find(|h| h.get_ref().name.get_ref() == name)
        {
            Some(h) if h.get_ref().context == want => Ok(()),
            Some(h) => Err(self.error_at(
                at,
                format!(
                    "handler `{name}` runs in {} context; this needs a {} handler",
                    format!("{:?}", h.get_ref().context).to_lowercase(),
                    format!("{want:?}").to_lowercase()
                ),
            )),
            None => {
                let hint = nearest(name, &names).map_or_else(
                    || " (declare it with [[handler]] name = ...)".to_string(),
                    |n| format!(" (did you mean `{n}`?)"),
                );
                Err(self.error_at(at, format!("no handler named `{name}`{hint}")))
            }
        }
    }
}
