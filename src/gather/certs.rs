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
    for (_, found) in conffiles::list(root, &VERITY_DIRS, ".crt", conffiles::NonRegular::Skip)? {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    /// Two self-signed P-256 certificates (`openssl req -x509 -newkey ec`); only their parsing
    /// and identity matter here, signatures are checked in tests/verity_parsers.rs.
    const CERT_A: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBijCCATGgAwIBAgIUS8jvWeJCXftUKwMvheZZ6YSRoKcwCgYIKoZIzj0EAwIw\n\
GjEYMBYGA1UEAwwPZXh0bWVyZ2UgdGVzdCBhMCAXDTI2MTIwNzE1MzcxOVoYDzIx\n\
MjYxMTEzMTUzNzE5WjAaMRgwFgYDVQQDDA9leHRtZXJnZSB0ZXN0IGEwWTATBgcq\n\
hkjOPQIBBggqhkjOPQMBBwNCAAQ9HVulIH6EXoVppIR+hxSU5aRoXdx+1a18a4rY\n\
8NOhl4g+4xlH19hpDIOpdEbExWtewWXEQjD3zWoNxaJSOHtso1MwUTAdBgNVHQ4E\n\
FgQUm6qa81Y7qnjRsWscLbWIHdS4Y7wwHwYDVR0jBBgwFoAUm6qa81Y7qnjRsWsc\n\
LbWIHdS4Y7wwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiA9aBtP\n\
eGZwk1oVczjFUPXYyFW3YS8DVTLR9wwuPoQatAIgXBrlOMrGDsJ9KoAc2xOBAfIk\n\
hERMdow3bEFD2CZyFls=\n\
-----END CERTIFICATE-----\n";
    const CERT_B: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBizCCATGgAwIBAgIUP1Yy6ed1X4jkQ5/uOqTL+sdOxnQwCgYIKoZIzj0EAwIw\n\
GjEYMBYGA1UEAwwPZXh0bWVyZ2UgdGVzdCBiMCAXDTI2MTIwNzE1MzcxOVoYDzIx\n\
MjYxMTEzMTUzNzE5WjAaMRgwFgYDVQQDDA9leHRtZXJnZSB0ZXN0IGIwWTATBgcq\n\
hkjOPQIBBggqhkjOPQMBBwNCAAQXs/FIrBybS6sngv6BroKzmwasdULzvaz8eeaB\n\
MLlthjafEPq+yyjKOFM88gupxKBu/OjAuTtfwvZCv7mRyYUfo1MwUTAdBgNVHQ4E\n\
FgQUiwy30uQ0RkJqE6Ku78mKXcYRuyswHwYDVR0jBBgwFoAUiwy30uQ0RkJqE6Ku\n\
78mKXcYRuyswDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiB4VGN+\n\
KhOvlYYyBQjCJ+MPxeR/CqbozKQxSXlRthoD7AIhAKBjwYxCTGggc45pk4N31VNN\n\
6M6hBMnxdAVeKzoZ4lXN\n\
-----END CERTIFICATE-----\n";

    fn der(pem: &str) -> Vec<u8> {
        first_pem_certificate(pem.as_bytes()).unwrap()
    }

    fn put(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    /// systemd's conf-files rules over the four verity.d directories: masks by a link to
    /// /dev/null or an empty file, a higher directory overriding a name, links resolved inside
    /// the root, dangling links and files without a certificate passed over, name order.
    #[test]
    fn verity_d_masking_order_and_unusable_files() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        put(r, "usr/lib/verity.d/a.crt", CERT_A);
        put(r, "usr/lib/verity.d/b.crt", CERT_A);
        put(r, "usr/lib/verity.d/c.crt", CERT_A);
        put(r, "usr/local/lib/verity.d/c.crt", CERT_B); // overrides usr/lib
        put(r, "usr/share/keys/e.pem", CERT_B);
        put(r, "run/verity.d/b.crt", ""); // an empty file masks b
        put(r, "etc/verity.d/g.crt", "not a certificate"); // skipped with a warning
        put(r, "etc/verity.d/README", "not a .crt");
        symlink("/dev/null", r.join("etc/verity.d/a.crt")).unwrap(); // masks a
        symlink("/usr/share/keys/e.pem", r.join("etc/verity.d/e.crt")).unwrap(); // inside the root
        symlink("/nowhere.crt", r.join("etc/verity.d/f.crt")).unwrap(); // dangling: ignored
                                                                        // a key and then the certificate in one file: the certificate is found
        let key = "-----BEGIN PRIVATE KEY-----\nAQID\n-----END PRIVATE KEY-----\n";
        put(r, "usr/lib/verity.d/h.crt", &format!("{key}{CERT_A}"));

        let certs = load(&Root::open(r).unwrap()).unwrap();
        let got: Vec<(String, bool)> = certs
            .iter()
            .map(|(p, der_bytes)| {
                let shown = p.strip_prefix(r).unwrap().display().to_string();
                (shown, *der_bytes == der(CERT_A))
            })
            .collect();
        assert_eq!(
            got,
            [
                ("usr/local/lib/verity.d/c.crt".to_string(), false),
                ("usr/share/keys/e.pem".to_string(), false),
                ("usr/lib/verity.d/h.crt".to_string(), true),
            ]
        );
        assert_eq!(certs[0].1, der(CERT_B));

        let empty = tempfile::tempdir().unwrap();
        assert!(load(&Root::open(empty.path()).unwrap()).unwrap().is_empty());
    }
}
