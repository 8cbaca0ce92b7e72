//! The sans-IO wait set: parked items indexed by key and by deadline.
//!
//! Invariants: an item is in `waiters` exactly once until it is handed back, and every index
//! (`by_key`, `deadlines`) names only items in `waiters`; each item is handed back exactly
//! once (by an event, its deadline, a shutdown of its scope, or `cancel`); a park whose `seen`
//! epochs are stale, or whose scope is shut down, or whose deadline is not after `now`, hands
//! the item straight back instead of parking it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use super::{Scope, WaitKey, Wake};

/// Identifies a parked item (for `cancel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WaiterId(u64);

/// The result of `park`.
#[derive(Debug)]
pub enum Parking<T> {
    Parked(WaiterId),
    /// Not parked: the item comes straight back, with the reason.
    Ready(T, Wake),
}

struct Parked<T> {
    item: T,
    keys: Vec<WaitKey>,
    deadline: Instant,
    scope: Scope,
}

pub struct WaitSet<T> {
    next_id: u64,
    waiters: HashMap<WaiterId, Parked<T>>,
    by_key: HashMap<WaitKey, HashSet<WaiterId>>,
    deadlines: BTreeSet<(Instant, WaiterId)>,
    epochs: HashMap<WaitKey, u64>,
    /// Scopes shut down; `all_stopped`: every scope (the broker closed).
    stopped_scopes: HashSet<Scope>,
    all_stopped: bool,
}

impl<T> Default for WaitSet<T> {
    fn default() -> Self {
        WaitSet {
            next_id: 0,
            waiters: HashMap::new(),
            by_key: HashMap::new(),
            deadlines: BTreeSet::new(),
            epochs: HashMap::new(),
            stopped_scopes: HashSet::new(),
            all_stopped: false,
        }
    }
}

impl<T> WaitSet<T> {
    /// The current epoch of each key, to pass back to `park`.
    pub fn epochs(&self, keys: &[WaitKey]) -> Vec<u64> {
        keys.iter()
            .map(|k| self.epochs.get(k).copied().unwrap_or(0))
            .collect()
    }

    fn stopped(&self, scope: Scope) -> bool {
        self.all_stopped || self.stopped_scopes.contains(&scope)
    }

    /// Parks `item` until an event on one of `keys`, `deadline`, or a shutdown of `scope`.
    /// `seen` are the epochs read (with `epochs`) before the caller checked its condition.
    pub fn park(
        &mut self,
        item: T,
        keys: Vec<WaitKey>,
        seen: &[u64],
        deadline: Instant,
        scope: Scope,
        now: Instant,
    ) -> Parking<T> {
        if self.stopped(scope) {
            return Parking::Ready(item, Wake::Shutdown);
        }
        let stale = keys.len() != seen.len() || self.epochs(&keys).as_slice() != seen;
        if stale {
            return Parking::Ready(item, Wake::Event);
        }
        if deadline <= now {
            return Parking::Ready(item, Wake::Deadline);
        }
        let id = WaiterId(self.next_id);
        self.next_id += 1;
        for k in &keys {
            self.by_key.entry(k.clone()).or_default().insert(id);
        }
        self.deadlines.insert((deadline, id));
        self.waiters.insert(
            id,
            Parked {
                item,
                keys,
                deadline,
                scope,
            },
        );
        Parking::Parked(id)
    }

    /// An event on `key`: bumps its epoch and hands back everything waiting on it.
    pub fn event(&mut self, key: &WaitKey) -> Vec<(T, Wake)> {
        *self.epochs.entry(key.clone()).or_insert(0) += 1;
        let ids = self.by_key.remove(key).unwrap_or_default();
        let mut ids: Vec<WaiterId> = ids.into_iter().collect();
        ids.sort_unstable();
        ids.into_iter()
            .filter_map(|id| self.take(id))
            .map(|item| (item, Wake::Event))
            .collect()
    }

