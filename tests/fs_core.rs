//! The filesystem core without the kernel, as mountpoint-s3's `tests/fs.rs`
//! does: an `Fs` over an in-process emulator, driven by the calls the fuser
//! adapter makes (lookup from ino 1, opendir/readdir, open/read/write/flush,
//! release), and checked against the emulator's own answers and request log.
//! What `mount_read.rs` and `mount_write.rs` assert through a real mount,
//! here with no FUSE, no kernel caches and no waits.

mod common;

use common::core_fs::{errno_of, Core};
use importfs::emulator::Config;
use importfs::fs::core::FsConfig;
use importfs::fs::inodes::{Kind, ROOT_INO};
use reqwest::Method;
use serde_json::{json, Value};
use std::ffi::OsStr;

/// A new extractor of the account, made through the emulator: its guid.
fn add_extractor(c: &Core, name: &str, inputs: &[&str]) -> String {
    let e = c.emu.hook(
        Method::POST,
        "/_emulator/extractors",
        Some(json!({"name": name, "inputs": inputs})),
    );
    e["guid"].as_str().expect("guid").to_owned()
}

/// A new run of extractor `guid` in `state`: its guid.
fn add_run(c: &Core, guid: &str, state: &str) -> String {
    let r = c.emu.hook(
        Method::POST,
        "/_emulator/crawlruns",
        Some(json!({"extractorId": guid, "state": state})),
    );
    r["guid"].as_str().expect("guid").to_owned()
}

/// The URLs of an extractor's inputs, as the API has them (blank lines
/// of its `_url` text left out).
fn api_urls(c: &Core, guid: &str) -> Vec<String> {
    let v = c.emu.get_json(&format!("/extractors/{guid}/inputs"));
    let text = v["_url"].as_str().unwrap_or_default();
    text.split('\n')
        .filter_map(|l| Some(l.trim()).filter(|l| !l.is_empty()))
        .map(Into::into)
        .collect()
}

/// The requests of the log that change something.
fn mutating(c: &Core) -> Vec<Value> {
    c.emu
        .requests()
        .into_iter()
        .filter(|r| {
            ["PUT", "POST", "DELETE", "PATCH"].contains(&r["method"].as_str().unwrap_or(""))
        })
        .collect()
}

const SHOP: [&str; 2] = ["https://shop.example/a", "https://shop.example/b"];

#[test]
fn the_root_lists_its_entries_and_each_looks_up() {
    let c = Core::demo();
    let entries = c.entries("");
    let names: Vec<&str> = entries.iter().map(|e| e.name.to_str().unwrap()).collect();
    let want = ". .. user.json subscription.json extractors crawlruns reports reportruns .importfs";
    assert_eq!(names, want.split(' ').collect::<Vec<_>>());
    // `.` and `..` of the root are the root.
    assert_eq!((entries[0].ino, entries[1].ino), (ROOT_INO, ROOT_INO));
    for e in &entries[2..] {
        let want = if e.name.to_str().unwrap().ends_with(".json") {
            Kind::File
        } else {
            Kind::Dir
        };
        assert_eq!(e.kind, want, "kind of {:?}", e.name);
        let found = c.on(c.fs.lookup(ROOT_INO, &e.name)).expect("lookup");
        assert_eq!(found.attr.ino, e.ino, "ino of {:?}", e.name);
        assert_eq!(found.attr.kind, e.kind, "lookup kind of {:?}", e.name);
        let perm = if want == Kind::Dir { 0o555 } else { 0o444 };
        assert_eq!(found.attr.perm, perm, "mode of {:?}", e.name);
    }
    // Paging by offset: entry i has offset i + 1, and a listing resumes there.
    let dir = c.on(c.fs.opendir(ROOT_INO)).unwrap();
    let rest = c.fs.readdir(dir.fh, 4).unwrap();
    c.fs.releasedir(dir.fh);
    let offsets: Vec<u64> = rest.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, [5, 6, 7, 8, 9]);
    assert_eq!(rest[0].1.name, "extractors");
    assert_eq!(
        c.fs.readdir(dir.fh, 0).unwrap_err().errno,
        libc::EBADF,
        "a released directory handle"
    );
}

