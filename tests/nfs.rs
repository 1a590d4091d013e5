//! `importfs serve nfs` driven by real user-space NFS clients: libnfs's
//! `nfs-ls` and `nfs-cat`, and the `nfs3_client` crate for what those cannot
//! send (WRITE, COMMIT, SETATTR, READLINK, a chosen credential or source
//! port, a handle of an earlier server). API calls are counted in the
//! emulator's request log.

mod common;

use common::nfs::{auth_none_calls, libnfs_or_skip, root_or_skip, Client, NfsServer};
use common::*;
use nfs3_client::nfs3_types::nfs3::{ftype3, nfsstat3, stable_how};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

/// Longer than a control file's idle write session (3 s) and the reaper
/// (1 s): whatever an unfinished write of `start` would send has been sent
/// after this. (An `inputs` session waits 60 s for its COMMIT.)
const PAST_IDLE: Duration = Duration::from_millis(4500);

/// The guids of the demo's plainly named extractors, in the API's order (the
/// ones tests/mount_write.rs picks by index).
fn plain_extractors(emu: &Emu) -> Vec<String> {
    plain_extractor_list(emu)
        .iter()
        .map(|e| e["guid"].as_str().unwrap().to_owned())
        .collect()
}

/// The account's crawl runs by extractor guid.
fn runs_by_extractor(emu: &Emu) -> BTreeMap<String, Vec<Value>> {
    let mut by: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in emu
        .get_json("/crawlruns/?_perpage=1000")
        .as_array()
        .unwrap()
    {
        let g = r["extractorId"].as_str().unwrap().to_owned();
        by.entry(g).or_default().push(r.clone());
    }
    by
}

fn names(list: &[(String, String)]) -> Vec<&str> {
    list.iter().map(|(_, n)| n.as_str()).collect()
}

fn mode_of<'a>(list: &'a [(String, String)], name: &str) -> &'a str {
    list.iter()
        .find(|(_, n)| n == name)
        .map(|(m, _)| m.as_str())
        .unwrap_or_else(|| panic!("{name} is not listed: {list:?}"))
}

#[test]
fn the_tree_lists_over_nfs_ls() {
    if !libnfs_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let s = NfsServer::start(&emu.url, &[]);
    let root = s.ls("");
    let want = [
        "user.json",
        "subscription.json",
        "extractors",
        "crawlruns",
        "reports",
        "reportruns",
        ".importfs",
    ];
    for n in want {
        assert!(names(&root).contains(&n), "the root lacks {n}: {root:?}");
    }
    assert_eq!(mode_of(&root, "user.json"), "-r--r--r--");
    assert_eq!(mode_of(&root, "extractors"), "dr-xr-xr-x");
    // extractors/ lists names; each plainly named extractor is there.
    let exts = s.ls("extractors/");
    for g in plain_extractors(&emu) {
        let name = emu.get_json(&format!("/extractors/{g}"))["name"].clone();
        let name = name.as_str().unwrap();
        assert!(names(&exts).contains(&name), "{name} not listed: {exts:?}");
    }
    // An extractor with runs, reached by its guid (only names are listed).
    let by = runs_by_extractor(&emu);
    let (g, runs) = by.iter().find(|(_, v)| v.len() >= 2).expect("runs");
    let d = s.ls(&format!("extractors/{g}/"));
    let files = [
        "extractor.json",
        "inputs",
        "start",
        "stop",
        "duplicate",
        "credentials",
        "crawlruns",
        "latest",
    ];
    assert_eq!(
        names(&d).iter().filter(|n| !files.contains(n)).count(),
        0,
        "{d:?}"
    );
    for f in files {
        assert!(names(&d).contains(&f), "extractors/{g} lacks {f}: {d:?}");
    }
    assert_eq!(mode_of(&d, "inputs"), "-rw-r--r--");
    assert_eq!(mode_of(&d, "start"), "--w-------");
    assert!(mode_of(&d, "latest").starts_with('l'), "{d:?}");
    // Its crawlruns/ lists its runs, as links.
    let listed = s.ls(&format!("extractors/{g}/crawlruns/"));
    let mut got: Vec<&str> = names(&listed);
    got.sort();
    let mut want: Vec<&str> = runs.iter().map(|r| r["guid"].as_str().unwrap()).collect();
    want.sort();
    assert_eq!(got, want);
    assert!(listed.iter().all(|(m, _)| m.starts_with('l')), "{listed:?}");
}

