//! The NFS backend as a real kernel client meets it: Debian's kernel booted
//! in QEMU (tests/common/qemu.rs), mounting importfs's NFS server.

mod common;

use common::nfs::NfsServer;
use common::qemu::{nfs_suite, Guest, GuestApi};
use common::{api_urls, mutating, plain_extractor_list, puts, sha256_bytes, Emu, KEY, RUN_FILES};

/// The harness itself: the guest boots, has its NFS modules and network,
/// and hands back output and exit status.
#[test]
fn the_guest_boots_with_nfs_and_network() {
    let Some(g) = Guest::get() else { return };
    let out = g
        .script("grep -w nfs /proc/filesystems; ip -4 addr show eth0; exit 3")
        .run();
    eprintln!("boot {:?} s, wall {:?}", out.boot_secs, out.wall);
    assert_eq!(out.code, Some(3), "{}", out.explain());
    assert!(out.out.contains("nfs"), "{}", out.explain());
    assert!(out.out.contains("10.0.2.15"), "{}", out.explain());
}

/// The options `importfs serve nfs` prints for Linux, pointed at the host
/// as the guest sees it (`addr=`: mount(2) with text options needs no
/// mount.nfs, and busybox's mount passes them as they are).
fn guest_options(port: u16) -> String {
    format!(
        "vers=3,proto=tcp,port={port},mountport={port},mountproto=tcp,nolock,\
         actimeo=2,soft,timeo=150,retrans=2,addr=10.0.2.2"
    )
}

/// The fallback path: `importfs serve nfs --allow-unprivileged-ports` on
/// the host (QEMU's user network connects from unprivileged host ports),
/// mounted by the guest's kernel with `wsize=131072`; the tree lists,
/// result files read back byte for byte, and a 620 KB `inputs` copied in
/// (five WRITEs or more) is one PUT, exact.
#[test]
fn a_guest_kernel_mounts_a_host_server_and_reads_exact_bytes() {
    let Some(g) = Guest::get() else { return };
    let emu = Emu::demo();
    let s = NfsServer::start(&emu.url, &["--allow-unprivileged-ports"]);
    let x = plain_extractor_list(&emu)[0]["guid"]
        .as_str()
        .unwrap()
        .to_owned();
    let runs = emu.finished_runs();
    let mut want = String::new();
    let mut cats = String::new();
    for id in &runs[..2] {
        // data.csv, data.json and data.xlsx.
        for (file, api) in &RUN_FILES[..3] {
            let truth = emu.get_bytes(&format!("/crawlruns/{id}/{api}"));
            want.push_str(&format!(
                "{}  /mnt/i/crawlruns/{id}/{file}\n",
                sha256_bytes(&truth)
            ));
            cats.push_str(&format!("sha256sum /mnt/i/crawlruns/{id}/{file}\n"));
        }
    }
    let script = format!(
        "set -e\nmkdir -p /mnt/i\nt0=$(cut -d' ' -f1 /proc/uptime)\n\
         mount -t nfs -o {opts},wsize=131072 10.0.2.2:/importfs /mnt/i\n\
         echo MOUNT_SECS=$t0-$(cut -d' ' -f1 /proc/uptime)\n\
         grep ' /mnt/i ' /proc/mounts\nls -1 /mnt/i\necho EXTRACTORS=$(ls /mnt/i/extractors | wc -l)\n\
         {cats}seq 1 20000 | sed 's|^|https://example.com/item/|' > /tmp/big\n\
         cp /tmp/big /mnt/i/extractors/{x}/inputs\n\
         cmp /tmp/big /mnt/i/extractors/{x}/inputs && echo BIG_EXACT\n\
         umount /mnt/i\necho UNMOUNTED\n",
        opts = guest_options(s.port)
    );
    let out = g.script(&script).run();
    let explain = || format!("{}\nserver log:\n{}", out.explain(), s.log_tail());
    assert_eq!(out.code, Some(0), "{}", explain());
    eprintln!(
        "boot {:?} s; mount {:?}",
        out.boot_secs,
        out.value("MOUNT_SECS")
    );
    for name in ["crawlruns", "extractors", "user.json"] {
        assert!(
            out.out.lines().any(|l| l == name),
            "no {name}: {}",
            explain()
        );
    }
    let listed: usize = out.value("EXTRACTORS").unwrap().parse().unwrap();
    assert!(listed >= 2, "{}", explain());
    for line in want.lines() {
        assert!(
            out.out.lines().any(|l| l == line),
            "want {line}: {}",
            explain()
        );
    }
    assert!(out.out.contains("BIG_EXACT"), "{}", explain());
    let urls = api_urls(&emu, &x);
    assert_eq!(urls.len(), 20000, "{}", explain());
    assert_eq!(urls[19999], "https://example.com/item/20000");
    assert_eq!(puts(&emu, &x), 1, "{:?}\n{}", mutating(&emu), explain());
    assert!(out.out.contains("UNMOUNTED"), "{}", explain());
}

