//! The CRC32 of every byte a download wrote, by offset, so that a complete
//! file's checksum is known without reading the file back.
//!
//! Ranges of a file arrive in any order and from several streams at once;
//! each write's CRC is computed on its blocking thread from the bytes just
//! written, and pieces that touch are merged with `crc32fast`'s `combine`
//! (cheap: no bytes are read again). A byte written twice (a fetch dropped
//! after its write, then resumed from before it) is counted once: only the
//! bytes no piece holds yet are hashed.

use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::Mutex;

/// The checksums of the ranges written to one file.
#[derive(Default)]
pub struct Written {
    /// Disjoint written ranges, none touching another: start → (end, CRC32).
    pieces: Mutex<BTreeMap<u64, (u64, crc32fast::Hasher)>>,
}

impl Written {
    /// Record that `parts`, one after another, were written at offset `at`.
    pub(super) fn add(&self, at: u64, parts: &[impl AsRef<[u8]>]) {
        let len: u64 = parts.iter().map(|p| p.as_ref().len() as u64).sum();
        let mut pieces = self.pieces.lock().unwrap_or_else(|e| e.into_inner());
        for (start, end) in gaps(&pieces, at, at + len) {
            let mut crc = crc32fast::Hasher::new();
            let mut pos = at;
            for p in parts {
                let p = p.as_ref();
                let (s, e) = (start.max(pos), end.min(pos + p.len() as u64));
                if s < e {
                    crc.update(&p[(s - pos) as usize..(e - pos) as usize]);
                }
                pos += p.len() as u64;
            }
            insert(&mut pieces, start, end, crc);
        }
    }

    /// The CRC32 of the whole file of `size` bytes, if every byte of it was
    /// written through this record (and none past it).
    pub fn whole(&self, size: u64) -> Option<u32> {
        let pieces = self.pieces.lock().unwrap_or_else(|e| e.into_inner());
        match (pieces.len(), pieces.get(&0)) {
            (1, Some((end, crc))) if *end == size => Some(crc.clone().finalize()),
            (0, None) if size == 0 => Some(0),
            _ => None,
        }
    }
}

/// The parts of `start..end` that no piece holds, in order.
fn gaps(pieces: &BTreeMap<u64, (u64, crc32fast::Hasher)>, start: u64, end: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut pos = start;
    let before = pieces.range(..=start).next_back().map(|(_, (e, _))| *e);
    if let Some(e) = before {
        pos = pos.max(e);
    }
    for (&s, (e, _)) in pieces.range((Excluded(start), Unbounded)) {
        if s >= end || pos >= end {
            break;
        }
        if s > pos {
            out.push((pos, s));
        }
        pos = pos.max(*e);
    }
    if pos < end {
        out.push((pos, end));
    }
    out
}

/// Add the piece `start..end`, which no piece overlaps, joining the pieces
/// it touches.
fn insert(
    pieces: &mut BTreeMap<u64, (u64, crc32fast::Hasher)>,
    start: u64,
    mut end: u64,
    crc: crc32fast::Hasher,
) {
    let before = pieces
        .range(..start)
        .next_back()
        .filter(|(_, (e, _))| *e == start)
        .map(|(&s, _)| s);
    let (start, mut crc) = match before.and_then(|s| pieces.remove(&s).map(|p| (s, p))) {
        Some((s, (_, mut joined))) => {
            joined.combine(&crc);
            (s, joined)
        }
        None => (start, crc),
    };
    if let Some((next_end, next)) = pieces.remove(&end) {
        crc.combine(&next);
        end = next_end;
    }
    pieces.insert(start, (end, crc));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crc(b: &[u8]) -> u32 {
        crc32fast::hash(b)
    }

    #[test]
    fn pieces_in_any_order_give_the_whole_files_crc() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let w = Written::default();
        // Three streams' pieces, out of order, one split in two parts.
        w.add(6000, &[&data[6000..8000], &data[8000..10_000]]);
        assert_eq!(w.whole(10_000), None, "not yet whole");
        w.add(0, &[&data[..2500]]);
        w.add(2500, &[&data[2500..6000]]);
        assert_eq!(w.whole(10_000), Some(crc(&data)));
        assert_eq!(w.whole(9_999), None, "a size that does not match");
    }

    #[test]
    fn a_gap_gives_nothing_and_bytes_written_twice_count_once() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 256) as u8).collect();
        let gap = Written::default();
        gap.add(0, &[&data[..400]]);
        gap.add(500, &[&data[500..]]);
        assert_eq!(gap.whole(1000), None);

        // A resumed fetch writes again what a dropped one wrote, and more;
        // another covers a piece whole and spans the gaps either side.
        let twice = Written::default();
        twice.add(0, &[&data[..600]]);
        twice.add(500, &[&data[500..700]]);
        twice.add(800, &[&data[800..850]]);
        twice.add(650, &[&data[650..900], &data[900..1000]]);
        assert_eq!(twice.whole(1000), Some(crc(&data)));
    }

    #[test]
    fn any_writes_that_cover_the_file_give_its_crc() {
        use proptest::prelude::*;
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 253) as u8).collect();
        // Tiles of the file in a rotated order (streams finishing out of
        // order), with random extra writes (resumes, repeats) among them.
        let extras = proptest::collection::vec((0usize..4096, 1usize..900, 1usize..4), 0..20);
        let tiling = (64usize..1500, 0usize..64, any::<bool>());
        proptest!(|(extras in extras, (tile, rot, all) in tiling, at in 0usize..20)| {
            let mut writes: Vec<(usize, usize, usize)> =
                (0..data.len()).step_by(tile).map(|s| (s, tile, 2)).collect();
            let n = writes.len();
            writes.rotate_left(rot % n);
            if !all {
                writes.pop();
            }
            for (i, e) in extras.into_iter().enumerate() {
                writes.insert((at + i * 7) % (writes.len() + 1), e);
            }
            let w = Written::default();
            let mut covered = vec![false; data.len()];
            for (at, len, split) in writes {
                let end = (at + len).min(data.len());
                // The write in `split` parts, as a batch of received chunks.
                let step = (end - at).div_ceil(split).max(1);
                let parts: Vec<&[u8]> = data[at..end].chunks(step).collect();
                w.add(at as u64, &parts);
                covered[at..end].iter_mut().for_each(|c| *c = true);
            }
            let whole = covered.iter().all(|&c| c);
            prop_assert_eq!(w.whole(data.len() as u64), whole.then(|| crc(&data)));
        });
    }

    #[test]
    fn empty_writes_are_ignored() {
        let w = Written::default();
        w.add(0, &[&b""[..]]);
        w.add(0, &[&b"abc"[..]]);
        w.add(3, &[&b""[..]]);
        assert_eq!(w.whole(3), Some(crc(b"abc")));
    }
}