#[test]
fn a_missing_name_is_enoent_and_a_name_under_a_file_is_enotdir() {
    let c = Core::demo();
    let lookup = |parent, name: &str| c.on(c.fs.lookup(parent, OsStr::new(name)));
    assert_eq!(errno_of(lookup(ROOT_INO, "nope"), "/nope"), libc::ENOENT);
    let user = c.resolve("user.json").unwrap().attr.ino;
    assert_eq!(errno_of(lookup(user, "x"), "user.json/x"), libc::ENOTDIR);
    assert_eq!(
        errno_of(c.on(c.fs.opendir(user)), "opendir user.json"),
        libc::ENOTDIR
    );
    assert_eq!(
        errno_of(c.open("extractors", libc::O_RDONLY), "open extractors"),
        libc::EISDIR
    );
    for path in [
        "extractors/No such extractor",
        "crawlruns/not-an-id",
        "crawlruns/00000000-0000-4000-8000-000000000000",
        ".importfs/nope",
    ] {
        assert_eq!(errno_of(c.resolve(path), path), libc::ENOENT);
    }
    assert_eq!(
        errno_of(c.on(c.fs.getattr(1 << 40)), "an ino never handed out"),
        libc::ENOENT
    );
}

#[test]
fn an_extractor_directory_lists_its_files() {
    let c = Core::demo();
    let g = add_extractor(&c, "Core Shop", &SHOP);
    let run = add_run(&c, &g, "FINISHED");
    let d = "extractors/Core Shop";
    let me = c.resolve(d).unwrap().attr.ino;
    let up = c.resolve("extractors").unwrap().attr.ino;
    let entries = c.entries(d);
    let got: Vec<(&str, Kind)> = entries
        .iter()
        .map(|e| (e.name.to_str().unwrap(), e.kind))
        .collect();
    assert_eq!(
        got,
        [
            (".", Kind::Dir),
            ("..", Kind::Dir),
            ("extractor.json", Kind::File),
            ("inputs", Kind::File),
            ("start", Kind::File),
            ("stop", Kind::File),
            ("duplicate", Kind::File),
            ("credentials", Kind::File),
            ("crawlruns", Kind::Dir),
            ("latest", Kind::Symlink),
        ]
    );
    assert_eq!((entries[0].ino, entries[1].ino), (me, up), ". and ..");
    // The same directory by guid is the same inode.
    assert_eq!(c.resolve(&format!("extractors/{g}")).unwrap().attr.ino, me);
    assert_eq!(c.ls(&format!("{d}/crawlruns")), [run.as_str()]);
    assert_eq!(
        c.readlink(&format!("{d}/latest")).unwrap(),
        format!("../../crawlruns/{run}")
    );
    assert_eq!(
        c.readlink(&format!("{d}/crawlruns/{run}")).unwrap(),
        format!("../../../crawlruns/{run}")
    );
    assert_eq!(c.cat(&format!("{d}/latest/state")), b"FINISHED\n");
    for (f, perm) in [
        ("extractor.json", 0o444),
        ("inputs", 0o644),
        ("start", 0o200),
        ("credentials", 0o200),
    ] {
        let a = c.resolve(&format!("{d}/{f}")).unwrap().attr;
        assert_eq!(a.perm, perm, "mode of {f}");
    }
    assert_eq!(c.resolve(d).unwrap().attr.perm, 0o755);
    // Control files and credentials cannot be read.
    for f in ["start", "credentials"] {
        assert_eq!(errno_of(c.try_cat(&format!("{d}/{f}")), f), libc::EACCES);
    }
}

