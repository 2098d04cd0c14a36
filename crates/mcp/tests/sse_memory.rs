//! Peak memory of the SSE decoder: one event near its size limit, and one far over it.
//!
//! A counting global allocator records the most bytes live at once while the decoder runs.
//! It counts a `realloc` as a resize (old size out, new size in), which is what the system
//! allocator does for blocks this large (`mremap`); the peak had every growth been a fresh
//! allocation plus a copy is printed too, for comparison.

// The allocator has to implement the unsafe `GlobalAlloc` trait; nothing else here is unsafe.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use agw_mcp::sse::Decoder;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static PEAK_IF_COPIED: AtomicUsize = AtomicUsize::new(0);

struct Counting;

fn note(live: usize) {
    PEAK.fetch_max(live, SeqCst);
    PEAK_IF_COPIED.fetch_max(live, SeqCst);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note(LIVE.fetch_add(layout.size(), SeqCst) + layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note(LIVE.fetch_add(layout.size(), SeqCst) + layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (hence from `System`) with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), SeqCst);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and the caller upholds `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            return p;
        }
        let old = layout.size();
        if new_size >= old {
            let live = LIVE.fetch_add(new_size - old, SeqCst) + new_size - old;
            PEAK.fetch_max(live, SeqCst);
            PEAK_IF_COPIED.fetch_max(live + old, SeqCst);
        } else {
            LIVE.fetch_sub(old - new_size, SeqCst);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The measurements share the counters: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const LIMIT: usize = 32 << 20;
const CHUNK: usize = 16 << 10;
/// Allowance for what the test harness and the decoder's own small state allocate.
const SLACK: usize = 256 << 10;

#[derive(Debug)]
struct Run {
    peak: usize,
    peak_if_copied: usize,
    event_len: Option<usize>,
    refused_after: Option<usize>,
}

/// Feeds `data: ` + `body_len` bytes (+ `\n\n` when `complete`) in [`CHUNK`]-sized pieces and
/// returns the peak of live bytes above what was live before.
fn measure(body_len: usize, complete: bool) -> Run {
    let chunk = vec![b'x'; CHUNK];
    let base = LIVE.load(SeqCst);
    PEAK.store(base, SeqCst);
    PEAK_IF_COPIED.store(base, SeqCst);
    let mut run = Run { peak: 0, peak_if_copied: 0, event_len: None, refused_after: None };
    {
        let mut decoder = Decoder::new(LIMIT);
        let mut fed = 0;
        let mut feed = |decoder: &mut Decoder, bytes: &[u8], run: &mut Run| -> bool {
            decoder.feed(bytes);
            fed += bytes.len();
            loop {
                match decoder.next_event() {
                    Ok(Some(ev)) => {
                        assert!(ev.is_message());
                        run.event_len = Some(ev.raw.len());
                    }
                    Ok(None) => return true,
                    Err(_) => {
                        run.refused_after = Some(fed);
                        return false;
                    }
                }
            }
        };
        let mut go = feed(&mut decoder, b"data: ", &mut run);
        let mut left = body_len;
        while go && left > 0 {
            let n = left.min(CHUNK);
            go = feed(&mut decoder, &chunk[..n], &mut run);
            left -= n;
        }
        if go && complete {
            feed(&mut decoder, b"\n\n", &mut run);
        }
    }
    run.peak = PEAK.load(SeqCst) - base;
    run.peak_if_copied = PEAK_IF_COPIED.load(SeqCst) - base;
    run
}

fn mib(n: usize) -> String {
    format!("{:.1} MiB", n as f64 / (1 << 20) as f64)
}

fn bound() -> usize {
    LIMIT + LIMIT * 3 / 10 + SLACK
}

#[test]
fn one_event_near_the_limit_peaks_near_the_limit() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let run = measure(LIMIT - 64, true);
    println!(
        "event of {} (limit {}): peak {} ({} had every growth copied)",
        mib(run.event_len.unwrap_or(0)),
        mib(LIMIT),
        mib(run.peak),
        mib(run.peak_if_copied)
    );
    assert_eq!(run.event_len, Some(LIMIT - 64 + "data: \n\n".len()));
    assert!(run.peak <= bound(), "peak {} over {}", run.peak, bound());
}

#[test]
fn an_oversized_event_is_refused_before_it_is_buffered() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let run = measure(2 * LIMIT, false);
    println!(
        "event of {} (limit {}): refused after {} fed, peak {} ({} had every growth copied)",
        mib(2 * LIMIT),
        mib(LIMIT),
        mib(run.refused_after.unwrap_or(0)),
        mib(run.peak),
        mib(run.peak_if_copied)
    );
    let refused = run.refused_after.expect("the event is refused");
    assert!(refused <= LIMIT + CHUNK + "data: ".len(), "refused only after {refused} bytes");
    assert!(run.peak <= bound(), "peak {} over {}", run.peak, bound());
}
