//! What a kernel NFS client relies on, checked with user-space clients
//! (`nfs3_client`, libnfs's tools) until the kernel harness re-checks it:
//! a new run moves the mtime/ctime of the directories and `latest` links
//! that show it (the only way a kernel client learns of it); a slow writer
//! of `inputs` never leaves the service with an empty list; an UNCHECKED
//! CREATE of an existing file is an open.

mod common;

use common::nfs::{libnfs_or_skip, root_or_skip, Client, NfsServer};
use common::*;
use importfs::emulator::Config;
use nfs3_client::nfs3_types::nfs3::{
    createhow3, fattr3, nfs_fh3, nfsstat3, nfstime3, sattr3, stable_how, Nfs3Option,
};
use std::time::{Duration, Instant};

fn stamp(a: &fattr3) -> (nfstime3, nfstime3) {
    (a.mtime, a.ctime)
}

/// GETATTR of `fh` until its mtime and ctime differ from `before`, for at
/// most `within`; the attributes then.
fn until_changed(c: &mut Client, fh: &nfs_fh3, before: &fattr3, within: Duration) -> fattr3 {
    let end = Instant::now() + within;
    loop {
        let a = c.getattr(fh).expect("GETATTR");
        if (a.mtime != before.mtime && a.ctime != before.ctime) || Instant::now() > end {
            return a;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_new_run_moves_the_mtime_of_its_listings_and_of_latest() {
    if !root_or_skip() {
        return;
    }
    let emu = Emu::start(Config {
        run_seconds: 1.0,
        ..Config::default()
    });
    let s = NfsServer::start(&emu.url, &["--poll-interval", "1s"]);
    let mut c = s.client();
    let g = plain_extractor_list(&emu)[0]["guid"]
        .as_str()
        .unwrap()
        .to_owned();
    let runs_dir = c.fh(&format!("extractors/{g}/crawlruns"));
    let top = c.fh("crawlruns");
    let latest = c.fh(&format!("extractors/{g}/latest"));
    let listed = |c: &mut Client| -> Vec<String> {
        let l = c.readdir(&runs_dir).expect("READDIRPLUS");
        l.into_iter()
            .map(|(n, _)| String::from_utf8(n).unwrap())
            .collect()
    };
    let before = listed(&mut c);
    let link_before = c.readlink(&latest).expect("READLINK");
    // The poll's first round only learns what exists: wait for it, so that
    // the run below is news to the second.
    let end = Instant::now() + Duration::from_secs(30);
    while c.stat("polls") < 2 {
        assert!(Instant::now() < end, "no poll round: {}", s.log_tail());
        std::thread::sleep(Duration::from_millis(200));
    }
    let (dir_a, top_a, link_a) = (
        c.getattr(&runs_dir).unwrap(),
        c.getattr(&top).unwrap(),
        c.getattr(&latest).unwrap(),
    );
    // Stable while nothing changes: a client's caches stay valid.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(stamp(&c.getattr(&runs_dir).unwrap()), stamp(&dir_a));
    assert_eq!(stamp(&c.getattr(&latest).unwrap()), stamp(&link_a));

    // `touch start`, as a kernel client sends it.
    let start = c.fh(&format!("extractors/{g}/start"));
    c.touch(&start).expect("SETATTR of start");
    let wait = Duration::from_secs(20);
    let dir_b = until_changed(&mut c, &runs_dir, &dir_a, wait);
    let link_b = until_changed(&mut c, &latest, &link_a, wait);
    let top_b = until_changed(&mut c, &top, &top_a, wait);
    for (what, a, b) in [
        ("crawlruns/ of the extractor", &dir_a, &dir_b),
        ("latest", &link_a, &link_b),
        ("the top crawlruns/", &top_a, &top_b),
    ] {
        assert!(
            b.mtime != a.mtime && b.ctime != a.ctime,
            "{what}: mtime/ctime did not move: {a:?} → {b:?}\n{}",
            s.log_tail()
        );
    }
    let after = listed(&mut c);
    let new: Vec<&String> = after.iter().filter(|n| !before.contains(n)).collect();
    assert_eq!(new.len(), 1, "one new run listed: {before:?} → {after:?}");
    let link_after = c.readlink(&latest).expect("READLINK");
    assert_ne!(link_after, link_before);
    assert!(link_after.ends_with(new[0].as_str()), "{link_after}");
}

/// More than the 3 s after which a truncation alone used to be sent, and
/// the server's reaper (every 1 s).
const PAST_OLD_IDLE: Duration = Duration::from_millis(4500);

#[test]
fn a_slow_writer_is_one_put_and_the_list_is_never_empty_meanwhile() {
    if !root_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let s = NfsServer::start(&emu.url, &[]);
    let mut c = s.client();
    let g = plain_extractor_list(&emu)[1]["guid"]
        .as_str()
        .unwrap()
        .to_owned();
    let fh = c.fh(&format!("extractors/{g}/inputs"));
    let old = api_urls(&emu, &g);
    assert!(!old.is_empty(), "the demo extractor has inputs");
    emu.clear_requests();
    // `(sleep 6; echo URL) > inputs`: the truncation comes at open, the
    // WRITE and the COMMIT at close, seconds later.
    c.truncate(&fh).expect("SETATTR size 0");
    let end = Instant::now() + PAST_OLD_IDLE;
    while Instant::now() < end {
        assert_eq!(
            api_urls(&emu, &g),
            old,
            "the API's list while the writer works"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(puts(&emu, &g), 0, "nothing sent yet: {:?}", mutating(&emu));
    let new = "https://slow.example/1\n";
    c.write(&fh, 0, new.as_bytes(), stable_how::UNSTABLE)
        .expect("WRITE");
    assert_eq!(api_urls(&emu, &g), old);
    c.commit(&fh).expect("COMMIT");
    assert_eq!(puts(&emu, &g), 1, "one PUT: {:?}", mutating(&emu));
    assert_eq!(api_urls(&emu, &g), ["https://slow.example/1"]);
    std::thread::sleep(PAST_OLD_IDLE);
    assert_eq!(
        mutating(&emu).len(),
        1,
        "nothing more: {:?}",
        mutating(&emu)
    );
    // One PUT, and what the API holds after it is the final content.
    assert_eq!(api_urls(&emu, &g), ["https://slow.example/1"]);
}

/// The attributes a client sends with CREATE for `open(O_CREAT|O_TRUNC)`.
fn create_truncating() -> sattr3 {
    sattr3 {
        mode: Nfs3Option::Some(0o644),
        size: Nfs3Option::Some(0),
        ..Default::default()
    }
}

#[test]
fn an_unchecked_create_of_an_existing_file_opens_it() {
    if !root_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let s = NfsServer::start(&emu.url, &[]);
    let mut c = s.client();
    let g = plain_extractor_list(&emu)[2]["guid"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = c.fh(&format!("extractors/{g}"));
    let inputs = c.fh(&format!("extractors/{g}/inputs"));
    let old = api_urls(&emu, &g);
    emu.clear_requests();
    // A GUARDED create of a name that exists is refused (RFC 1813 3.3.8),
    // and changes nothing.
    let guarded = c.create_how(&dir, "inputs", createhow3::GUARDED(create_truncating()));
    assert_eq!(guarded, Err(nfsstat3::NFS3ERR_EXIST));
    // UNCHECKED, with a mode and size 0: an open that truncates, in the
    // write session the WRITE and the COMMIT then join; the mode is no
    // chmod.
    let fh = c
        .create_how(&dir, "inputs", createhow3::UNCHECKED(create_truncating()))
        .unwrap_or_else(|e| panic!("UNCHECKED CREATE of inputs: {e:?}\n{}", s.log_tail()))
        .expect("a handle");
    assert_eq!(fh, inputs, "the existing file's handle");
    assert_eq!(c.getattr(&inputs).unwrap().size, 0, "truncated, pending");
    assert_eq!(api_urls(&emu, &g), old, "nothing sent at the CREATE");
    let new = "https://created.example/1\n";
    c.write(&fh, 0, new.as_bytes(), stable_how::UNSTABLE)
        .expect("WRITE");
    c.commit(&fh).expect("COMMIT");
    assert_eq!(puts(&emu, &g), 1, "one PUT: {:?}", mutating(&emu));
    assert_eq!(api_urls(&emu, &g), ["https://created.example/1"]);
    assert_eq!(c.getattr(&inputs).unwrap().mode & 0o777, 0o644, "no chmod");

    // Without a size it is an open that changes nothing.
    emu.clear_requests();
    let plain = sattr3 {
        mode: Nfs3Option::Some(0o600),
        ..Default::default()
    };
    let again = c.create_how(&dir, "inputs", createhow3::UNCHECKED(plain));
    assert_eq!(again, Ok(Some(inputs.clone())));
    // Of `start`, truncating: one POST, and the WRITE after it joins it.
    let start = c
        .create_how(&dir, "start", createhow3::UNCHECKED(create_truncating()))
        .expect("UNCHECKED CREATE of start")
        .expect("a handle");
    c.write(&start, 0, b"\n", stable_how::UNSTABLE)
        .expect("WRITE");
    c.commit(&start).expect("COMMIT");
    std::thread::sleep(PAST_OLD_IDLE);
    let post = format!("/extractors/{g}/start");
    assert_eq!(emu.count("POST", &post), 1, "{:?}", mutating(&emu));
    assert_eq!(mutating(&emu).len(), 1, "{:?}", mutating(&emu));
    // Of a directory or a link: it exists, and is no file.
    let runs = c.create_how(
        &dir,
        "crawlruns",
        createhow3::UNCHECKED(create_truncating()),
    );
    assert_eq!(runs, Err(nfsstat3::NFS3ERR_EXIST));
}

/// libnfs 4's `nfs-cp` (Debian 12's) opens its target with O_EXCL, so it
/// sends a GUARDED CREATE: onto `inputs` it is refused, as from any NFS
/// server, and sends nothing; onto a new name it writes a scratch file.
#[test]
fn nfs_cp_never_overwrites_and_writes_a_new_file() {
    if !libnfs_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let s = NfsServer::start(&emu.url, &["--allow-unprivileged-ports"]);
    let g = plain_extractor_list(&emu)[3]["guid"]
        .as_str()
        .unwrap()
        .to_owned();
    let src = s.dir.path().join("urls.txt");
    let body = "https://cp.example/1\nhttps://cp.example/2\n";
    std::fs::write(&src, body).unwrap();
    let old = api_urls(&emu, &g);
    emu.clear_requests();
    let cp = |to: &str| {
        std::process::Command::new("timeout")
            .args(["60", "nfs-cp"])
            .arg(&src)
            .arg(s.url(&format!("extractors/{g}/{to}"), ""))
            .output()
            .expect("nfs-cp")
    };
    let onto = cp("inputs");
    assert!(!onto.status.success(), "nfs-cp onto inputs: {onto:?}");
    assert!(
        String::from_utf8_lossy(&onto.stderr).contains("NFS3ERR_EXIST"),
        "{}",
        String::from_utf8_lossy(&onto.stderr)
    );
    let new = cp("urls.new");
    assert!(
        new.status.success(),
        "nfs-cp onto a new name: {}\n{}",
        String::from_utf8_lossy(&new.stderr),
        s.log_tail()
    );
    assert_eq!(s.cat(&format!("extractors/{g}/urls.new")), body.as_bytes());
    std::thread::sleep(PAST_OLD_IDLE);
    assert_eq!(mutating(&emu), Vec::<serde_json::Value>::new());
    assert_eq!(api_urls(&emu, &g), old);
}

#[test]
fn extractors_dir_moves_when_its_listing_changes() {
    if !root_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let s = NfsServer::start(&emu.url, &["--allow-delete"]);
    let mut c = s.client();
    let g = plain_extractor_list(&emu)[4]["guid"]
        .as_str()
        .unwrap()
        .to_owned();
    let top = c.fh("extractors");
    let listed = c.readdir(&top).expect("READDIRPLUS").len();
    let before = c.getattr(&top).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        stamp(&c.getattr(&top).unwrap()),
        stamp(&before),
        "unchanged while the listing is"
    );
    // Archived (here through the mount; elsewhere it shows once the
    // listing's TTL is over).
    c.rmdir(&top, &g).expect("RMDIR of an extractor");
    let after = until_changed(&mut c, &top, &before, Duration::from_secs(10));
    assert!(
        after.mtime != before.mtime && after.ctime != before.ctime,
        "{before:?} → {after:?}"
    );
    assert_eq!(c.readdir(&top).expect("READDIRPLUS").len(), listed - 1);
}
