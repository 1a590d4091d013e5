//! The scale shape of results ([`ResultKind::Fixed`](crate::emulator::state::ResultKind)):
//! `data.csv` and `data.json` of any size, generated for any byte range.
//!
//! A file is a header plus fixed-width rows; the last row absorbs the
//! remainder, so the file is exactly the size asked. Row `r` starts at
//! `header + r * row_len`, so any byte range is produced directly from a
//! row template with the row number and price patched in: memory stays flat
//! whatever the size, and a range costs no more than its bytes.
//!
//! Subtle: the filler text never starts or ends with a space (readers trim
//! fields), and a size too small for one row gives just the header.

use super::formats::BOM;
use crate::emulator::state::mix;

pub(super) const FIXED_COLUMNS: [&str; 4] = ["url", "title", "price", "description"];
const ID_DIGITS: usize = 12;
const PRICE_LEN: usize = 7; // "0000.00"
const LOREM: &[u8] = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod \
tempor incididunt ut labore et dolore magna aliqua ut enim ad minim veniam quis nostrud ";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FixedFormat {
    Csv,
    Json,
}

/// One row's bytes with the places where the row number and price go.
#[derive(Debug)]
struct Template {
    bytes: Vec<u8>,
    ids: Vec<usize>,
    prices: Vec<usize>,
}

enum Seg<'a> {
    Lit(&'a str),
    Id,
    Price,
    Filler,
}

fn segments(format: FixedFormat, base: &str) -> Vec<Seg<'_>> {
    use Seg::*;
    match format {
        FixedFormat::Csv => vec![
            Lit("\""),
            Lit(base),
            Lit("/item/"),
            Id,
            Lit("\",\"Item "),
            Id,
            Lit("\",\""),
            Price,
            Lit("\",\""),
            Filler,
            Lit("\"\r\n"),
        ],
        FixedFormat::Json => vec![
            Lit("{\"url\":\""),
            Lit(base),
            Lit("/item/"),
            Id,
            Lit("\",\"result\":{\"extractorData\":{\"url\":\""),
            Lit(base),
            Lit("/item/"),
            Id,
            Lit("\",\"data\":[{\"group\":[{\"title\":[{\"text\":\"Item "),
            Id,
            Lit("\"}],\"price\":[{\"text\":\""),
            Price,
            Lit("\"}],\"description\":[{\"text\":\""),
            Filler,
            Lit("\"}]}]}]}}}\n"),
        ],
    }
}

fn template(format: FixedFormat, base: &str, filler: usize) -> Template {
    let mut t = Template {
        bytes: Vec::new(),
        ids: Vec::new(),
        prices: Vec::new(),
    };
    for s in segments(format, base) {
        match s {
            Seg::Lit(l) => t.bytes.extend_from_slice(l.as_bytes()),
            Seg::Id => {
                t.ids.push(t.bytes.len());
                t.bytes.extend_from_slice(&[b'0'; ID_DIGITS]);
            }
            Seg::Price => {
                t.prices.push(t.bytes.len());
                t.bytes.extend_from_slice(b"0000.00");
            }
            Seg::Filler => {
                // Never start or end with a space: readers trim.
                for i in 0..filler {
                    let c = LOREM[i % LOREM.len()];
                    let edge = i == 0 || i + 1 == filler;
                    t.bytes.push(if edge && c == b' ' { b'x' } else { c });
                }
            }
        }
    }
    t
}