/// The whole user path inside the guest: emulator, `importfs mount
/// --backend nfs` (server, reserved ports, uid rule, mount(2) with the
/// options of platform/nfs.rs, watcher) and the guest's kernel client;
/// the tree lists, finished runs' files read byte-exact against the
/// emulator's own answer, and `importfs unmount` leaves nothing mounted.
#[test]
fn importfs_mount_backend_nfs_works_inside_a_guest() {
    let Some(g) = Guest::get() else { return };
    let suite = r#"
grep ' /mnt/i ' /proc/mounts
ls -1 /mnt/i
n=0
for id in $(ls /mnt/i/crawlruns); do
    [ "$(cat /mnt/i/crawlruns/$id/state)" = FINISHED ] || continue
    for f in csv:data.csv json:data.json xlsx:data.xlsx; do
        wget -q -O /tmp/truth "$API/crawlruns/$id/${f%%:*}?_apikey=$IMPORTIO_API_KEY"
        if cmp /tmp/truth "/mnt/i/crawlruns/$id/${f#*:}"; then echo "EXACT $id ${f#*:} $(wc -c </tmp/truth)"
        else echo "DIFFERENT $id ${f#*:}"; fi
    done
    n=$((n+1)); [ $n -lt 2 ] || break
done
"#;
    let out = nfs_suite(g, GuestApi::InGuest, "", suite).wait();
    eprintln!(
        "boot {:?} s, mount {:?}, unmount {:?}, wall {:?}",
        out.boot_secs,
        out.value("MOUNT_SECS"),
        out.value("UNMOUNT_SECS"),
        out.wall
    );
    let out = out.ok();
    let lines: Vec<&str> = out.out.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains(" /mnt/i nfs ")),
        "{}",
        out.explain()
    );
    for name in ["crawlruns", "extractors", "user.json"] {
        assert!(lines.contains(&name), "no {name}: {}", out.explain());
    }
    let exact = lines.iter().filter(|l| l.starts_with("EXACT ")).count();
    assert_eq!(exact, 6, "{}", out.explain());
    assert!(!out.out.contains("DIFFERENT"), "{}", out.explain());
    assert!(!out.out.contains("STILL_"), "{}", out.explain());
    assert!(lines.contains(&"DONE"), "{}", out.explain());
}

/// A host emulator, and the guid of one of its plain extractors.
fn host_account() -> (Emu, String) {
    let emu = Emu::demo();
    let g = plain_extractor_list(&emu)[0]["guid"]
        .as_str()
        .unwrap()
        .to_owned();
    (emu, g)
}