#[test]
fn result_files_read_with_nfs_cat_are_the_apis_bytes() {
    if !libnfs_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let s = NfsServer::start(&emu.url, &[]);
    let mut c = s.client();
    let runs = emu.finished_runs();
    assert!(runs.len() >= 2, "{runs:?}");
    for id in &runs[..2] {
        // data.csv, data.json and data.xlsx.
        for (file, api) in &RUN_FILES[..3] {
            let truth = emu.get_bytes(&format!("/crawlruns/{id}/{api}"));
            let path = format!("crawlruns/{id}/{file}");
            let got = s.cat(&path);
            assert!(
                got == truth,
                "{path}: {} bytes from nfs-cat, {} from the API\n{}",
                got.len(),
                truth.len(),
                s.log_tail()
            );
            let fh = c.fh(&path);
            assert_eq!(c.getattr(&fh).unwrap().size, truth.len() as u64, "{path}");
        }
    }
    // A second read comes from the cache: the same bytes, no download.
    let id = &runs[0];
    let truth = emu.get_bytes(&format!("/crawlruns/{id}/csv"));
    emu.clear_requests();
    assert!(s.cat(&format!("crawlruns/{id}/data.csv")) == truth);
    assert_eq!(emu.count("GET", &format!("/crawlruns/{id}/csv")), 0);
    // And a new server on the same cache directory reuses what the first kept.
    let mut s = s;
    s.restart(&emu.url, &[]);
    emu.clear_requests();
    assert!(s.cat(&format!("crawlruns/{id}/data.csv")) == truth);
    assert_eq!(emu.count("GET", &format!("/crawlruns/{id}/csv")), 0);
}

#[test]
fn latest_and_run_links_read_back_over_readlink() {
    if !root_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let s = NfsServer::start(&emu.url, &[]);
    let mut c = s.client();
    let by = runs_by_extractor(&emu);
    let (g, runs) = by.iter().find(|(_, v)| v.len() >= 2).expect("runs");
    // The newest by start (else creation) time, ties broken by guid, as
    // the filesystem picks it.
    let when = |r: &Value| {
        let t = r["startedAt"].as_str().or(r["_meta"]["createdAt"].as_str());
        (
            t.unwrap_or("").to_owned(),
            r["guid"].as_str().unwrap().to_owned(),
        )
    };
    let newest = runs.iter().map(when).max().unwrap().1;
    let fh = c.fh(&format!("extractors/{g}/latest"));
    assert_eq!(c.getattr(&fh).unwrap().type_, ftype3::NF3LNK);
    assert_eq!(
        c.readlink(&fh).unwrap(),
        format!("../../crawlruns/{newest}")
    );
    for r in runs {
        let id = r["guid"].as_str().unwrap();
        let fh = c.fh(&format!("extractors/{g}/crawlruns/{id}"));
        assert_eq!(c.getattr(&fh).unwrap().type_, ftype3::NF3LNK);
        assert_eq!(c.readlink(&fh).unwrap(), format!("../../../crawlruns/{id}"));
    }
    // Where latest points is a run directory with that run's state.
    let state = c.fh(&format!("crawlruns/{newest}/state"));
    let want = runs.iter().find(|r| r["guid"] == newest.as_str()).unwrap()["state"].clone();
    assert_eq!(
        String::from_utf8(c.read_all(&state)).unwrap(),
        format!("{}\n", want.as_str().unwrap())
    );
}