fn put_digits(out: &mut [u8], mut n: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

fn price_cents(row: u64) -> u64 {
    mix(row ^ 0xdead_beef) % 1_000_000
}

/// Generator of a fixed-width file.
#[derive(Debug)]
pub(crate) struct FixedGen {
    header: Vec<u8>,
    pub(super) rows: u64,
    row_len: u64,
    last_len: u64,
    tpl: Template,
    last_tpl: Template,
    base: String,
}

impl FixedGen {
    /// A file of `bytes` bytes (or just the header, when that is too small
    /// for one row).
    pub fn new(format: FixedFormat, base: &str, bytes: u64) -> FixedGen {
        let header: Vec<u8> = match format {
            FixedFormat::Csv => {
                let mut h = BOM.to_vec();
                h.extend_from_slice(b"\"url\",\"title\",\"price\",\"description\"\r\n");
                h
            }
            FixedFormat::Json => Vec::new(),
        };
        let fixed = template(format, base, 0).bytes.len() as u64;
        let nominal = match format {
            FixedFormat::Csv => 128u64,
            FixedFormat::Json => 384,
        }
        .max(fixed + 16);
        let body = bytes.saturating_sub(header.len() as u64);
        let (rows, last_len) = if body < fixed {
            (0, 0)
        } else {
            let rows = (body / nominal).max(1);
            (rows, body - (rows - 1) * nominal)
        };
        FixedGen {
            tpl: template(format, base, (nominal - fixed) as usize),
            last_tpl: template(format, base, last_len.saturating_sub(fixed) as usize),
            header,
            rows,
            row_len: nominal,
            last_len,
            base: base.to_owned(),
        }
    }

    pub fn len(&self) -> u64 {
        self.header.len() as u64 + self.rows.saturating_sub(1) * self.row_len + self.last_len
    }

    /// The row's values as a table row (for xlsx, sample, ...).
    pub(super) fn values(&self, row: u64) -> Vec<String> {
        let c = price_cents(row);
        vec![
            format!("{}/item/{:012}", self.base, row + 1),
            format!("Item {:012}", row + 1),
            format!("{:04}.{:02}", (c / 100) % 10_000, c % 100),
            "lorem ipsum dolor sit amet".to_owned(),
        ]
    }

    fn write_row(&self, row: u64, out: &mut Vec<u8>) {
        let t = if row + 1 == self.rows {
            &self.last_tpl
        } else {
            &self.tpl
        };
        let s = out.len();
        out.extend_from_slice(&t.bytes);
        let r = &mut out[s..];
        for &p in &t.ids {
            put_digits(&mut r[p..p + ID_DIGITS], row + 1);
        }
        let c = price_cents(row);
        for &p in &t.prices {
            put_digits(&mut r[p..p + 4], (c / 100) % 10_000);
            put_digits(&mut r[p + 5..p + PRICE_LEN], c % 100);
        }
    }

    /// (row, its first byte, its length) for a byte offset past the header.
    fn locate(&self, off: u64) -> (u64, u64, u64) {
        let h = self.header.len() as u64;
        let r = ((off - h) / self.row_len).min(self.rows.saturating_sub(1));
        let len = if r + 1 == self.rows {
            self.last_len
        } else {
            self.row_len
        };
        (r, h + r * self.row_len, len)
    }

    pub(super) fn fill(&self, mut off: u64, end: u64, out: &mut Vec<u8>) {
        let h = self.header.len() as u64;
        if off < h {
            let e = end.min(h);
            out.extend_from_slice(&self.header[off as usize..e as usize]);
            off = e;
        }
        let mut scratch = Vec::new();
        while off < end {
            let (row, start, len) = self.locate(off);
            let within = off - start;
            let take = (len - within).min(end - off);
            if take == 0 {
                break;
            }
            if within == 0 && take == len {
                self.write_row(row, out);
            } else {
                scratch.clear();
                self.write_row(row, &mut scratch);
                out.extend_from_slice(&scratch[within as usize..(within + take) as usize]);
            }
            off += take;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn whole(g: &FixedGen) -> Vec<u8> {
        let mut v = Vec::new();
        g.fill(0, g.len(), &mut v);
        v
    }

    #[test]
    fn fixed_files_have_the_asked_size_and_parse() {
        for bytes in [0u64, 10, 200, 1000, 12_345, 100_000] {
            for f in [FixedFormat::Csv, FixedFormat::Json] {
                let g = FixedGen::new(f, "https://shop1.example.com", bytes);
                let v = whole(&g);
                assert_eq!(v.len() as u64, g.len());
                if g.rows > 0 {
                    assert_eq!(g.len(), bytes, "{f:?} {bytes}");
                }
                if f == FixedFormat::Json {
                    for line in v.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                        let j: Value = serde_json::from_slice(line).expect("json line");
                        assert!(j["result"]["extractorData"]["data"][0]["group"].is_array());
                    }
                } else {
                    let mut r = csv::Reader::from_reader(&v[3..]);
                    assert_eq!(r.records().count() as u64, g.rows);
                }
            }
        }
    }

    #[test]
    fn any_range_matches_the_whole() {
        let g = FixedGen::new(FixedFormat::Csv, "https://s.example.com", 10_000);
        let all = whole(&g);
        for (a, b) in [
            (0, 1),
            (3, 60),
            (57, 300),
            (127, 129),
            (9_000, 10_000),
            (9_999, 10_000),
        ] {
            let mut v = Vec::new();
            g.fill(a, b, &mut v);
            assert_eq!(&v[..], &all[a as usize..b as usize], "{a}..{b}");
        }
    }
}
