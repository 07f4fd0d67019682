//! The planner's bookkeeping: one pool's free capacity over time (a segment tree), and what
//! the searches of a plan have proved so far, so that alike jobs do not search again.

use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// One pool's free capacity (thousandths of a GPU) over time, bucket by bucket: a segment
/// tree with range addition and "first bucket from here below / at least a bound".
pub(super) struct Timeline {
    size: usize,
    /// Per tree node: the smallest and largest value below it, its own addition included.
    min: Vec<i64>,
    max: Vec<i64>,
    add: Vec<i64>,
}

impl Timeline {
    pub(super) fn new(free: i64, size: usize) -> Timeline {
        let mut t = Timeline {
            size,
            min: vec![0; 2 * size],
            max: vec![0; 2 * size],
            add: vec![0; 2 * size],
        };
        t.range_add(0, size, free);
        t
    }

    pub(super) fn range_add(&mut self, from: usize, to: usize, v: i64) {
        if from < to {
            self.add_in(1, 0, self.size, from, to, v);
        }
    }

    fn add_in(&mut self, node: usize, lo: usize, hi: usize, from: usize, to: usize, v: i64) {
        if to <= lo || hi <= from {
            return;
        }
        if from <= lo && hi <= to {
            self.add[node] += v;
            self.min[node] += v;
            self.max[node] += v;
            return;
        }
        let mid = (lo + hi) / 2;
        self.add_in(2 * node, lo, mid, from, to, v);
        self.add_in(2 * node + 1, mid, hi, from, to, v);
        self.min[node] = self.add[node] + self.min[2 * node].min(self.min[2 * node + 1]);
        self.max[node] = self.add[node] + self.max[2 * node].max(self.max[2 * node + 1]);
    }

    /// The first bucket in `from..to` whose value is below `bound` (`below`), or at least
    /// `bound` (otherwise).
    fn first(&self, from: usize, to: usize, bound: i64, below: bool) -> Option<usize> {
        self.first_in(1, 0, self.size, (from, to), bound, below, 0)
    }

    #[allow(clippy::too_many_arguments)]
    fn first_in(
        &self,
        node: usize,
        lo: usize,
        hi: usize,
        (from, to): (usize, usize),
        bound: i64,
        below: bool,
        above: i64,
    ) -> Option<usize> {
        if hi <= from || to <= lo {
            return None;
        }
        let hit = if below {
            self.min[node] + above < bound
        } else {
            self.max[node] + above >= bound
        };
        if !hit {
            return None;
        }
        if hi - lo == 1 {
            return Some(lo);
        }
        let mid = (lo + hi) / 2;
        let above = above + self.add[node];
        self.first_in(2 * node, lo, mid, (from, to), bound, below, above)
            .or_else(|| self.first_in(2 * node + 1, mid, hi, (from, to), bound, below, above))
    }

    /// The first bucket at or after `from` from which `need` is free for `len` buckets (or
    /// up to the end of the timeline).
    pub(super) fn earliest(&self, from: usize, need: i64, len: usize) -> Option<usize> {
        let mut start = self.first(from, self.size, need, false)?;
        loop {
            match self.first(start, start.saturating_add(len), need, true) {
                Some(short) => start = self.first(short + 1, self.size, need, false)?,
                None => return Some(start),
            }
        }
    }
}

/// What earlier searches of a plan proved. Capacity only ever shrinks as the plan places
/// jobs, so a search for `need` over `len` buckets from bucket `from` that found nothing
/// free before bucket `a` proves it for every later search from `from` or after that needs
/// as much or more for as long or longer: that one starts at `a`. Without this each job
/// walks again the holes that were too short for the alike jobs before it (50,000 jobs with
/// walltimes: 412 ms without, `aifactory bench --suite forecast`).
#[derive(Default)]
pub(super) struct Searched {
    /// (pool, need, len) -> (from, a): exactly alike jobs.
    exact: FxHashMap<(usize, i64, usize), (usize, usize)>,
    /// Per pool, per (from, need): for each class of length, the furthest `a`, in a Fenwick
    /// tree for the running maximum over the classes below a length. Most searches share a
    /// few `from`s (now; the moment a gang shape finds its nodes), so there are few trees.
    trees: Vec<BTreeMap<(usize, i64), Vec<usize>>>,
}