#[test]
fn writing_inputs_is_one_put_at_commit() {
    if !root_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let s = NfsServer::start(&emu.url, &[]);
    let mut c = s.client();
    let g = plain_extractors(&emu)[0].clone();
    let fh = c.fh(&format!("extractors/{g}/inputs"));
    let before = String::from_utf8(c.read_all(&fh)).unwrap();
    assert_eq!(before.lines().collect::<Vec<_>>(), api_urls(&emu, &g));
    emu.clear_requests();
    // As `echo ... > inputs` sends it: SETATTR size 0, WRITE, COMMIT.
    let new = "https://nfs.example/1\nhttps://nfs.example/2\n";
    c.truncate(&fh).expect("SETATTR size 0");
    c.write(&fh, 0, new.as_bytes(), stable_how::UNSTABLE)
        .expect("WRITE");
    assert_eq!(puts(&emu, &g), 0, "nothing is sent before the COMMIT");
    assert_eq!(
        c.getattr(&fh).unwrap().size,
        new.len() as u64,
        "pending size"
    );
    c.commit(&fh).expect("COMMIT");
    assert_eq!(puts(&emu, &g), 1, "one PUT: {:?}", mutating(&emu));
    assert_eq!(
        api_urls(&emu, &g),
        ["https://nfs.example/1", "https://nfs.example/2"]
    );
    assert_eq!(String::from_utf8(c.read_all(&fh)).unwrap(), new);
    std::thread::sleep(PAST_IDLE);
    assert_eq!(
        mutating(&emu).len(),
        1,
        "nothing more: {:?}",
        mutating(&emu)
    );

    // A FILE_SYNC WRITE is sent at once, no COMMIT needed.
    emu.clear_requests();
    let third = "https://nfs.example/3\n";
    c.truncate(&fh).expect("SETATTR size 0");
    let how = c.write(&fh, 0, third.as_bytes(), stable_how::FILE_SYNC);
    assert_eq!(how, Ok(stable_how::FILE_SYNC));
    assert_eq!(puts(&emu, &g), 1, "one PUT: {:?}", mutating(&emu));
    assert_eq!(api_urls(&emu, &g), ["https://nfs.example/3"]);
    assert_eq!(String::from_utf8(c.read_all(&fh)).unwrap(), third);
    std::thread::sleep(PAST_IDLE);
    assert_eq!(
        mutating(&emu).len(),
        1,
        "nothing more: {:?}",
        mutating(&emu)
    );
}

#[test]
fn an_invalid_url_fails_the_write_and_sends_nothing() {
    if !root_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let s = NfsServer::start(&emu.url, &[]);
    let mut c = s.client();
    let g = plain_extractors(&emu)[1].clone();
    let fh = c.fh(&format!("extractors/{g}/inputs"));
    let before = c.read_all(&fh);
    let before_api = api_urls(&emu, &g);
    emu.clear_requests();
    let w = c.write(&fh, 0, b"not a url\n", stable_how::UNSTABLE);
    assert_eq!(w, Err(nfsstat3::NFS3ERR_INVAL), "{}", s.log_tail());
    let commit = c.commit(&fh);
    assert!(commit.is_err(), "the COMMIT of a refused write: {commit:?}");
    // Refused and never committed: not sent once idle either.
    let w = c.write(
        &fh,
        0,
        b"https://ok.example/\nnot a url\n",
        stable_how::UNSTABLE,
    );
    assert_eq!(w, Err(nfsstat3::NFS3ERR_INVAL));
    // So is a FILE_SYNC one.
    let w = c.write(&fh, 0, b"ftp://files.example/x\n", stable_how::FILE_SYNC);
    assert_eq!(w, Err(nfsstat3::NFS3ERR_INVAL));
    std::thread::sleep(PAST_IDLE);
    assert_eq!(puts(&emu, &g), 0, "no PUT: {:?}", mutating(&emu));
    assert_eq!(api_urls(&emu, &g), before_api);
    assert!(c.read_all(&fh) == before, "inputs unchanged");
}

#[test]
fn a_touch_of_start_is_one_post_and_a_write_after_it_joins_it() {
    if !root_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let s = NfsServer::start(&emu.url, &[]);
    let mut c = s.client();
    let g = plain_extractors(&emu)[2].clone();
    let fh = c.fh(&format!("extractors/{g}/start"));
    let runs = || runs_by_extractor(&emu).remove(&g).unwrap_or_default().len();
    let before = runs();
    emu.clear_requests();
    c.touch(&fh).expect("SETATTR mtime=SET_TO_SERVER_TIME");
    let start = format!("/extractors/{g}/start");
    assert_eq!(emu.count("POST", &start), 1, "sent during the SETATTR");
    // `echo > start` after it: a WRITE and a COMMIT that send nothing more.
    c.write(&fh, 0, b"\n", stable_how::UNSTABLE).expect("WRITE");
    c.commit(&fh).expect("COMMIT");
    std::thread::sleep(PAST_IDLE);
    assert_eq!(emu.count("POST", &start), 1, "{:?}", mutating(&emu));
    assert_eq!(mutating(&emu).len(), 1, "{:?}", mutating(&emu));
    assert_eq!(runs(), before + 1, "the API has one new run");
    // A write alone (`echo > stop`, no truncation) is one POST too.
    let stop = c.fh(&format!("extractors/{g}/stop"));
    emu.clear_requests();
    let how = c.write(&stop, 0, b"\n", stable_how::FILE_SYNC);
    assert_eq!(how, Ok(stable_how::FILE_SYNC));
    std::thread::sleep(PAST_IDLE);
    let stops = format!("/extractors/{g}/stop");
    assert_eq!(emu.count("POST", &stops), 1, "{:?}", mutating(&emu));
    assert_eq!(mutating(&emu).len(), 1, "{:?}", mutating(&emu));
}

