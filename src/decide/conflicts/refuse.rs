//! The refuse policy: which extensions to drop for a set of conflicts (the later side of each),
//! and for the extensions the walk could not judge.

use super::{sort_conflicts, who, Conflict, ConflictKind, BASE};
use std::collections::HashMap;

/// The extensions the refuse policy drops for these conflicts, with the reason for each.
///
/// Layer by layer, an extension is dropped when it conflicts with the base OS or with an
/// extension below it that is kept, so the later (winning) side always goes. `ShadowsBase`
/// never drops. Same-file conflicts are judged between every pair; type changes, opaque
/// directories and whiteouts between their winner and everything below it. Dropping can
/// uncover conflicts that were hidden (e.g. below an opaque directory), so use [`refuse`] to
/// iterate until the set is clean.
pub fn to_drop(conflicts: &[Conflict]) -> Vec<(String, String)> {
    // later extension -> (earlier provider it must not coexist with, or None: always; reason)
    let mut edges: HashMap<&str, Vec<(Option<&str>, String)>> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for c in conflicts {
        let p = &c.providers;
        let pairs: Vec<(&str, &str)> = match c.kind {
            ConflictKind::ShadowsBase => Vec::new(),
            ConflictKind::SameFile => (0..p.len())
                .flat_map(|j| p[..j].iter().map(move |e| (p[j].as_str(), e.as_str())))
                .filter(|(l, e)| *e != BASE && l != e)
                .collect(),
            _ => {
                if p.iter().all(|e| *e == c.winner) {
                    // Hides nothing yet, but would hide future base content: refuse it too.
                    let r = format!("{} conflict on {}: {}", c.kind, c.path, c.detail);
                    edges.entry(&c.winner).or_default().push((None, r));
                }
                p.iter()
                    .filter(|e| **e != c.winner)
                    .map(|e| (c.winner.as_str(), e.as_str()))
                    .collect()
            }
        };
        for (later, earlier) in pairs.into_iter().filter(|(l, _)| *l != BASE) {
            let r = format!(
                "{} conflict with {} on {}: {}",
                c.kind,
                who(earlier),
                c.path,
                c.detail
            );
            edges.entry(later).or_default().push((Some(earlier), r));
        }
        for n in p.iter().map(String::as_str) {
            if n != BASE && !order.contains(&n) {
                order.push(n);
            }
        }
    }
    let mut memo = HashMap::new();
    order
        .into_iter()
        .filter_map(|n| drop_reason(n, &edges, &mut memo).map(|r| (n.to_string(), r)))
        .collect()
}

/// Why `n` is dropped (None: kept): it conflicts with the base or with a kept lower layer.
/// Edges only point to lower layers, so the recursion ends.
fn drop_reason<'a>(
    n: &'a str,
    edges: &HashMap<&'a str, Vec<(Option<&'a str>, String)>>,
    memo: &mut HashMap<&'a str, Option<String>>,
) -> Option<String> {
    if let Some(r) = memo.get(n) {
        return r.clone();
    }
    // Provisionally kept: breaks cycles that only malformed input could contain.
    memo.insert(n, None);
    let reason = edges.get(n).and_then(|es| {
        es.iter()
            .find(|(earlier, _)| match earlier {
                None => true,
                Some(e) => *e == BASE || drop_reason(e, edges, memo).is_none(),
            })
            .map(|(_, r)| r.clone())
    });
    memo.insert(n, reason.clone());
    reason
}

/// What a conflict scan of one layer set found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scanned {
    /// The conflicts between the layers that could be judged, sorted ([`sort_conflicts`]).
    pub conflicts: Vec<Conflict>,
    /// The extensions the walk could not judge (unreadable, too deep, too large), with the
    /// reason for each; they are left out of `conflicts`.
    pub unjudged: Vec<(String, String)>,
    /// How many entries the walk looked up (`statx`), over all its rounds: the cost of the
    /// scan, for the debug log.
    pub looked_up: u64,
}

impl Scanned {
    /// Add the findings of another scan of the same layers (e.g. of other hierarchies).
    pub fn absorb(&mut self, other: Scanned) {
        self.conflicts.extend(other.conflicts);
        sort_conflicts(&mut self.conflicts);
        self.looked_up += other.looked_up;
        for u in other.unjudged {
            if !self.unjudged.iter().any(|(n, _)| *n == u.0) {
                self.unjudged.push(u);
            }
        }
    }
}

/// What the refuse policy decided for one layer set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refusal {
    /// The conflicts of the full layer set (what to report), without the unjudged ones.
    pub conflicts: Vec<Conflict>,
    /// The dropped extensions in drop order, with the reason for each: first those that could
    /// not be judged, then those dropped for conflicts.
    pub dropped: Vec<(String, String)>,
}

/// Why an extension the walk could not judge is refused.
fn unjudged_reason(reason: &str) -> String {
    format!("cannot be checked for conflicts: {reason}")
}

/// Apply the refuse policy with `scan` (which judges a layer set): drop what cannot be judged,
/// then the later extension of each conflict, and rescan the rest until nothing is dropped.
pub fn refuse_scanned<T: Clone, E>(
    layers: &[(String, T)],
    mut scan: impl FnMut(&[(String, T)]) -> Result<Scanned, E>,
) -> Result<Refusal, E> {
    let first = scan(layers)?;
    let mut dropped: Vec<(String, String)> = Vec::new();
    let mut kept: Vec<(String, T)> = layers.to_vec();
    let mut unjudged = first.unjudged;
    let mut conflicts = first.conflicts.clone();
    // Every round drops at least one layer, so this ends after at most len + 1 rounds.
    for _ in 0..=layers.len() {
        kept.retain(|(n, _)| !unjudged.iter().any(|(u, _)| u == n));
        dropped.extend(unjudged.drain(..).map(|(n, r)| (n, unjudged_reason(&r))));
        let round = to_drop(&conflicts);
        if round.is_empty() {
            break;
        }
        kept.retain(|(n, _)| !round.iter().any(|(d, _)| d == n));
        dropped.extend(round);
        let next = scan(&kept)?;
        conflicts = next.conflicts;
        unjudged = next.unjudged;
    }
    Ok(Refusal {
        conflicts: first.conflicts,
        dropped,
    })
}