    /// Hands back everything whose deadline is at or before `now`, earliest first.
    pub fn expire(&mut self, now: Instant) -> Vec<(T, Wake)> {
        let mut out = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            match self.take(id) {
                Some(item) => out.push((item, Wake::Deadline)),
                None => {
                    self.deadlines.remove(&(deadline, id));
                }
            }
        }
        out
    }

    /// The earliest deadline of a parked item.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(d, _)| d)
    }

    /// Shuts `scope` down: hands back its waiters, and later parks in it come straight back.
    pub fn shutdown(&mut self, scope: Scope) -> Vec<(T, Wake)> {
        self.stopped_scopes.insert(scope);
        self.drain(|p| p.scope == scope)
    }

    /// Shuts every scope down (the broker is closing).
    pub fn shutdown_all(&mut self) -> Vec<(T, Wake)> {
        self.all_stopped = true;
        self.drain(|_| true)
    }

    fn drain(&mut self, pick: impl Fn(&Parked<T>) -> bool) -> Vec<(T, Wake)> {
        let mut ids: Vec<WaiterId> = self
            .waiters
            .iter()
            .filter(|(_, p)| pick(p))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids.into_iter()
            .filter_map(|id| self.take(id))
            .map(|item| (item, Wake::Shutdown))
            .collect()
    }

    /// Takes a parked item back without waking it (its waiter gave up on its own).
    pub fn cancel(&mut self, id: WaiterId) -> Option<T> {
        self.take(id)
    }

    /// Whether `shutdown_all` was called.
    pub fn all_shut_down(&self) -> bool {
        self.all_stopped
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    /// Items parked in any scope but `scope`.
    pub fn len_outside(&self, scope: Scope) -> usize {
        self.waiters.values().filter(|p| p.scope != scope).count()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    fn take(&mut self, id: WaiterId) -> Option<T> {
        let parked = self.waiters.remove(&id)?;
        self.deadlines.remove(&(parked.deadline, id));
        for k in &parked.keys {
            if let Some(ids) = self.by_key.get_mut(k) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_key.remove(k);
                }
            }
        }
        Some(parked.item)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::broker::wait::BROKER_SCOPE;

    fn p(n: i32) -> WaitKey {
        WaitKey::partition("t", n)
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    fn parked<T: std::fmt::Debug>(r: Parking<T>) -> WaiterId {
        match r {
            Parking::Parked(id) => id,
            Parking::Ready(item, why) => panic!("not parked: {item:?} {why:?}"),
        }
    }

    #[test]
    fn an_event_wakes_every_waiter_on_its_key_and_only_those() {
        let t0 = Instant::now();
        let mut set = WaitSet::default();
        let seen = set.epochs(&[p(0)]);
        parked(set.park("a", vec![p(0)], &seen, ms(t0, 100), BROKER_SCOPE, t0));
        parked(set.park("b", vec![p(0)], &seen, ms(t0, 100), BROKER_SCOPE, t0));
        let seen1 = set.epochs(&[p(1)]);
        parked(set.park("c", vec![p(1)], &seen1, ms(t0, 100), BROKER_SCOPE, t0));
        let woken = set.event(&p(0));
        assert_eq!(woken, vec![("a", Wake::Event), ("b", Wake::Event)]);
        assert_eq!(set.len(), 1);
        assert!(set.event(&p(0)).is_empty(), "woken waiters are gone");
    }

    #[test]
    fn an_event_between_reading_epochs_and_parking_is_not_lost() {
        let t0 = Instant::now();
        let mut set = WaitSet::default();
        let seen = set.epochs(&[p(0), WaitKey::group("g")]);
        set.event(&WaitKey::group("g"));
        match set.park(1, vec![p(0), WaitKey::group("g")], &seen, ms(t0, 50), 0, t0) {
            Parking::Ready(1, Wake::Event) => {}
            other => panic!("{other:?}"),
        }
        assert!(set.is_empty());
    }

    #[test]
    fn a_waiter_on_several_keys_is_woken_once() {
        let t0 = Instant::now();
        let mut set = WaitSet::default();
        let keys = vec![p(0), p(1), WaitKey::group("g")];
        let seen = set.epochs(&keys);
        parked(set.park(7, keys, &seen, ms(t0, 10), BROKER_SCOPE, t0));
        assert_eq!(set.event(&p(1)), vec![(7, Wake::Event)]);
        assert!(set.event(&p(0)).is_empty());
        assert!(set.expire(ms(t0, 1000)).is_empty());
        assert_eq!(set.next_deadline(), None);
    }

    #[test]
    fn deadlines_expire_in_order_and_not_before_their_time() {
        let t0 = Instant::now();
        let mut set = WaitSet::default();
        for (item, at) in [("late", 30), ("early", 10), ("mid", 20)] {
            parked(set.park(item, vec![p(0)], &[0], ms(t0, at), BROKER_SCOPE, t0));
        }
        assert_eq!(set.next_deadline(), Some(ms(t0, 10)));
        assert!(set.expire(ms(t0, 9)).is_empty());
        assert_eq!(
            set.expire(ms(t0, 20)),
            vec![("early", Wake::Deadline), ("mid", Wake::Deadline)]
        );
        assert_eq!(set.next_deadline(), Some(ms(t0, 30)));
        assert_eq!(set.event(&p(0)), vec![("late", Wake::Event)]);
    }

    #[test]
    fn a_deadline_already_passed_comes_straight_back() {
        let t0 = Instant::now();
        let mut set = WaitSet::default();
        match set.park("x", vec![p(0)], &[0], t0, BROKER_SCOPE, ms(t0, 1)) {
            Parking::Ready("x", Wake::Deadline) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn shutting_a_scope_down_wakes_only_its_waiters_and_refuses_new_parks_in_it() {
        let t0 = Instant::now();
        let mut set = WaitSet::default();
        parked(set.park("server", vec![p(0)], &[0], ms(t0, 99), 1, t0));
        parked(set.park("embedded", vec![p(0)], &[0], ms(t0, 99), BROKER_SCOPE, t0));
        assert_eq!(set.shutdown(1), vec![("server", Wake::Shutdown)]);
        match set.park("again", vec![p(0)], &[0], ms(t0, 99), 1, t0) {
            Parking::Ready("again", Wake::Shutdown) => {}
            other => panic!("{other:?}"),
        }
        parked(set.park("other", vec![p(1)], &[0], ms(t0, 99), 2, t0));
        let mut all = set.shutdown_all();
        all.sort();
        assert_eq!(
            all,
            vec![("embedded", Wake::Shutdown), ("other", Wake::Shutdown)]
        );
        match set.park("late", vec![p(0)], &[1], ms(t0, 99), BROKER_SCOPE, t0) {
            Parking::Ready("late", Wake::Shutdown) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_cancelled_waiter_is_never_woken() {
        let t0 = Instant::now();
        let mut set = WaitSet::default();
        let id = parked(set.park("x", vec![p(0)], &[0], ms(t0, 5), BROKER_SCOPE, t0));
        assert_eq!(set.cancel(id), Some("x"));
        assert_eq!(set.cancel(id), None);
        assert!(set.event(&p(0)).is_empty());
        assert!(set.expire(ms(t0, 10)).is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Park { keys: Vec<i32>, deadline_ms: u64 },
        Event(i32),
        Advance(u64),
        Cancel(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (proptest::collection::vec(0..4i32, 1..3), 1..50u64)
                .prop_map(|(keys, deadline_ms)| Op::Park { keys, deadline_ms }),
            (0..4i32).prop_map(Op::Event),
            (0..30u64).prop_map(Op::Advance),
            (0..20usize).prop_map(Op::Cancel),
        ]
    }

    proptest! {
        /// Whatever the interleaving, every parked item comes back exactly once, never before
        /// an event on one of its keys or its deadline, and the indexes never name a
        /// departed item.
        #[test]
        fn every_item_comes_back_exactly_once_and_for_a_true_reason(
            ops in proptest::collection::vec(op(), 1..80)
        ) {
            let t0 = Instant::now();
            let mut now = 0u64;
            let mut set: WaitSet<usize> = WaitSet::default();
            // item -> (keys, deadline_ms, id)
            let mut live: HashMap<usize, (Vec<i32>, u64, WaiterId)> = HashMap::new();
            let mut returned: HashSet<usize> = HashSet::new();
            let mut next_item = 0usize;
            let back = |item: usize, returned: &mut HashSet<usize>| {
                prop_assert!(returned.insert(item), "item {} returned twice", item);
                Ok(())
            };
            for op in ops {
                match op {
                    Op::Park { keys, deadline_ms } => {
                        let keys_w: Vec<WaitKey> = keys.iter().map(|&k| p(k)).collect();
                        let seen = set.epochs(&keys_w);
                        let item = next_item;
                        next_item += 1;
                        match set.park(item, keys_w, &seen, ms(t0, now + deadline_ms), 0, ms(t0, now)) {
                            Parking::Parked(id) => { live.insert(item, (keys, now + deadline_ms, id)); }
                            Parking::Ready(..) => prop_assert!(false, "fresh epochs and a future deadline park"),
                        }
                    }
                    Op::Event(k) => {
                        for (item, why) in set.event(&p(k)) {
                            prop_assert_eq!(why, Wake::Event);
                            let (keys, _, _) = live.remove(&item).expect("woken item was parked");
                            prop_assert!(keys.contains(&k));
                            back(item, &mut returned)?;
                        }
                    }
                    Op::Advance(d) => {
                        now += d;
                        for (item, why) in set.expire(ms(t0, now)) {
                            prop_assert_eq!(why, Wake::Deadline);
                            let (_, deadline, _) = live.remove(&item).expect("expired item was parked");
                            prop_assert!(deadline <= now);
                            back(item, &mut returned)?;
                        }
                    }
                    Op::Cancel(n) => {
                        let mut items: Vec<usize> = live.keys().copied().collect();
                        items.sort_unstable();
                        if let Some(&item) = items.get(n % items.len().max(1)) {
                            let (_, _, id) = live.remove(&item).expect("live");
                            prop_assert_eq!(set.cancel(id), Some(item));
                            back(item, &mut returned)?;
                        }
                    }
                }
                prop_assert_eq!(set.len(), live.len());
                for (_, deadline, _) in live.values() {
                    prop_assert!(*deadline > now, "an overdue item is still parked");
                }
            }
            let rest = set.shutdown_all();
            prop_assert_eq!(rest.len(), live.len());
            for (item, _) in rest {
                back(item, &mut returned)?;
            }
            prop_assert_eq!(returned.len(), next_item);
        }
    }
}