#[test]
fn a_read_only_server_refuses_every_write() {
    if !root_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let s = NfsServer::start(&emu.url, &["--read-only"]);
    let mut c = s.client();
    let g = plain_extractors(&emu)[0].clone();
    let dir = c.fh(&format!("extractors/{g}"));
    let inputs = c.fh(&format!("extractors/{g}/inputs"));
    let start = c.fh(&format!("extractors/{g}/start"));
    emu.clear_requests();
    use nfsstat3::NFS3ERR_ROFS as ROFS;
    let url = b"https://x.example/\n";
    assert_eq!(c.write(&inputs, 0, url, stable_how::UNSTABLE), Err(ROFS));
    assert_eq!(c.write(&inputs, 0, url, stable_how::FILE_SYNC), Err(ROFS));
    assert_eq!(c.truncate(&inputs), Err(ROFS));
    assert_eq!(c.touch(&start), Err(ROFS));
    assert_eq!(c.write(&start, 0, b"\n", stable_how::FILE_SYNC), Err(ROFS));
    assert_eq!(c.create(&dir, "scratch"), Err(ROFS));
    assert_eq!(c.create(&dir, "inputs"), Err(ROFS));
    let _ = c.commit(&inputs);
    std::thread::sleep(PAST_IDLE);
    assert_eq!(mutating(&emu), Vec::<Value>::new());
    // Reading still works.
    let user = c.fh("user.json");
    assert!(c.read_all(&user).starts_with(b"{"));
}

#[test]
fn unprivileged_ports_and_foreign_uids_are_refused() {
    if !libnfs_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let s = NfsServer::start(&emu.url, &[]);
    // Root from a reserved port is let in.
    let mut c = s.client();
    let fh = c.fh("user.json");
    assert!(c.read_all(&fh).starts_with(b"{"));
    let refused = |uid: Option<u32>, privileged: bool, port: u16| match Client::connect(
        port, uid, privileged,
    ) {
        Ok(_) => panic!("uid {uid:?}, privileged {privileged}: let in"),
        Err(e) => assert!(e.contains("AUTH_TOOWEAK"), "uid {uid:?}: {e}"),
    };
    refused(Some(0), false, s.port);
    refused(Some(4242), true, s.port);
    refused(None, true, s.port);
    let out = s.libnfs("nfs-ls", &s.url("", "&uid=4242&gid=4242"));
    assert!(!out.status.success(), "nfs-ls as uid 4242 got in");
    let log = s.log_text();
    assert!(log.contains("refused an NFS client"), "{log}");
    for why in ["not a reserved one", "uid 4242", "AUTH_NONE"] {
        assert!(log.contains(why), "no refusal for {why:?} in:\n{log}");
    }
    drop(s);
    // --allow-unprivileged-ports drops the port rule only.
    let s = NfsServer::start(&emu.url, &["--allow-unprivileged-ports"]);
    let mut c = Client::connect(s.port, Some(0), false).expect("an unprivileged port gets in");
    let fh = c.fh("user.json");
    assert!(c.read_all(&fh).starts_with(b"{"));
    refused(Some(4242), false, s.port);
    refused(None, false, s.port);
}

