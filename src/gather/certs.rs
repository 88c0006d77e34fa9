//! The certificates that may vouch for a root-hash signature: `verity.d/*.crt` inside the root,
//! as systemd finds them (`conf_files_list()` over `/etc`, `/run`, `/usr/local/lib`, `/usr/lib`).

use crate::gather::conffiles;
use crate::kernel::root::Root;
use crate::limits;
use crate::ondisk::signature::first_pem_certificate;
use std::path::PathBuf;

/// Where certificates are looked for, highest priority first.
pub const VERITY_DIRS: [&str; 4] = [
    "/etc/verity.d",
    "/run/verity.d",
    "/usr/local/lib/verity.d",
    "/usr/lib/verity.d",
];

/// Load the trusted certificates: `(path as shown, certificate DER)` in file-name order. A name
/// in a higher-priority directory hides the same name below it; a link to `/dev/null` or an
/// empty file masks it; a file without a parseable certificate is skipped with a warning.
pub fn load(root: &Root) -> anyhow::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut certs = Vec::new();
    for (_, found) in conffiles::list(root, &VERITY_DIRS, ".crt")? {
        let shown = root.show(&found.in_root);
        let loaded = root
            .read_optional(&found.in_root, limits::CERTIFICATE)
            .and_then(|text| {
                let text = text.ok_or_else(|| anyhow::anyhow!("vanished while being read"))?;
                first_pem_certificate(&text)
            });
        match loaded {
            Ok(der) => certs.push((shown, der)),
            Err(e) => tracing::warn!("Ignoring verity certificate {}: {e:#}", shown.display()),
        }
    }
    Ok(certs)
}
