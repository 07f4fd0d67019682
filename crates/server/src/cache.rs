//! A small time-bounded cache for what almost every request reads and almost nothing
//! changes (who a token belongs to, what a project may submit to). Entries live a few
//! seconds; changes made through this server clear the cache at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TtlCache<V> {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration, capacity: usize) -> TtlCache<V> {
        TtlCache {
            ttl,
            capacity,
            entries: Mutex::default(),
        }
    }

    pub fn get(&self, key: &str) -> Option<V> {
        let entries = self.entries.lock().expect("cache lock");
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    pub fn insert(&self, key: String, value: V) {
        let mut entries = self.entries.lock().expect("cache lock");
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), value));
    }

    pub fn clear(&self) {
        self.entries.lock().expect("cache lock").clear();
    }

    /// Forgets the entries whose value `gone` picks (e.g. the tokens of a job that ended).
    pub fn forget(&self, gone: impl Fn(&V) -> bool) {
        self.entries.lock().expect("cache lock").retain(|_, (_, v)| !gone(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_clear() {
        let cache = TtlCache::new(Duration::from_millis(50), 2);
        cache.insert("a".into(), 1);
        assert_eq!(cache.get("a"), Some(1));
        cache.insert("b".into(), 2);
        cache.insert("c".into(), 3);
        assert_eq!(cache.get("a"), None, "full: cleared before the insert");
        assert_eq!(cache.get("c"), Some(3));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get("c"), None, "expired");
        cache.insert("d".into(), 4);
        cache.clear();
        assert_eq!(cache.get("d"), None);
    }
}