/// A Linux kernel's first call is NULL under AUTH_NONE: NULL is answered
/// whatever the credentials, and nothing else is.
#[test]
fn null_is_answered_without_credentials_and_nothing_else_is() {
    if !root_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let s = NfsServer::start(&emu.url, &[]);
    let root = s.client().root();
    let [null, mnt_null, getattr] = auth_none_calls(s.port, &root);
    null.unwrap_or_else(|e| panic!("NFS NULL under AUTH_NONE: {e}\n{}", s.log_tail()));
    mnt_null.unwrap_or_else(|e| panic!("MOUNT NULL under AUTH_NONE: {e}\n{}", s.log_tail()));
    let e = getattr.expect_err("GETATTR under AUTH_NONE was answered");
    assert!(e.contains("AUTH_TOOWEAK"), "GETATTR under AUTH_NONE: {e}");
}

#[test]
fn a_handle_of_an_earlier_server_is_stale() {
    if !root_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let mut s = NfsServer::start(&emu.url, &[]);
    let old = {
        let mut c = s.client();
        let fh = c.fh("user.json");
        c.getattr(&fh)
            .expect("GETATTR on the server that gave the handle");
        fh
    };
    s.restart(&emu.url, &[]);
    let mut c = s.client();
    assert_eq!(c.getattr(&old).err(), Some(nfsstat3::NFS3ERR_STALE));
    assert_eq!(c.read(&old, 0, 64).err(), Some(nfsstat3::NFS3ERR_STALE));
    // The name has a new handle, which works.
    let new = c.fh("user.json");
    assert_ne!(new, old);
    assert!(c.read_all(&new).starts_with(b"{"));
}

#[test]
fn a_large_file_reads_exact_while_it_is_still_downloading() {
    if !libnfs_or_skip() {
        return;
    }
    let size = 256u64 << 20;
    let emu = Emu::start(scale_account(size, None));
    let id = emu.finished_runs()[0].clone();
    // The server's downloads are capped (10 MB/s a connection, 4 streams:
    // at least 6 s for the file); the test's own GET of the truth is not.
    emu.set_faults(json!({"operation": "getCrawlrunFile", "bytes_per_sec": 10_000_000}));
    let s = NfsServer::start(&emu.url, &[]);
    let mut c = s.client();
    let path = format!("crawlruns/{id}/data.csv");
    let fh = c.fh(&path);
    assert_eq!(
        c.getattr(&fh).unwrap().size,
        size,
        "exact size before reading"
    );
    let t = Instant::now();
    let (head, _) = c.read(&fh, 0, 1 << 20).expect("first READ");
    let first = t.elapsed();
    assert!(!head.is_empty());
    assert_eq!(
        c.stat("downloads_in_flight"),
        1,
        "the first bytes were served while the download went on"
    );
    let copy = s.dir.path().join("copy.csv");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&copy).unwrap());
    out.write_all(&head).unwrap();
    let end = c.read_each(&fh, head.len() as u64, |b| out.write_all(b).unwrap());
    out.flush().unwrap();
    drop(out);
    let total = t.elapsed();
    eprintln!("first MiB after {first:?}, all {size} bytes after {total:?}");
    assert_eq!(end, size);
    assert!(
        first * 4 < total,
        "the first MiB took {first:?}, the whole file {total:?}"
    );
    emu.clear_faults();
    let truth = sha256_bytes(&emu.get_bytes(&format!("/crawlruns/{id}/csv")));
    assert_eq!(sha256(&copy), truth, "nfs3_client's READs");
    // nfs-cat, from the cache now, agrees.
    let cat = s.dir.path().join("cat.csv");
    s.cat_to(&path, &cat);
    assert_eq!(sha256(&cat), truth, "nfs-cat");
}

