//! systemd's refresh-skip record (the `origin` file of the meta dir), as each generation that
//! reads one writes it: the booted system's stock `systemd-sysext refresh` skips only when the
//! record it computes equals this one field for field (`sd_json_variant_equal()`: a string
//! never equals a number, key order and layout do not matter).
//!
//! Written by `write_origin_file()`/`store_info_in_meta()`, built in `merge_subprocess()`
//! (`src/sysext/sysext.c`, v260+ and Flatcar's 258 backport; facts sheet §2, §3.1).

use crate::decide::mutable::{hierarchy_component, MutableMode};
use crate::decide::skip_record::SkipRecord;
use crate::ondisk::bytes::hex;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// systemd's weak identifiers of an image (what the record holds when there is no verity hash),
/// as `image_make()` (`src/shared/discover-image.c`) records them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeakId {
    /// Unique mount ID of the mount the image lives on (legacy ID on old kernels).
    pub on_mount_id: u64,
    /// `name_to_handle_at(AT_HANDLE_FID)` handle type and bytes, if the file system has handles.
    pub file_handle: Option<(i32, Vec<u8>)>,
    /// Inode number, used by systemd only when there is no file handle.
    pub inode: u64,
    /// Birth time in µs, 0 when there is none (block devices record 0).
    pub crtime: u64,
    /// Modification time in µs: 0 for plain directories and block devices, a btrfs
    /// subvolume's ctime.
    pub mtime: u64,
}

/// Per-extension identity in the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginId {
    /// The dm-verity root hash (systemd then omits the weak identifiers).
    Verity(String),
    /// Mount ID, file handle (or inode), birth and modification time.
    Weak(WeakId),
}

/// What the record is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The configured mutable mode (not the per-hierarchy effective one).
    pub mode: MutableMode,
    /// Hierarchy → resolved mutable dir (root-stripped), in hierarchy order.
    pub mutable_dirs: Vec<(String, String)>,
    /// `$SYSTEMD_*_OVERLAYFS_MOUNT_OPTIONS` when set and non-empty.
    pub mount_options: Option<String>,
    /// Accepted extensions: name, root-stripped resolved path, identity.
    pub extensions: Vec<(String, String, OriginId)>,
}

/// The mutable mode as Flatcar's 258 backport records it: `arg_mutable` as a number, in the
/// order of 258's `typedef enum MutableMode` (facts sheet §2.2).
pub fn mode_number_258(mode: MutableMode) -> u64 {
    match mode {
        MutableMode::No => 0,
        MutableMode::Yes => 1,
        MutableMode::Auto => 2,
        MutableMode::Import => 3,
        MutableMode::Ephemeral => 4,
        MutableMode::EphemeralImport => 5,
    }
}

/// The record's input for the accepted extensions. `mutable_dirs` are the resolved in-root
/// mutable dirs per hierarchy; `ids` the identities taken before the namespace switch.
pub fn origin_of(
    mode: MutableMode,
    hierarchies: &[PathBuf],
    mount_options: Option<&str>,
    accepted: &[(String, PathBuf)],
    mutable_dirs: &[(PathBuf, PathBuf)],
    ids: &BTreeMap<String, OriginId>,
) -> Result<Origin, String> {
    let mut extensions = Vec::new();
    for (name, path) in accepted {
        let id = ids.get(name).cloned().ok_or_else(|| {
            format!("no identity recorded for extension '{name}' (it could not be found from the caller's namespace)")
        })?;
        extensions.push((name.clone(), path.display().to_string(), id));
    }
    // systemd quirk, copied so its refresh compares equal: for the ephemeral modes the record
    // names `/run/systemd/sysext/<hierarchy>` for every hierarchy, not the tmpfs actually used
    // (`resolve_mutable_directory()` ignores the root for them; the same in 258 and 260+).
    let mutable_dirs = if matches!(mode, MutableMode::Ephemeral | MutableMode::EphemeralImport) {
        hierarchies
            .iter()
            .map(|h| {
                let dir = format!("/run/systemd/sysext/{}", hierarchy_component(h));
                (h.display().to_string(), dir)
            })
            .collect()
    } else {
        mutable_dirs
            .iter()
            .map(|(h, d)| (h.display().to_string(), d.display().to_string()))
            .collect()
    };
    Ok(Origin {
        mode,
        mutable_dirs,
        mount_options: mount_options.map(str::to_string),
        extensions,
    })
}