#[test]
fn extractor_json_is_the_api_object_and_sizes_are_the_bytes_read() {
    let c = Core::demo();
    let g = add_extractor(&c, "Core Shop", &SHOP);
    let d = "extractors/Core Shop";
    let text = c.cat(&format!("{d}/extractor.json"));
    assert!(text.ends_with(b"}\n"), "newline-terminated");
    let v: Value = serde_json::from_slice(&text).expect("extractor.json is JSON");
    assert_eq!(v["guid"], g.as_str());
    assert_eq!(v["name"], "Core Shop");
    assert_eq!(
        c.cat(&format!("{d}/inputs")),
        format!("{}\n{}\n", SHOP[0], SHOP[1]).into_bytes()
    );
    let run = c.emu.finished_runs()[0].clone();
    for f in [
        format!("{d}/extractor.json"),
        format!("{d}/inputs"),
        format!("crawlruns/{run}/crawlrun.json"),
        format!("crawlruns/{run}/state"),
        format!("crawlruns/{run}/data.csv"),
        "user.json".into(),
        "subscription.json".into(),
    ] {
        let size = c.resolve(&f).unwrap().attr.size;
        let bytes = c.cat(&f);
        assert!(size > 0, "{f} is empty");
        assert_eq!(size, bytes.len() as u64, "getattr size of {f}");
        // Read a byte at a time: generated files too come out whole.
        assert_eq!(c.try_cat_by(&f, 1).unwrap(), bytes, "{f} a byte a read");
    }
}

#[test]
fn a_finished_runs_data_csv_reads_in_odd_pieces_as_the_emulator_serves_it() {
    let c = Core::demo();
    let run = c.emu.finished_runs()[0].clone();
    let want = c.emu.get_bytes(&format!("/crawlruns/{run}/csv"));
    assert!(want.len() > 1000, "a data.csv of {} bytes", want.len());
    let path = format!("crawlruns/{run}/data.csv");
    assert_eq!(c.resolve(&path).unwrap().attr.size, want.len() as u64);
    let (_, fh) = c.open(&path, libc::O_RDONLY).unwrap();
    let len = want.len() as u64;
    let mut got = Vec::new();
    for piece in [1u32, 7, 997, 4093, 65537].into_iter().cycle() {
        let b = c.on(c.fs.read(fh, got.len() as u64, piece)).expect("read");
        let left = len - got.len() as u64;
        assert_eq!(
            b.len() as u64,
            left.min(piece as u64),
            "a read of {piece} at {} is short",
            got.len()
        );
        if b.is_empty() {
            break;
        }
        got.extend_from_slice(&b);
    }
    assert!(got == want, "data.csv differs from the emulator's bytes");
    // Across the end, at it and past it.
    let tail = c.on(c.fs.read(fh, len - 3, 100)).unwrap();
    assert_eq!(&tail[..], &want[want.len() - 3..]);
    assert!(c.on(c.fs.read(fh, len, 100)).unwrap().is_empty());
    assert!(c.on(c.fs.read(fh, len + 4096, 100)).unwrap().is_empty());
    c.on(c.fs.release_async(fh));
    // Again, from the cache this time, through a new open.
    assert!(c.cat(&path) == want, "data.csv differs when read again");
}