#[test]
fn every_extractor_is_listed_once_and_reachable_by_name_and_guid() {
    if !root_or_skip() {
        return;
    }
    // The demo's hostile names (duplicates, slashes, dots, control bytes)
    // included, in 4 KiB READDIRPLUS pages.
    let emu = Emu::demo();
    let s = NfsServer::start(&emu.url, &[]);
    let mut c = s.client();
    let dir = c.fh("extractors");
    let listed = c.readdir(&dir).expect("READDIRPLUS extractors");
    let api = emu.get_json("/extractors/?_perpage=1000");
    let api = api.as_array().unwrap();
    assert_eq!(listed.len(), api.len(), "each extractor once: {listed:?}");
    let distinct: std::collections::HashSet<&Vec<u8>> = listed.iter().map(|(n, _)| n).collect();
    assert_eq!(distinct.len(), listed.len(), "distinct names");
    let mut by_guid = std::collections::HashMap::new();
    for e in api {
        let g = e["guid"].as_str().unwrap();
        let fh = c
            .lookup(&dir, g)
            .unwrap_or_else(|e| panic!("LOOKUP {g}: {e:?}"));
        by_guid.insert(c.getattr(&fh).unwrap().fileid, g.to_owned());
    }
    for (name, fileid) in &listed {
        let shown = String::from_utf8_lossy(name);
        assert!(!name.contains(&b'/') && name.len() <= 255, "{shown:?}");
        let name = std::str::from_utf8(name).unwrap_or_else(|_| panic!("{shown:?}"));
        let fh = c
            .lookup(&dir, name)
            .unwrap_or_else(|e| panic!("LOOKUP {shown:?}: {e:?}"));
        assert_eq!(c.getattr(&fh).unwrap().fileid, *fileid, "{shown:?}");
        let g = by_guid
            .get(fileid)
            .unwrap_or_else(|| panic!("{shown:?} is no guid's"));
        let json = c.fh(&format!("extractors/{g}/extractor.json"));
        let v: Value = serde_json::from_slice(&c.read_all(&json)).unwrap();
        assert_eq!(v["guid"], g.as_str(), "{shown:?}");
    }
}

/// Whatever is mounted at `path`, as mountinfo says (without stat'ing it).
fn mounted_at(path: &std::path::Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = path.to_string_lossy().replace(' ', "\\040");
    info.lines()
        .find(|l| l.split(' ').nth(4) == Some(want.as_str()))
        .map(str::to_owned)
}

/// `importfs mount --backend nfs`: where the OS's NFS client can mount (a
/// kernel with NFS, mount.nfs, root), it mounts, reads, and unmounts with
/// `importfs unmount`; where it cannot (this kind of machine: no NFS in the
/// kernel), it says why and what to do, exits non-zero, and leaves nothing
/// mounted and no process behind. Either way `-o backend=nfs` is the same
/// as the flag, and a wrong backend is refused before anything starts.
#[test]
fn mount_backend_nfs_mounts_or_says_clearly_why_not() {
    let emu = Emu::demo();
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mount = |backend: &[&str]| {
        std::process::Command::new(importfs_bin())
            .arg("mount")
            .arg(&mnt)
            .args(backend)
            .args(["--api-url", &emu.url, "--no-config", "--cache-dir"])
            .arg(dir.path().join("cache"))
            .arg("--log-file")
            .arg(dir.path().join("mount.log"))
            .env("IMPORTIO_API_KEY", KEY)
            .output()
            .expect("importfs mount")
    };
    let bad = mount(&["-o", "backend=nfz"]);
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && said.contains("fuse or nfs"),
        "{said}"
    );
    for form in [&["--backend", "nfs"][..], &["-o", "backend=nfs"][..]] {
        let out = mount(form);
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            let line = mounted_at(&mnt).expect("mounted");
            assert!(line.contains("127.0.0.1:/importfs"), "{line}");
            assert!(std::fs::read_to_string(mnt.join("user.json")).is_ok());
            let un = std::process::Command::new(importfs_bin())
                .arg("unmount")
                .arg(&mnt)
                .output()
                .unwrap();
            assert!(
                un.status.success(),
                "{}",
                String::from_utf8_lossy(&un.stderr)
            );
        } else {
            let known = [
                "mount.nfs is missing",
                "has no NFS client",
                "needs root",
                "could not mount",
            ];
            assert!(known.iter().any(|k| said.contains(k)), "unclear: {said}");
        }
        assert!(mounted_at(&mnt).is_none(), "nothing left mounted");
        let left: Vec<String> = processes_naming(&mnt.to_string_lossy())
            .into_iter()
            .map(|p| p.cmdline)
            .collect();
        assert!(left.is_empty(), "processes left: {left:?}");
    }
}

