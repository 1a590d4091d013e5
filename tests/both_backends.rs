//! One suite of file-level checks, run over both backends where their
//! semantics are the same, as rclone's `vfstest` runs one suite over every
//! mount type: a shell script run in the mount's root over FUSE on this
//! machine (bash), and over NFS in a real Linux kernel (busybox sh in the
//! QEMU guest of `common/qemu.rs`, mounted there by `importfs mount
//! --backend nfs`). Both mounts use an emulator on this machine, whose
//! request log counts the calls either way. The script prints `KEY=VALUE`
//! lines, and one set of assertions reads them for both.
//!
//! Left to each backend's own tests: what differs by design (FUSE's EBUSY,
//! NFS's idle write sessions), the slow writer (it needs the host to watch
//! the API while the guest writes: `nfs_contract.rs`, `kernel_nfs.rs`), and
//! `--read-only` (another mount).

mod common;

use common::qemu::{nfs_suite, Guest, GuestApi};
use common::*;
use serde_json::Value;

#[derive(Debug, Clone, Copy)]
enum Backend {
    Fuse,
    KernelNfs,
}

/// Run `suite` (sh, `set -e`) in the root of a mount of `emu` by `backend`,
/// with `$T` a scratch directory outside the mount; its output, or None
/// where the backend cannot run here (outside CI).
fn run(backend: Backend, emu: &Emu, suite: &str) -> Option<String> {
    match backend {
        Backend::Fuse => {
            if !fuse_or_skip() {
                return None;
            }
            let m = Mounted::new(&emu.url, &["--poll-interval", "2s"]);
            let t = m.dir.path().join("scratch");
            std::fs::create_dir(&t).unwrap();
            Some(m.sh_ok(&format!("set -e\nT='{}'\n{suite}", t.display())))
        }
        Backend::KernelNfs => {
            let g = Guest::get()?;
            let api = GuestApi::Host {
                url: &emu.url,
                key: &emu.key,
            };
            let script = format!("T=/tmp\n{suite}");
            Some(nfs_suite(g, api, "", &script).wait().ok().out)
        }
    }
}

/// The last `KEY=VALUE` of `out` for `key`.
fn value<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .rev()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
}

