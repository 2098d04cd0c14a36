//! Growing a buffer that holds at most one bounded message.
//!
//! `Vec` doubles its capacity, so a message just over a power of two takes twice its size,
//! and a 32 MiB limit lets one message take 64 MiB. Buffers that hold one message at a time
//! (an SSE event, a stdio line) grow by half again instead, and never past their ceiling.

/// Makes room for `extra` more bytes in `v`, growing its capacity by half again at a time and
/// to at most `ceiling` (or exactly what is needed, if that is more).
pub(crate) fn reserve(v: &mut Vec<u8>, extra: usize, ceiling: usize) {
    let needed = v.len().saturating_add(extra);
    if needed <= v.capacity() {
        return;
    }
    let target = v.capacity().saturating_add(v.capacity() / 2).clamp(needed, ceiling.max(needed));
    v.reserve_exact(target - v.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_half_and_stops_at_the_ceiling() {
        let mut v = Vec::new();
        for _ in 0..100 {
            reserve(&mut v, 1000, 20_500);
            v.extend_from_slice(&[0; 1000]);
            if v.len() < 20_000 {
                assert!(v.capacity() <= 20_500, "{}", v.capacity());
            }
        }
        assert_eq!(v.len(), 100_000, "more than the ceiling still fits");
        let mut w = Vec::with_capacity(10_000);
        w.extend_from_slice(&[0; 10_000]);
        reserve(&mut w, 1, usize::MAX);
        assert!(w.capacity() < 15_100, "half again, not double: {}", w.capacity());
    }
}