/// Scratch files work as on FUSE: made, written, read back, renamed onto
/// `inputs` (one PUT of their content, validated), removed; API files
/// cannot be removed or renamed, and `rmdir` of an extractor is refused
/// without `--allow-delete` (no call) and archives it with it (one DELETE).
#[test]
fn scratch_files_rename_onto_inputs_and_rmdir_needs_allow_delete() {
    if !root_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let g = plain_extractors(&emu)[1].clone();
    {
        let s = NfsServer::start(&emu.url, &[]);
        let mut c = s.client();
        let dir = c.fh(&format!("extractors/{g}"));
        emu.clear_requests();
        c.create(&dir, "inputs.swp")
            .expect("CREATE of a scratch file");
        let tmp = c.lookup(&dir, "inputs.swp").unwrap();
        let new = "https://scratch.example/a\n";
        c.write(&tmp, 0, new.as_bytes(), stable_how::FILE_SYNC)
            .expect("WRITE");
        assert_eq!(String::from_utf8(c.read_all(&tmp)).unwrap(), new);
        assert!(mutating(&emu).is_empty(), "a scratch file is not sent");
        c.rename(&dir, "inputs.swp", "inputs")
            .expect("RENAME onto inputs");
        assert_eq!(puts(&emu, &g), 1, "{:?}", mutating(&emu));
        assert_eq!(api_urls(&emu, &g), ["https://scratch.example/a"]);
        assert_eq!(c.lookup(&dir, "inputs.swp"), Err(nfsstat3::NFS3ERR_NOENT));
        c.create(&dir, "junk").unwrap();
        c.remove(&dir, "junk").expect("REMOVE of a scratch file");
        assert_eq!(c.remove(&dir, "inputs"), Err(nfsstat3::NFS3ERR_PERM));
        assert_eq!(
            c.rename(&dir, "start", "begin"),
            Err(nfsstat3::NFS3ERR_PERM)
        );
        let extractors = c.fh("extractors");
        emu.clear_requests();
        assert_eq!(c.rmdir(&extractors, &g), Err(nfsstat3::NFS3ERR_PERM));
        assert!(mutating(&emu).is_empty(), "{:?}", mutating(&emu));
    }
    let s = NfsServer::start(&emu.url, &["--allow-delete"]);
    let mut c = s.client();
    let extractors = c.fh("extractors");
    emu.clear_requests();
    c.rmdir(&extractors, &g).expect("RMDIR with --allow-delete");
    let muts = mutating(&emu);
    assert_eq!(muts.len(), 1, "{muts:?}");
    assert_eq!(muts[0]["method"], "DELETE");
    assert_eq!(muts[0]["path"], format!("/extractors/{g}"));
}

#[test]
fn the_events_log_grows_over_nfs_and_reads_to_its_end() {
    if !libnfs_or_skip() {
        return;
    }
    let emu = Emu::start(importfs::emulator::Config {
        run_seconds: 1.0,
        ..importfs::emulator::Config::default()
    });
    let s = NfsServer::start(&emu.url, &["--poll-interval", "1s"]);
    let mut c = s.client();
    let fh = c.fh(".importfs/events");
    let before = c.getattr(&fh).expect("GETATTR");
    let g = plain_extractors(&emu)[0].clone();
    let run = emu.hook(
        reqwest::Method::POST,
        "/_emulator/crawlruns",
        Some(json!({"extractorId": g, "state": "STARTED"})),
    );
    let id = run["guid"].as_str().unwrap().to_owned();
    // The attributes show each event: size and mtime grow, as a kernel
    // client's attribute cache needs to see them.
    let finished = format!("\"event\":\"crawlrun.finished\",\"id\":\"{id}\"");
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = String::from_utf8(c.read_all(&fh)).unwrap();
        if text.contains(&finished) {
            break text;
        }
        assert!(Instant::now() < deadline, "no finished event: {text}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let after = c.getattr(&fh).expect("GETATTR");
    assert_eq!(
        after.size,
        text.len() as u64,
        "the size is the bytes there are"
    );
    assert!(after.size > before.size);
    let t = |a: &nfs3_client::nfs3_types::nfs3::fattr3| (a.mtime.seconds, a.mtime.nseconds);
    assert!(t(&after) > t(&before), "the mtime moved");
    let mine: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["id"] == id.as_str())
        .collect();
    assert_eq!(mine.len(), 2, "started and finished: {text}");
    // A read past the end is the end at once; libnfs's cat ends and gets
    // the same bytes.
    let (past, eof) = c.read(&fh, after.size, 4096).expect("READ");
    assert!(past.is_empty() && eof);
    let catted = s.cat(".importfs/events");
    assert_eq!(&catted[..text.len()], text.as_bytes());
}