/// Issue 28, item 2: the kernel
/// revalidates a directory or link only when its mtime, ctime or size
/// change, so the NFS adapter must change them (fs/changes.rs) for a new
/// run to show. `touch start` is one POST; the run must show in
/// `extractors/X/crawlruns/` and `latest` within two poll intervals plus
/// actimeo (2 + 2 + 2 s here; 20 s allowed).
#[test]
fn a_new_run_shows_in_crawlruns_and_latest() {
    let Some(g) = Guest::get() else { return };
    let (emu, x) = host_account();
    emu.clear_requests();
    let suite = format!(
        r#"d=extractors/{x}
n0=$(ls $d/crawlruns | wc -l); l0=$(readlink $d/latest)
echo RUNS_BEFORE=$n0
touch $d/start
t=0; seen=
while [ $t -lt 40 ]; do
    sleep 0.5; t=$((t+1))
    n=$(ls $d/crawlruns | wc -l); l=$(readlink $d/latest)
    if [ -z "$seen" ] && [ "$n" -gt "$n0" ]; then echo LISTED_AFTER_HALF_SECONDS=$t; seen=1; fi
    if [ "$l" != "$l0" ]; then echo LATEST_AFTER_HALF_SECONDS=$t; break; fi
done
echo RUNS_AFTER=$(ls $d/crawlruns | wc -l)"#
    );
    let api = GuestApi::Host {
        url: &emu.url,
        key: KEY,
    };
    let out = nfs_suite(g, api, "", &suite).wait().ok();
    assert_eq!(
        emu.count("POST", &format!("/extractors/{x}/start")),
        1,
        "{:?}",
        mutating(&emu)
    );
    assert!(
        out.value("LISTED_AFTER_HALF_SECONDS").is_some(),
        "never listed: {}",
        out.explain()
    );
    assert!(
        out.value("LATEST_AFTER_HALF_SECONDS").is_some(),
        "latest unchanged: {}",
        out.explain()
    );
}