/// The guid of the `i`th plainly named extractor.
fn extractor(emu: &Emu, i: usize) -> String {
    plain_extractor_list(emu)[i]["guid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A finished report run with result files, and its files' API names.
fn finished_report_run(emu: &Emu) -> String {
    let runs = emu.get_json("/reportruns/?_perpage=1000");
    runs.as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == "FINISHED")
        .and_then(|r| r["guid"].as_str())
        .expect("a finished report run")
        .to_owned()
}

const REPORTRUN_FILES: [(&str, &str); 2] = [("data.csv", "csv"), ("data.xlsx", "xlsx")];

/// The account suite: the tree, exact bytes of every result type, `>>`,
/// `sed -i` and `cp` onto `inputs` each one PUT, `rm -rf extractors`
/// refused, `touch start` one POST whose run shows in `crawlruns/`,
/// `latest` and the events log, and `grep -r` over the whole mount ends.
fn account_suite(backend: Backend) {
    let emu = Emu::demo();
    let (x, y, z) = (extractor(&emu, 0), extractor(&emu, 1), extractor(&emu, 2));
    let run_id = emu.finished_runs()[0].clone();
    let rr = finished_report_run(&emu);
    let x_before = api_urls(&emu, &x);
    let extractors_before = emu
        .get_json("/extractors/?_perpage=1000")
        .as_array()
        .unwrap()
        .len();
    let suite = format!(
        r#"X={x}; Y={y}; Z={z}; RUN={run_id}; RR={rr}
echo "TREE=$(ls | tr '\n' ' ')"
for f in data.csv data.json data.xlsx sample.json log.txt files.zip; do
    echo "SHA crawlruns/$RUN/$f $(sha256sum < crawlruns/$RUN/$f | cut -c1-64)"
done
for f in data.csv data.xlsx; do
    echo "SHA reportruns/$RR/$f $(sha256sum < reportruns/$RR/$f | cut -c1-64)"
done
echo https://appended.example/ >> extractors/$X/inputs
sed -i 's|https://appended.example/|https://edited.example/|' extractors/$X/inputs
echo "EDITED=$(grep -c edited.example extractors/$X/inputs)"
seq 1 20000 | sed 's|^|https://example.com/item/|' > $T/big-inputs
cp $T/big-inputs extractors/$Y/inputs
if cmp -s $T/big-inputs extractors/$Y/inputs; then echo BIG_EXACT=1; else echo BIG_EXACT=0; fi
rc=0; rm -rf extractors 2>/dev/null || rc=$?
echo RM_RC=$rc
echo "EXTRACTORS_LEFT=$(ls extractors | wc -l)"
d=extractors/$Z
n0=$(ls $d/crawlruns | wc -l); l0=$(readlink $d/latest || true)
touch $d/start
t=0
while [ $t -lt 60 ]; do
    sleep 0.5; t=$((t+1))
    [ "$(ls $d/crawlruns | wc -l)" -gt "$n0" ] && [ "$(readlink $d/latest || true)" != "$l0" ] && break
done
echo NEW_RUN_HALF_SECONDS=$t
id=$(basename "$(readlink $d/latest)")
echo NEW_RUN=$id
t=0
until grep -q "\"id\":\"$id\"" .importfs/events; do
    t=$((t+1)); [ $t -lt 30 ] || break; sleep 0.5
done
echo "RUN_EVENTS=$(grep -c "\"id\":\"$id\"" .importfs/events)"
rc=0; timeout 300 grep -r -l no-such-text-anywhere . >/dev/null 2>&1 || rc=$?
echo GREP_RC=$rc
echo SUITE_DONE"#
    );
    let Some(out) = run(backend, &emu, &suite) else {
        return;
    };
    let why = format!("{backend:?}:\n{out}");
    assert!(out.contains("SUITE_DONE"), "{why}");
    let tree = value(&out, "TREE");
    for name in [
        "crawlruns",
        "extractors",
        "reportruns",
        "reports",
        "user.json",
    ] {
        assert!(tree.split(' ').any(|n| n == name), "no {name}: {why}");
    }
    // Every result type, byte for byte the API's.
    let mut checked = 0;
    for (dir, id, files) in [
        ("crawlruns", &run_id, &RUN_FILES[..]),
        ("reportruns", &rr, &REPORTRUN_FILES[..]),
    ] {
        for (file, api) in files {
            let truth = sha256_bytes(&emu.get_bytes(&format!("/{dir}/{id}/{api}")));
            let line = format!("SHA {dir}/{id}/{file} {truth}");
            assert!(out.lines().any(|l| l == line), "{dir}/{id}/{file}: {why}");
            checked += 1;
        }
    }
    assert_eq!(checked, 8);
    // `>>` then `sed -i`: one PUT each, and the API has the edit.
    assert_eq!(value(&out, "EDITED"), "1", "{why}");
    let mut want = x_before;
    want.push("https://edited.example/".into());
    assert_eq!(api_urls(&emu, &x), want, "{why}");
    assert_eq!(puts(&emu, &x), 2, "{:?}\n{why}", mutating(&emu));
    // `cp` of a 600 KB list: one PUT, exact.
    assert_eq!(value(&out, "BIG_EXACT"), "1", "{why}");
    let big = api_urls(&emu, &y);
    assert_eq!(big.len(), 20000, "{why}");
    assert_eq!(big[19999], "https://example.com/item/20000");
    assert_eq!(puts(&emu, &y), 1, "{:?}\n{why}", mutating(&emu));
    // `rm -rf extractors`: refused, nothing archived or deleted.
    assert_ne!(value(&out, "RM_RC"), "0", "{why}");
    let left: usize = value(&out, "EXTRACTORS_LEFT").trim().parse().unwrap();
    assert!(left > 0, "{why}");
    let after = emu
        .get_json("/extractors/?_perpage=1000")
        .as_array()
        .unwrap()
        .len();
    assert_eq!(after, extractors_before, "{why}");
    // `touch start`: one POST; the run in crawlruns/, latest and the log.
    assert_eq!(
        emu.count("POST", &format!("/extractors/{z}/start")),
        1,
        "{why}"
    );
    let new_run: u32 = value(&out, "NEW_RUN_HALF_SECONDS").parse().unwrap();
    assert!(new_run < 60, "the new run never showed: {why}");
    let runs_of_z = emu.get_json(&format!("/crawlruns/?extractorId={z}&_perpage=1000"));
    let new_id = value(&out, "NEW_RUN");
    assert!(
        runs_of_z
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["guid"] == new_id),
        "latest is the new run: {why}"
    );
    let events: u32 = value(&out, "RUN_EVENTS").parse().unwrap();
    assert!(events >= 1, "{why}");
    let writes: Vec<Value> = mutating(&emu);
    assert_eq!(
        writes.len(),
        2 + 1 + 1,
        "PUTs and the POST only: {writes:?}"
    );
    // grep -r over the whole mount ends (124: GNU timeout; 143: busybox's).
    assert!(!["124", "143"].contains(&value(&out, "GREP_RC")), "{why}");
}

#[test]
fn the_account_suite_over_fuse() {
    account_suite(Backend::Fuse);
}

#[test]
fn the_account_suite_over_a_kernel_nfs_client() {
    account_suite(Backend::KernelNfs);
}

/// Two readers of one cold 256 MiB result at once: both exact.
fn two_readers(backend: Backend) {
    let emu = Emu::start(scale_account(256 << 20, None));
    let run_id = emu.finished_runs()[0].clone();
    let truth = {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "curl -sf '{}/crawlruns/{run_id}/csv?_apikey={}' | sha256sum",
                emu.url, emu.key
            ))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout)[..64].to_owned()
    };
    let suite = format!(
        r#"f=crawlruns/{run_id}/data.csv
echo "SIZE=$(wc -c < $f)"
sha256sum < $f > $T/a &
a=$!
sha256sum < $f > $T/b &
b=$!
wait $a; wait $b
echo "A=$(cut -c1-64 $T/a)"
echo "B=$(cut -c1-64 $T/b)""#
    );
    let Some(out) = run(backend, &emu, &suite) else {
        return;
    };
    assert_eq!(
        value(&out, "SIZE").trim(),
        (256u64 << 20).to_string(),
        "{out}"
    );
    assert_eq!(value(&out, "A"), truth, "{backend:?}: {out}");
    assert_eq!(value(&out, "B"), truth, "{backend:?}: {out}");
}

#[test]
fn two_readers_of_a_256_mib_result_over_fuse() {
    two_readers(Backend::Fuse);
}

#[test]
fn two_readers_of_a_256_mib_result_over_a_kernel_nfs_client() {
    two_readers(Backend::KernelNfs);
}
