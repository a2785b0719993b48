//! The wait-for graph at the snapshot: CPUs wait on locks, locks are held by CPUs. Built from
//! the analysis's lock waits (each CPU's innermost wait is what it is stuck on); the cycle,
//! if the waits close one, is the deadlock.
use std::collections::BTreeSet;

use crate::state::LockWait;
use crate::state::locks::innermost;

/// A node: a CPU or a lock.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum WaitNode {
    Cpu(usize),
    Lock { addr: u64, name: String },
}

impl WaitNode {
    /// A Graphviz-safe identifier.
    pub fn id(&self) -> String {
        match self {
            WaitNode::Cpu(c) => format!("cpu{c}"),
            WaitNode::Lock { addr, .. } => format!("lock_{addr:x}"),
        }
    }

    pub fn label(&self) -> String {
        match self {
            WaitNode::Cpu(c) => format!("CPU {c}"),
            WaitNode::Lock { name, .. } => name.clone(),
        }
    }
}

/// The graph: `edges` go from a waiting CPU to its lock ("waits for") and from a lock to its
/// holder ("held by").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitFor {
    pub nodes: Vec<WaitNode>,
    /// (from, to, label, context of the wait) by node index.
    pub edges: Vec<(usize, usize, String)>,
    /// Indexes of the nodes on the cycle, in order (empty: no cycle).
    pub cycle: Vec<usize>,
}

impl WaitFor {
    pub fn build(waits: &[LockWait]) -> WaitFor {
        let mut g = WaitFor::default();
        let cpus: BTreeSet<usize> = waits.iter().map(|w| w.cpu).collect();
        for &cpu in &cpus {
            let Some(w) = innermost(waits, cpu) else {
                continue;
            };
            let c = g.node(WaitNode::Cpu(cpu));
            let l = g.node(WaitNode::Lock {
                addr: w.lock,
                name: w.lock_name.clone(),
            });
            g.edges
                .push((c, l, format!("waits ({})", w.context.name())));
            if let Some(h) = w.holder {
                let h = g.node(WaitNode::Cpu(h));
                if !g.edges.iter().any(|e| e.0 == l && e.1 == h) {
                    g.edges.push((l, h, "held by".into()));
                }
            }
        }
        g.cycle = g.find_cycle();
        g
    }

    fn node(&mut self, n: WaitNode) -> usize {
        if let Some(i) = self.nodes.iter().position(|x| *x == n) {
            return i;
        }
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    /// Each node has at most one way out (a CPU waits on one lock, a lock has one holder), so
    /// following it from every node finds the cycle if there is one.
    fn find_cycle(&self) -> Vec<usize> {
        let next = |n: usize| self.edges.iter().find(|e| e.0 == n).map(|e| e.1);
        for start in 0..self.nodes.len() {
            let mut path = vec![start];
            let mut at = start;
            while let Some(n) = next(at) {
                if let Some(pos) = path.iter().position(|&p| p == n) {
                    return path[pos..].to_vec();
                }
                if path.len() > self.nodes.len() {
                    break;
                }
                path.push(n);
                at = n;
            }
        }
        Vec::new()
    }

    /// Whether the edge `from → to` is on the cycle.
    pub fn edge_on_cycle(&self, from: usize, to: usize) -> bool {
        let n = self.cycle.len();
        (0..n).any(|i| self.cycle[i] == from && self.cycle[(i + 1) % n] == to)
    }

    /// The CPUs in the graph.
    pub fn cpus(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .filter_map(|n| match n {
                WaitNode::Cpu(c) => Some(*c),
                WaitNode::Lock { .. } => None,
            })
            .collect()
    }
}
