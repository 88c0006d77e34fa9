//! Initrd policy: the kernel command line, `/var` from it, Flatcar's OEM mount and extension
//! selection, and the steps of each initrd stage.

pub mod cmdline;
pub mod flatcar;
pub mod oem_mount;
pub mod stage;
pub mod var;

use crate::limits;
use anyhow::{bail, Context, Result};

/// The override systemd honours instead of `/proc/cmdline` (tests, containers).
const CMDLINE_ENV: &str = "SYSTEMD_PROC_CMDLINE";

/// True when this process runs in an initrd (the running system's `/etc/initrd-release` exists).
pub fn running_in_initrd() -> bool {
    std::path::Path::new("/etc/initrd-release").exists()
}

/// The kernel command line: `$SYSTEMD_PROC_CMDLINE` if set (systemd's override, for tests and
/// containers), else `/proc/cmdline` (empty if /proc is not mounted). Either is refused when
/// larger than [`limits::CMDLINE`], with an error naming the source and the cap.
pub fn read_kernel_cmdline() -> Result<String> {
    if let Some(value) = std::env::var_os(CMDLINE_ENV) {
        let len = value.len() as u64;
        if len > limits::CMDLINE {
            bail!(
                "${CMDLINE_ENV}: {len} bytes, larger than the {} bytes allowed for a kernel \
                 command line",
                limits::CMDLINE
            );
        }
        return Ok(String::from_utf8_lossy(value.as_encoded_bytes()).into_owned());
    }
    read_cmdline_file(std::path::Path::new("/proc/cmdline"))
}

/// Read a command line file of at most [`limits::CMDLINE`] bytes; absent is empty.
fn read_cmdline_file(path: &std::path::Path) -> Result<String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let bytes = crate::kernel::root::read_bounded(file, limits::CMDLINE)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_line_file_is_read_up_to_the_cap() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("cmdline");
        std::fs::write(&p, "quiet rd.extmerge=0\n").unwrap();
        assert_eq!(read_cmdline_file(&p).unwrap(), "quiet rd.extmerge=0\n");
        assert_eq!(read_cmdline_file(&t.path().join("absent")).unwrap(), "");
        std::fs::write(&p, "x".repeat(limits::CMDLINE as usize + 1)).unwrap();
        assert_eq!(
            format!("{:#}", read_cmdline_file(&p).unwrap_err()),
            format!(
                "reading {}: larger than the 65536 bytes allowed",
                p.display()
            )
        );
        std::fs::write(&p, "x".repeat(limits::CMDLINE as usize)).unwrap();
        assert_eq!(
            read_cmdline_file(&p).unwrap().len(),
            limits::CMDLINE as usize
        );
    }
}
