//! Fuzz the PKCS#7 root-hash signature check and the PEM certificate reader on hostile bytes:
//! the input is split at its first NUL into a signature and a certificate.
#![no_main]

use std::path::PathBuf;

use extmerge::ondisk::signature::{first_pem_certificate, verify_roothash_signature};
use libfuzzer_sys::fuzz_target;

const ROOTHASH: &str = "aea69771e07dcdaf5667b114ee6caaed6d2df19518a4c6e1672c868a39128be7";

fuzz_target!(|data: &[u8]| {
    let (sig, cert) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let _ = first_pem_certificate(data);
    let certs = vec![(PathBuf::from("/fuzz.crt"), cert.to_vec())];
    let _ = verify_roothash_signature(ROOTHASH, sig, &certs);
});