/// Issue 28, item 3: a slow writer,
/// `(sleep 6; echo URL) > inputs`, must be one PUT and never leave an
/// empty list on the API (the host watches the API while it writes).
#[test]
fn a_slow_writer_is_one_put_and_never_an_empty_list() {
    let Some(g) = Guest::get() else { return };
    let (emu, x) = host_account();
    emu.clear_requests();
    let suite = format!(
        "echo WRITING\n(sleep 6; echo https://slow.example/) > extractors/{x}/inputs\necho WRITTEN"
    );
    let api = GuestApi::Host {
        url: &emu.url,
        key: KEY,
    };
    let run = nfs_suite(g, api, "", &suite);
    let mut empty_seen = false;
    if run.wait_for("WRITING", std::time::Duration::from_secs(120)) {
        while !run.out_so_far().contains("WRITTEN") && !run.out_so_far().contains("EXIT") {
            empty_seen |= api_urls(&emu, &x).is_empty();
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    let out = run.wait().ok();
    assert_eq!(api_urls(&emu, &x), vec!["https://slow.example/".to_owned()]);
    assert!(!empty_seen, "the API held an empty list: {}", out.explain());
    assert_eq!(puts(&emu, &x), 1, "{:?}\n{}", mutating(&emu), out.explain());
}

/// Issue 27 over the kernel client, the whole user path in the guest: the
/// events log grows through an NFS mount's attribute cache, so `cat` ends
/// with the run's lines, busybox `tail -f` follows it, `importfs watch`
/// runs its command once for the run and ends with 0 at `importfs
/// unmount`; `grep -r` and `cp -r` of the whole mount end.
#[test]
fn the_events_log_reaches_readers_and_every_file_reads_to_its_end() {
    let Some(g) = Guest::get() else { return };
    let emu = Emu::start(importfs::emulator::Config {
        run_seconds: 1.0,
        ..importfs::emulator::Config::default()
    });
    let x = plain_extractor_list(&emu)[0]["guid"]
        .as_str()
        .unwrap()
        .to_owned();
    let api = GuestApi::Host {
        url: &emu.url,
        key: KEY,
    };
    let suite = format!(
        r#"(cd / && exec importfs watch /mnt/i --event crawlrun.finished -- sh -c 'echo "RAN $IMPORTFS_ID"') > /tmp/ran 2>/tmp/watch.err &
wpid=$!
tail -f .importfs/events > /tmp/tailed &
tpid=$!
sleep 1
touch extractors/{x}/start
t=0
until grep -q crawlrun.finished .importfs/events; do
    t=$((t+1)); [ $t -lt 60 ] || {{ echo NO_EVENT; break; }}; sleep 0.5
done
sleep 3
echo CAT_FINISHED=$(timeout 20 cat .importfs/events | grep -c crawlrun.finished)
echo TAIL_FINISHED=$(grep -c crawlrun.finished /tmp/tailed)
kill $tpid
rc=0; timeout 120 grep -r -l crawlrun.finished . > /tmp/grep.out 2>/dev/null || rc=$?
echo GREP_RC=$rc; echo GREP_FOUND=$(grep -c events /tmp/grep.out)
rc=0; timeout 120 cp -r . /tmp/copy 2>/dev/null || rc=$?
echo CP_RC=$rc; echo COPIED_FINISHED=$(grep -c crawlrun.finished /tmp/copy/.importfs/events)
cd /
importfs unmount /mnt/i || echo UNMOUNT_FAILED
rc=0; timeout 20 sh -c "while kill -0 $wpid 2>/dev/null; do sleep 0.2; done" || echo WATCH_STAYED
wait $wpid || rc=$?
echo WATCH_RC=$rc
echo WATCH_RAN=$(grep -c RAN /tmp/ran)
cat /tmp/watch.err
"#
    );
    let script = format!("{}cd /mnt/i\n{suite}", common::qemu::mount_script(api, ""));
    let out = g.script(&script).importfs().spawn().wait().ok();
    let v = |k: &str| {
        out.value(k)
            .unwrap_or_else(|| panic!("no {k}: {}", out.explain()))
    };
    assert!(!out.out.contains("NO_EVENT"), "{}", out.explain());
    assert_eq!(v("CAT_FINISHED"), "1", "{}", out.explain());
    assert_eq!(v("TAIL_FINISHED"), "1", "tail -f saw it: {}", out.explain());
    assert_ne!(v("GREP_RC"), "124", "grep -r ended: {}", out.explain());
    assert_eq!(v("GREP_FOUND"), "1", "{}", out.explain());
    assert_ne!(v("CP_RC"), "124", "cp -r ended: {}", out.explain());
    assert_eq!(v("COPIED_FINISHED"), "1", "{}", out.explain());
    assert!(!out.out.contains("UNMOUNT_FAILED"), "{}", out.explain());
    assert!(!out.out.contains("WATCH_STAYED"), "{}", out.explain());
    assert_eq!(v("WATCH_RC"), "0", "{}", out.explain());
    assert_eq!(v("WATCH_RAN"), "1", "once: {}", out.explain());
}

/// A read-only mount through the kernel client refuses every write and
/// makes no mutating API call; reading still works.
#[test]
fn a_read_only_mount_refuses_writes_and_calls_nothing() {
    let Some(g) = Guest::get() else { return };
    let (emu, x) = host_account();
    emu.clear_requests();
    let suite = format!(
        r#"set +e
echo https://ro.example/ >> extractors/{x}/inputs; echo APPEND=$?
touch extractors/{x}/start; echo TOUCH=$?
( : > extractors/{x}/inputs ); echo TRUNCATE=$?
head -c 1 user.json >/dev/null; echo READ=$?
sleep 5
set -e"#
    );
    let api = GuestApi::Host {
        url: &emu.url,
        key: KEY,
    };
    let out = nfs_suite(g, api, "--read-only", &suite).wait().ok();
    for k in ["APPEND", "TOUCH", "TRUNCATE"] {
        assert_ne!(out.value(k), Some("0"), "{k} succeeded: {}", out.explain());
    }
    assert_eq!(out.value("READ"), Some("0"), "{}", out.explain());
    assert!(
        out.out.contains(" ro,") || out.out.contains("Read-only"),
        "{}",
        out.explain()
    );
    assert_eq!(
        mutating(&emu),
        Vec::<serde_json::Value>::new(),
        "{}",
        out.explain()
    );
}