/// A tiny ordered JSON tree, so the output can follow systemd's key order and layout.
enum J {
    S(String),
    U(u64),
    I(i64),
    O(Vec<(String, J)>),
}

fn escape(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// sd_json's SD_JSON_FORMAT_PRETTY: tab indentation and `"key" : value`.
fn render(j: &J, indent: usize, out: &mut String) {
    match j {
        J::S(s) => escape(s, out),
        J::U(u) => out.push_str(&u.to_string()),
        J::I(i) => out.push_str(&i.to_string()),
        J::O(members) if members.is_empty() => out.push_str("{}"),
        J::O(members) => {
            out.push_str("{\n");
            for (i, (k, v)) in members.iter().enumerate() {
                out.push_str(&"\t".repeat(indent + 1));
                escape(k, out);
                out.push_str(" : ");
                render(v, indent + 1, out);
                if i + 1 < members.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&"\t".repeat(indent));
            out.push('}');
        }
    }
}

/// One extension's entry: the path, then the root hash or the weak identifiers.
fn entry(path: &str, id: &OriginId) -> J {
    let mut e = vec![("path".to_string(), J::S(path.to_string()))];
    match id {
        OriginId::Verity(h) => e.push(("verityHash".into(), J::S(h.clone()))),
        OriginId::Weak(w) => {
            e.push(("onMountId".into(), J::U(w.on_mount_id)));
            match &w.file_handle {
                Some((ty, bytes)) => e.push((
                    "fileHandle".into(),
                    J::O(vec![
                        ("type".into(), J::I(i64::from(*ty))),
                        ("handle".into(), J::S(hex(bytes))),
                    ]),
                )),
                None => e.push(("inode".into(), J::U(w.inode))),
            }
            e.push(("crtime".into(), J::U(w.crtime)));
            e.push(("mtime".into(), J::U(w.mtime)));
        }
    }
    J::O(e)
}

impl Origin {
    /// The `origin` file's text as `format`'s systemd writes it (pretty JSON plus a newline);
    /// `None` for a systemd without skip logic, which writes no such file.
    pub fn to_json_text(&self, format: SkipRecord) -> Option<String> {
        let mode = match format {
            SkipRecord::NoSkipLogic => return None,
            SkipRecord::Systemd258 => J::U(mode_number_258(self.mode)),
            SkipRecord::Systemd260 => J::S(self.mode.as_str().to_string()),
        };
        let mut mutable = vec![("mode".to_string(), mode)];
        if !self.mutable_dirs.is_empty() {
            let dirs = self.mutable_dirs.iter();
            let dirs = dirs.map(|(h, d)| (h.clone(), J::S(d.clone()))).collect();
            mutable.push(("mutableDirs".into(), J::O(dirs)));
        }
        let mut top = vec![("mutable".to_string(), J::O(mutable))];
        // 258 has no overlay mount option variable, so its record has no such key.
        if let (Some(o), SkipRecord::Systemd260) = (&self.mount_options, format) {
            top.push(("mountOptions".into(), J::S(o.clone())));
        }
        if !self.extensions.is_empty() {
            let exts = self.extensions.iter();
            let exts = exts.map(|(n, p, id)| (n.clone(), entry(p, id))).collect();
            top.push(("extensions".into(), J::O(exts)));
        }
        let mut out = String::new();
        render(&J::O(top), 0, &mut out);
        out.push('\n');
        Some(out)
    }
}

#[cfg(test)]
mod tests;