#[test]
fn writing_inputs_is_one_put_and_reads_back() {
    let c = Core::demo();
    let g = add_extractor(&c, "Core Shop", &SHOP);
    let f = "extractors/Core Shop/inputs";
    let new = ["https://a.example/1", "https://a.example/2"];
    c.resolve(f).unwrap();
    c.emu.clear_requests();
    let (_, fh) = c.open(f, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    let first = format!("{}\n", new[0]);
    let second = format!("{}\n", new[1]);
    assert_eq!(
        c.on(c.fs.write(fh, 0, first.as_bytes())).unwrap() as usize,
        first.len()
    );
    c.on(c.fs.write(fh, first.len() as u64, second.as_bytes()))
        .unwrap();
    let puts = || c.emu.count("PUT", &format!("/extractors/{g}/inputs"));
    assert_eq!(puts(), 0, "nothing is sent before the flush");
    c.on(c.fs.flush(fh)).expect("flush");
    assert_eq!(puts(), 1, "one PUT at the flush");
    c.on(c.fs.flush(fh)).expect("a second flush");
    c.on(c.fs.release_async(fh));
    assert_eq!(puts(), 1, "nothing more at a second flush and the release");
    assert_eq!(mutating(&c).len(), 1, "nothing else: {:?}", mutating(&c));
    assert_eq!(api_urls(&c, &g), new, "the API has the new inputs");
    let text = c.cat(f);
    assert_eq!(text, format!("{first}{second}").into_bytes(), "reads back");
    assert_eq!(c.resolve(f).unwrap().attr.size, text.len() as u64, "size");

    // As a shell's `>` does it: open, flush, write, flush, release.
    c.emu.clear_requests();
    c.write_file(f, b"https://b.example/only\n").unwrap();
    assert_eq!(puts(), 1, "`>`: one PUT: {:?}", mutating(&c));
    assert_eq!(api_urls(&c, &g), ["https://b.example/only"]);
    assert_eq!(c.cat(f), b"https://b.example/only\n");
}

#[test]
fn an_invalid_url_is_einval_on_write_and_sends_nothing() {
    let c = Core::demo();
    let g = add_extractor(&c, "Core Shop", &SHOP);
    let f = "extractors/Core Shop/inputs";
    let before = c.cat(f);
    c.emu.clear_requests();
    let (_, fh) = c.open(f, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    let w = c.on(c.fs.write(fh, 0, b"https://ok.example/\nnot a url\n"));
    assert_eq!(errno_of(w, "write of a bad line"), libc::EINVAL);
    assert_eq!(
        errno_of(c.on(c.fs.flush(fh)), "flush after a bad write"),
        libc::EINVAL
    );
    c.on(c.fs.release_async(fh));
    for bad in [
        &b"ftp://files.example/x\n"[..],
        b"/just/a/path\n",
        b"\xff\xfe\n",
    ] {
        assert_eq!(
            errno_of(c.write_file(f, bad), "a bad inputs"),
            libc::EINVAL,
            "{bad:?}"
        );
    }
    assert_eq!(mutating(&c).len(), 0, "no PUT: {:?}", mutating(&c));
    assert_eq!(api_urls(&c, &g), SHOP);
    assert_eq!(c.cat(f), before, "inputs unchanged");
}

#[test]
fn start_fires_one_post_and_the_new_run_is_listed() {
    let c = Core::demo();
    let g = add_extractor(&c, "Core Shop", &SHOP);
    let d = "extractors/Core Shop";
    assert!(c.ls(&format!("{d}/crawlruns")).is_empty());
    assert!(!c.ls(d).contains(&"latest".to_owned()));
    c.emu.clear_requests();
    let posts = || c.emu.count("POST", &format!("/extractors/{g}/start"));
    let (_, fh) = c.open(&format!("{d}/start"), libc::O_WRONLY).unwrap();
    assert_eq!(c.on(c.fs.write(fh, 0, b"go\n")).unwrap(), 3);
    assert_eq!(posts(), 0, "nothing before the flush");
    c.on(c.fs.flush(fh)).expect("flush of start");
    assert_eq!(posts(), 1, "one POST at the flush");
    c.on(c.fs.flush(fh)).unwrap();
    c.on(c.fs.release_async(fh));
    assert_eq!(posts(), 1, "one open, one POST");
    assert_eq!(mutating(&c).len(), 1, "nothing else: {:?}", mutating(&c));

    let runs = c
        .emu
        .get_json(&format!("/crawlruns/?extractorId={g}&_perpage=1000"));
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let id = runs[0]["guid"].as_str().unwrap();
    assert_eq!(c.ls(&format!("{d}/crawlruns")), [id]);
    assert_eq!(
        c.readlink(&format!("{d}/latest")).unwrap(),
        format!("../../crawlruns/{id}")
    );
    assert_eq!(c.cat(&format!("{d}/latest/state")), b"PENDING\n");

    // A touch while that run is open: one more POST, refused with EBUSY.
    let t = c.touch(&format!("{d}/start"));
    assert_eq!(errno_of(t, "a start while a run is open"), libc::EBUSY);
    assert_eq!(posts(), 2, "one touch, one POST");
    assert_eq!(c.ls(&format!("{d}/crawlruns")), [id]);
}

#[test]
fn a_read_only_fs_refuses_opens_for_write_with_erofs() {
    let c = Core::start(
        Config::default(),
        FsConfig {
            read_only: true,
            ..FsConfig::default()
        },
    );
    let g = add_extractor(&c, "Core Shop", &SHOP);
    let d = "extractors/Core Shop";
    c.emu.clear_requests();
    for (f, flags) in [
        ("inputs", libc::O_WRONLY),
        ("inputs", libc::O_RDWR),
        ("inputs", libc::O_WRONLY | libc::O_TRUNC),
        ("inputs", libc::O_RDONLY | libc::O_TRUNC),
        ("start", libc::O_WRONLY),
        ("credentials", libc::O_WRONLY),
    ] {
        let r = c.open(&format!("{d}/{f}"), flags);
        assert_eq!(errno_of(r, f), libc::EROFS, "{f} with flags {flags:#o}");
    }
    // utime of a control file with no descriptor open (`touch -c`).
    let start = c.resolve(&format!("{d}/start")).unwrap().attr.ino;
    let r = c.on(c.fs.setattr(start, None, None, true, None, false));
    assert_eq!(errno_of(r, "utime start"), libc::EROFS);
    assert_eq!(mutating(&c).len(), 0, "nothing sent: {:?}", mutating(&c));
    // Reading still works.
    assert_eq!(
        c.cat(&format!("{d}/inputs")),
        format!("{}\n{}\n", SHOP[0], SHOP[1]).into_bytes()
    );
    assert_eq!(api_urls(&c, &g), SHOP);
}

#[test]
fn with_the_api_down_a_listing_is_served_stale_and_an_unseen_object_is_eio() {
    let c = Core::demo();
    let listed = c.ls("extractors");
    assert!(listed.len() > 5, "{listed:?}");
    let runs = c.emu.finished_runs();
    let unseen = runs.last().expect("a run").clone();
    c.emu.set_faults(json!({"operation": "*", "status": 503}));
    // Forget what is fresh, so that the listing must be asked for again.
    c.fs.refresh();
    c.emu.clear_requests();
    assert_eq!(c.ls("extractors"), listed, "ls extractors while down");
    assert!(
        c.emu.count("GET", "/extractors") > 0,
        "the listing was asked for: {:?}",
        c.emu.requests()
    );
    assert!(c.fs.snapshot().stale_answers > 0, "answered stale");
    let r = c.resolve(&format!("crawlruns/{unseen}"));
    assert_eq!(errno_of(r, "a run never seen"), libc::EIO);
    let r = c.try_cat(&format!("crawlruns/{unseen}/data.csv"));
    assert_eq!(errno_of(r, "a file never seen"), libc::EIO);
    assert!(c.fs.health().is_err(), "health reports the API failing");
    // The API answers again: so does the never-seen run.
    c.emu.clear_faults();
    assert_eq!(c.cat(&format!("crawlruns/{unseen}/state")), b"FINISHED\n");
    assert!(c.fs.health().is_ok(), "{:?}", c.fs.health());
}

#[test]
fn a_second_lookup_within_the_ttl_costs_no_request() {
    let c = Core::demo();
    add_extractor(&c, "Core Shop", &SHOP);
    let run = c.emu.finished_runs()[0].clone();
    let paths = [
        "extractors/Core Shop/inputs".to_owned(),
        "extractors/Core Shop/latest".to_owned(),
        format!("crawlruns/{run}/state"),
        "user.json".to_owned(),
    ];
    let look = |c: &Core| {
        for p in &paths {
            // `latest` does not exist: its ENOENT is remembered too.
            let _ = c.resolve(p);
        }
        c.ls("extractors")
    };
    c.emu.clear_requests();
    let first = look(&c);
    assert!(!c.emu.requests().is_empty(), "the first looks ask the API");
    c.emu.clear_requests();
    assert_eq!(look(&c), first);
    assert!(
        c.emu.requests().is_empty(),
        "within the TTL: {:?}",
        c.emu.requests()
    );
    let hits = c.fs.snapshot().metadata_cache_hits;
    assert!(hits > 0, "hits counted: {hits}");
    // After a refresh the same looks ask again.
    c.fs.refresh();
    look(&c);
    assert!(!c.emu.requests().is_empty(), "a refresh forgets");
}