/// Trees per pool at most: past it, searches from further `from`s are not remembered (a
/// queue of jobs each deferred to its own hour would otherwise make a tree each).
pub(super) const MAX_TREES_PER_POOL: usize = 32;

/// Lengths in classes of a sixteenth of an octave or so, ascending: every length of a
/// class below `length_class(len)` is shorter than `len`.
pub(super) fn length_class(len: usize) -> usize {
    if len < 16 {
        return len;
    }
    let msb = (usize::BITS - 1 - len.leading_zeros()) as usize;
    16 + (msb - 4) * 8 + ((len >> (msb - 3)) & 7)
}

pub(super) const LENGTH_CLASSES: usize = 16 + (usize::BITS as usize - 4) * 8;

impl Searched {
    pub(super) fn lower_bound(&self, pool: usize, need: i64, len: usize, from: usize) -> usize {
        let mut start = from;
        if let Some(&(f, a)) = self.exact.get(&(pool, need, len))
            && f <= from
        {
            start = start.max(a);
        }
        let Some(trees) = self.trees.get(pool) else {
            return start;
        };
        let class = length_class(len);
        for (_, tree) in trees.range(..=(from, i64::MAX)).filter(|((_, n), _)| *n <= need) {
            // Running maximum over the classes strictly below `class`.
            let mut i = class;
            while i > 0 {
                start = start.max(tree[i]);
                i &= i - 1;
            }
        }
        start
    }

    /// A search from `from` found its first fit at `found` (the timeline's end when none),
    /// having skipped only what earlier searches proved.
    pub(super) fn record(&mut self, pool: usize, need: i64, len: usize, from: usize, found: usize) {
        let proved_from = match self.exact.get(&(pool, need, len)) {
            Some(&(f, a)) if f <= from && from <= a => f,
            _ => from,
        };
        self.exact.insert((pool, need, len), (proved_from, found));
        if self.trees.len() <= pool {
            self.trees.resize_with(pool + 1, BTreeMap::new);
        }
        let trees = &mut self.trees[pool];
        if trees.len() >= MAX_TREES_PER_POOL && !trees.contains_key(&(from, need)) {
            return;
        }
        let tree = trees.entry((from, need)).or_insert_with(|| vec![0; LENGTH_CLASSES + 1]);
        let mut i = length_class(len) + 1;
        while i <= LENGTH_CLASSES {
            tree[i] = tree[i].max(found);
            i += i & i.wrapping_neg();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_classes_ascend_and_lower_ones_are_shorter() {
        let mut last = 0;
        for len in 1..(1 << 17) {
            let c = length_class(len);
            assert!(c >= last && c < LENGTH_CLASSES, "{len}");
            last = c;
        }
        // Every length of a class below len's is shorter than len.
        for len in [16usize, 17, 100, 1000, 65_536, 131_071] {
            let lowest_of_class = (1..=len).find(|&l| length_class(l) == length_class(len)).unwrap();
            assert!(lowest_of_class <= len);
            assert!(length_class(lowest_of_class - 1) < length_class(len));
        }
    }

    #[test]
    fn timelines_find_the_first_window_with_room() {
        let mut t = Timeline::new(8000, 1024);
        t.range_add(10, 20, -6000);
        t.range_add(30, 31, -8000);
        assert_eq!(t.earliest(0, 4000, 5), Some(0));
        assert_eq!(
            t.earliest(0, 4000, 15),
            Some(31),
            "20..35 would cross the full bucket 30"
        );
        assert_eq!(t.earliest(8, 1000, 5), Some(8), "2,000 left in 10..20 is room enough");
        assert_eq!(t.earliest(8, 4000, 5), Some(20));
        assert_eq!(t.earliest(25, 1000, 10), Some(31));
        assert_eq!(t.earliest(0, 9000, 1), None);
    }
}
