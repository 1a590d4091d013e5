//! One line of the mount table, and Linux's `/proc/self/mountinfo` parsed
//! into them (pure, so it is tested on every OS).
//!
//! Subtle: mountinfo escapes space, tab, newline and backslash in paths as
//! octal (`\040`, `\011`, `\012`, `\134`), and paths are bytes, not UTF-8:
//! they are decoded to an `OsString` byte for byte, never lossily, or a
//! hostile mountpoint name could compare equal to another path.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// A mounted filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Where it is mounted.
    pub point: PathBuf,
    /// Its type: `fuse.importfs` on Linux, `macfuse` on macOS, `ext4`, ...
    pub fstype: String,
    /// What was mounted (the `fsname` of a FUSE mount).
    pub source: String,
    /// Which mount this is, unique among the mounts of the moment: the
    /// device (`major:minor`) on Linux, the `f_fsid` on macOS. A new mount
    /// at the same path has another.
    pub id: String,
}

impl MountEntry {
    /// Is this an importfs mount? Linux shows the FUSE subtype in the type
    /// (`fuse.importfs`); macFUSE has no subtype, so there it is the fsname;
    /// an NFS mount of ours is of the loopback export `/importfs`.
    pub fn is_importfs(&self) -> bool {
        let fuse = ["fuse", "macfuse", "osxfuse"]
            .iter()
            .any(|t| self.fstype.starts_with(t));
        if fuse {
            return self.fstype.contains("importfs") || self.source == "importfs";
        }
        self.is_nfs()
            && [
                "127.0.0.1:/importfs",
                "localhost:/importfs",
                "[::1]:/importfs",
            ]
            .contains(&self.source.as_str())
    }

    /// Is this an NFS mount?
    pub fn is_nfs(&self) -> bool {
        self.fstype == "nfs" || self.fstype == "nfs3"
    }
}

/// Decode mountinfo's octal escapes (`\040` for a space, ...) into the
/// path's bytes.
pub(super) fn unescape(field: &str) -> OsString {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3');
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    OsString::from_vec(out)
}

/// Parse `/proc/self/mountinfo` (proc(5)): `ID PARENT MAJOR:MINOR ROOT POINT
/// OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER_OPTIONS`. Lines that do not
/// have that shape are skipped.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(super) fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields.iter().skip(6).position(|f| *f == "-")? + 6;
            let (dev, point) = (fields.get(2)?, fields.get(4)?);
            let (fstype, source) = (fields.get(sep + 1)?, fields.get(sep + 2)?);
            Some(MountEntry {
                point: PathBuf::from(unescape(point)),
                fstype: unescape(fstype).to_string_lossy().into_owned(),
                source: unescape(source).to_string_lossy().into_owned(),
                id: (*dev).to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn escapes_decode_to_the_path_bytes() {
        assert_eq!(unescape("/tmp/a\\040b"), "/tmp/a b");
        assert_eq!(unescape("/x\\134y"), "/x\\y");
        assert_eq!(unescape("/t\\011ab\\012nl"), "/t\tab\nnl");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/end\\04"), "/end\\04");
        assert_eq!(unescape("/not\\999octal"), "/not\\999octal");
        // Not UTF-8: kept as bytes, not replaced by U+FFFD.
        assert_eq!(unescape("/bin\\377ary").as_bytes(), b"/bin\xffary");
        assert_ne!(unescape("/a\\377"), unescape("/a\\376"));
    }

    const SAMPLE: &str = "\
22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
36 22 0:31 / /proc rw,nosuid - proc proc rw
51 22 0:52 / /tmp/my\\040mount\\040-\\040x rw,nosuid,nodev master:7 shared:9 - fuse.importfs importfs rw,user_id=0
52 22 0:53 / /tmp/new\\012line\\134back rw - fuse.importfs importfs rw
53 22 0:54 / /tmp/not\\040ours rw - fuse.sshfs host:/ rw
garbage line without the separator
54 22 0:55 / /tmp/short rw -
";

    #[test]
    fn mountinfo_lines_parse_with_hostile_paths() {
        let m = parse_mountinfo(SAMPLE);
        assert_eq!(m.len(), 5, "{m:?}");
        assert_eq!(m[0].point, PathBuf::from("/"));
        assert_eq!((m[0].fstype.as_str(), m[0].id.as_str()), ("ext4", "252:1"));
        // A path with " - " in it does not end the fields early.
        assert_eq!(m[2].point, PathBuf::from("/tmp/my mount - x"));
        assert_eq!(m[2].fstype, "fuse.importfs");
        assert_eq!(m[2].source, "importfs");
        assert_eq!(m[2].id, "0:52");
        assert!(m[2].is_importfs());
        assert_eq!(m[3].point, PathBuf::from("/tmp/new\nline\\back"));
        assert!(m[3].is_importfs());
        assert!(!m[4].is_importfs(), "sshfs is not ours");
        assert!(!m[0].is_importfs());
    }

    #[test]
    fn macfuse_and_nfs_mounts_are_known_by_their_source() {
        let entry = |fstype: &str, source: &str| MountEntry {
            point: "/Volumes/x".into(),
            fstype: fstype.into(),
            source: source.into(),
            id: "1:2".into(),
        };
        assert!(entry("macfuse", "importfs").is_importfs());
        assert!(entry("osxfuse", "importfs").is_importfs());
        assert!(!entry("macfuse", "sshfs").is_importfs());
        assert!(!entry("apfs", "importfs").is_importfs());
        assert!(entry("nfs", "127.0.0.1:/importfs").is_importfs());
        assert!(!entry("nfs", "fileserver:/importfs").is_importfs());
        assert!(!entry("nfs", "127.0.0.1:/home").is_importfs());
    }
}
