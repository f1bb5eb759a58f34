//! Work split across the machine's cores for the moment it takes: a batch
//! of independent CPU-bound steps (signing or verifying a hundred
//! signatures) that would otherwise run one after another on one core
//! while the other waits.

/// Fewer items than this per thread are not worth a thread.
const MIN_PER_THREAD: usize = 16;

/// `items` mapped by `f`, in order, on up to as many scoped threads as the
/// machine has cores (on the calling thread alone for a few items).
pub fn map<T: Send, U: Send>(items: Vec<T>, f: impl Fn(T) -> U + Sync) -> Vec<U> {
    chunks(items, |chunk| chunk.into_iter().map(&f).collect())
}

/// `items` cut into as many runs as the machine has cores (one for a few
/// items), each run mapped by `f` on a scoped thread of its own (for work
/// done faster a run at a time), the results in order; `f` must give one
/// result per item.
pub fn chunks<T: Send, U: Send>(items: Vec<T>, f: impl Fn(Vec<T>) -> Vec<U> + Sync) -> Vec<U> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let threads = cores.min(items.len() / MIN_PER_THREAD).max(1);
    if threads == 1 {
        return f(items);
    }
    let per = items.len().div_ceil(threads);
    let mut chunks: Vec<Vec<T>> = Vec::with_capacity(threads);
    let mut rest = items.into_iter();
    loop {
        let chunk: Vec<T> = rest.by_ref().take(per).collect();
        if chunk.is_empty() {
            break;
        }
        chunks.push(chunk);
    }
    let f = &f;
    std::thread::scope(|scope| {
        let mut chunks = chunks.into_iter();
        let first = chunks.next().unwrap_or_default();
        let others: Vec<_> = chunks.map(|c| scope.spawn(move || f(c))).collect();
        let mut out: Vec<U> = f(first);
        for h in others {
            match h.join() {
                Ok(part) => out.extend(part),
                // A panic in `f` is a bug; carry it on as one.
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_order_is_kept_whatever_the_split() {
        for n in [0, 1, 15, 16, 33, 100, 1001] {
            let items: Vec<usize> = (0..n).collect();
            assert_eq!(
                super::map(items, |i| i * 2),
                (0..n).map(|i| i * 2).collect::<Vec<_>>()
            );
        }
    }
}
