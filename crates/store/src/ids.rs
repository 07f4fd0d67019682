//! Opaque ids with a type prefix (`job_…`, `prj_…`) that sort by creation time, so that
//! "newest first" and cursor pagination are an index scan on the id.

use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `prefix_` + 12 hex digits of milliseconds + 6 of a per-process counter + 6 random.
pub fn new_id(prefix: &str) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) & 0xff_ffff;
    let mut r = [0u8; 3];
    // Without randomness the counter still keeps ids of this process apart.
    let _ = getrandom::getrandom(&mut r);
    format!(
        "{prefix}_{:012x}{n:06x}{:02x}{:02x}{:02x}",
        ms & 0xffff_ffff_ffff,
        r[0],
        r[1],
        r[2]
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_prefixed_unique_and_time_ordered() {
        let ids: Vec<String> = (0..1000).map(|_| super::new_id("job")).collect();
        assert!(ids.iter().all(|i| i.starts_with("job_") && i.len() == 4 + 24));
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
    }
}
