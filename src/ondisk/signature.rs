//! Root-hash signatures checked in userspace, as systemd's `validate_signature_userspace()`
//! (`src/shared/dissect-image.c`) does when the kernel cannot check them (Flatcar's kernel
//! lacks `CONFIG_DM_VERITY_VERIFY_ROOTHASH_SIG`): a detached PKCS#7 over the lowercase hex
//! root hash, `PKCS7_verify(p7, certs, NULL, hex, NOINTERN|NOVERIFY)` against the PEM
//! certificates in `verity.d`. Pure Rust (RustCrypto), so the static binary needs no OpenSSL.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
use x509_cert::der::asn1::ObjectIdentifier as Oid;
use x509_cert::der::{Decode, Encode};
use x509_cert::Certificate;

use crate::ondisk::bytes::{hex, ReadAt};
use crate::ondisk::verity::parse_roothash;

/// systemd refuses signature partitions larger than this (`acquire_sig_for_roothash()`).
pub const MAX_SIG_PARTITION: usize = 4 * 1024 * 1024;

const OID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
const OID_MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
const OID_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
const OID_EC: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
const OID_P256: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: Oid = Oid::new_unwrap("1.3.132.0.34");

/// Parse the content of a DDI `*-verity-sig` partition: NUL-padded JSON with `rootHash`
/// (hex) and `signature` (base64 DER PKCS#7). Returns the lowercase hex root hash and the DER.
pub fn parse_verity_sig(bytes: &[u8]) -> Result<(String, Vec<u8>)> {
    if bytes.len() > MAX_SIG_PARTITION {
        bail!(
            "verity signature data is {} bytes, larger than 4 MiB: refusing",
            bytes.len()
        );
    }
    let json = match bytes.iter().position(|&b| b == 0) {
        Some(nul) => {
            // Like systemd: once padding starts, everything after it must be padding.
            if bytes[nul..].iter().any(|&b| b != 0) {
                bail!("verity signature data contains an embedded NUL byte (at {nul}) followed by more data");
            }
            &bytes[..nul]
        }
        None => bytes,
    };
    let v: serde_json::Value =
        serde_json::from_slice(json).context("verity signature data is not valid JSON")?;
    let field = |name: &str| -> Result<&str> {
        match v.get(name) {
            None => bail!("verity signature JSON lacks the '{name}' field"),
            Some(x) => x
                .as_str()
                .with_context(|| format!("verity signature JSON field '{name}' is not a string")),
        }
    };
    let roothash = parse_roothash(field("rootHash")?)
        .context("verity signature JSON has an invalid 'rootHash'")?;
    let sig = decode_base64(field("signature")?)
        .context("verity signature JSON has an invalid 'signature'")?;
    if sig.is_empty() {
        bail!("verity signature JSON has an empty 'signature'");
    }
    Ok((hex(&roothash), sig))
}

/// Read a `*-verity-sig` partition of `size` bytes at byte `offset` of a disk of `disk_size`
/// bytes and [`parse_verity_sig`] it. One over systemd's 4 MiB or ending beyond the disk is
/// refused before anything is allocated or read.
pub fn read_verity_sig(
    read_at: ReadAt<'_>,
    offset: u64,
    size: u64,
    disk_size: u64,
) -> Result<(String, Vec<u8>)> {
    if size > MAX_SIG_PARTITION as u64 {
        bail!("verity signature partition is {size} bytes, more than the 4 MiB systemd accepts: refusing");
    }
    if offset.checked_add(size).is_none_or(|end| end > disk_size) {
        bail!("verity signature partition (bytes {offset}+{size}) ends beyond the end of the disk ({disk_size} bytes): refusing");
    }
    // Bounded by MAX_SIG_PARTITION above.
    let mut buf = vec![0u8; size as usize];
    read_at(offset, &mut buf)
        .with_context(|| format!("reading the verity signature partition at byte {offset}"))?;
    parse_verity_sig(&buf)
}

/// Standard base64, whitespace ignored (systemd's `unbase64mem()` skips it), padding optional.
fn decode_base64(text: &str) -> Result<Vec<u8>> {
    use base64ct::{Base64, Base64Unpadded, Encoding};
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let decoded = if compact.len().is_multiple_of(4) {
        Base64::decode_vec(&compact)
    } else {
        Base64Unpadded::decode_vec(&compact)
    };
    decoded.map_err(|e| anyhow::anyhow!("not valid base64 ({e})"))
}

/// The first `CERTIFICATE` PEM block of a file, as DER (`PEM_read_X509()` skips other blocks).
pub fn first_pem_certificate(text: &[u8]) -> Result<Vec<u8>> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    let mut rest = text;
    while let Some(start) = find(rest, BEGIN) {
        let block = &rest[start..];
        let end = find(block, b"-----END ")
            .and_then(|e| find(&block[e + 9..], b"-----").map(|t| e + 9 + t + 5))
            .context("PEM block without an END line")?;
        let (label, der) = x509_cert::der::pem::decode_vec(&block[..end])
            .map_err(|e| anyhow::anyhow!("invalid PEM block ({e})"))?;
        if label == "CERTIFICATE" || label == "X509 CERTIFICATE" {
            Certificate::from_der(&der)
                .map_err(|e| anyhow::anyhow!("invalid X.509 certificate ({e})"))?;
            return Ok(der);
        }
        rest = &block[end..];
    }
    bail!("no PEM CERTIFICATE block found")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[derive(Clone, Copy, Debug)]
enum DigestAlg {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl DigestAlg {
    fn from_oid(oid: &Oid) -> Result<Self> {
        Ok(match oid.to_string().as_str() {
            "2.16.840.1.101.3.4.2.4" => DigestAlg::Sha224,
            "2.16.840.1.101.3.4.2.1" => DigestAlg::Sha256,
            "2.16.840.1.101.3.4.2.2" => DigestAlg::Sha384,
            "2.16.840.1.101.3.4.2.3" => DigestAlg::Sha512,
            other => bail!("unsupported digest algorithm {other} in the signature (SHA-224/256/384/512 are supported)"),
        })
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            DigestAlg::Sha224 => Sha224::digest(data).to_vec(),
            DigestAlg::Sha256 => Sha256::digest(data).to_vec(),
            DigestAlg::Sha384 => Sha384::digest(data).to_vec(),
            DigestAlg::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn pkcs1v15(self) -> rsa::Pkcs1v15Sign {
        match self {
            DigestAlg::Sha224 => rsa::Pkcs1v15Sign::new::<Sha224>(),
            DigestAlg::Sha256 => rsa::Pkcs1v15Sign::new::<Sha256>(),
            DigestAlg::Sha384 => rsa::Pkcs1v15Sign::new::<Sha384>(),
            DigestAlg::Sha512 => rsa::Pkcs1v15Sign::new::<Sha512>(),
        }
    }
}

/// Check `signature` over a message whose digest is `hashed`, with the certificate's key.
fn verify_with_key(
    cert: &Certificate,
    alg: DigestAlg,
    hashed: &[u8],
    signature: &[u8],
    sig_oid: &Oid,
) -> Result<()> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    if *sig_oid == OID_RSA_PSS {
        bail!("RSASSA-PSS signatures are not supported (PKCS#1 v1.5 and ECDSA are)");
    }
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let key_bytes = spki.subject_public_key.raw_bytes();
    if spki.algorithm.oid == OID_RSA {
        use rsa::pkcs1::DecodeRsaPublicKey;
        let key = rsa::RsaPublicKey::from_pkcs1_der(key_bytes)
            .context("certificate has an invalid RSA public key")?;
        key.verify(alg.pkcs1v15(), hashed, signature)
            .map_err(|_| anyhow::anyhow!("RSA signature does not verify"))
    } else if spki.algorithm.oid == OID_EC {
        let curve: Oid = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as().ok())
            .context("EC certificate without a named curve")?;
        let bad = |_| anyhow::anyhow!("ECDSA signature does not verify");
        if curve == OID_P256 {
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(key_bytes)
                .context("invalid P-256 public key")?;
            let sig =
                p256::ecdsa::Signature::from_der(signature).context("malformed ECDSA signature")?;
            key.verify_prehash(hashed, &sig).map_err(bad)
        } else if curve == OID_P384 {
            let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(key_bytes)
                .context("invalid P-384 public key")?;
            let sig =
                p384::ecdsa::Signature::from_der(signature).context("malformed ECDSA signature")?;
            key.verify_prehash(hashed, &sig).map_err(bad)
        } else {
            bail!("unsupported EC curve {curve} (P-256 and P-384 are supported)")
        }
    } else {
        bail!(
            "unsupported public key algorithm {} in the certificate (RSA and EC are supported)",
            spki.algorithm.oid
        )
    }
}

/// `PKCS7_signatureVerify()` for one signer: with signed attributes, their `messageDigest`
/// must match the content and the signature covers their DER (as a SET); without, the
/// signature covers the content itself.
fn verify_signer(si: &SignerInfo, cert: &Certificate, content: &[u8]) -> Result<()> {
    let alg = DigestAlg::from_oid(&si.digest_alg.oid)?;
    let content_digest = alg.digest(content);
    let hashed = match &si.signed_attrs {
        None => content_digest,
        Some(attrs) => {
            let md = attrs
                .iter()
                .find(|a| a.oid == OID_MESSAGE_DIGEST)
                .and_then(|a| a.values.get(0))
                .context("signed attributes lack the messageDigest attribute")?;
            let md = md
                .decode_as::<x509_cert::der::asn1::OctetString>()
                .map_err(|e| {
                    anyhow::anyhow!("messageDigest attribute is not an OCTET STRING ({e})")
                })?;
            if md.as_bytes() != content_digest.as_slice() {
                bail!("the signed messageDigest does not match the root hash (the signature is for a different root hash)");
            }
            let der = attrs
                .to_der()
                .map_err(|e| anyhow::anyhow!("re-encoding signed attributes ({e})"))?;
            alg.digest(&der)
        }
    };
    verify_with_key(
        cert,
        alg,
        &hashed,
        si.signature.as_bytes(),
        &si.signature_algorithm.oid,
    )
}

fn describe(iasn: &IssuerAndSerialNumber) -> String {
    format!(
        "issuer '{}', serial {}",
        iasn.issuer,
        hex(iasn.serial_number.as_bytes())
    )
}

/// Verify a detached PKCS#7 signature over the lowercase hex root hash against `trusted`
/// certificates, with OpenSSL's `PKCS7_NOINTERN|PKCS7_NOVERIFY` semantics: each signer's
/// certificate must be one of `trusted` (certificates inside the message are not used),
/// no chain or validity check, every signer must verify. Returns the first signer's cert path.
pub fn verify_roothash_signature(
    roothash_hex: &str,
    sig_der: &[u8],
    trusted: &[(PathBuf, Vec<u8>)],
) -> Result<PathBuf> {
    let content = roothash_hex.trim().to_ascii_lowercase();
    if sig_der.is_empty() {
        bail!("the root hash signature is empty");
    }
    if trusted.is_empty() {
        bail!(
            "no trusted certificates: no *.crt in /etc, /run, /usr/local/lib or /usr/lib verity.d"
        );
    }
    let ci = ContentInfo::from_der(sig_der).map_err(|e| {
        anyhow::anyhow!("the root hash signature is not a DER PKCS#7 message ({e})")
    })?;
    if ci.content_type != OID_SIGNED_DATA {
        bail!(
            "the root hash signature is a PKCS#7 {} message, not signedData",
            ci.content_type
        );
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| anyhow::anyhow!("the root hash signature has a malformed SignedData ({e})"))?;
    // OpenSSL: PKCS7_R_CONTENT_AND_DATA_PRESENT when the message embeds its own content.
    if sd.encap_content_info.econtent.is_some() {
        bail!("the root hash signature embeds its content; a detached signature is required");
    }
    let signers = sd.signer_infos.0.as_slice();
    if signers.is_empty() {
        bail!("the root hash signature has no signers");
    }
    let certs: Vec<(&PathBuf, Certificate)> = trusted
        .iter()
        .filter_map(|(p, der)| match Certificate::from_der(der) {
            Ok(c) => Some((p, c)),
            Err(e) => {
                tracing::warn!(
                    "ignoring unparseable trusted certificate {}: {e}",
                    p.display()
                );
                None
            }
        })
        .collect();
    let mut first = None;
    for si in signers {
        let SignerIdentifier::IssuerAndSerialNumber(iasn) = &si.sid else {
            bail!("the signer is identified by subject key identifier, which PKCS#7 (and systemd) do not support");
        };
        let (path, cert) = certs
            .iter()
            .find(|(_, c)| {
                c.tbs_certificate.issuer == iasn.issuer && c.tbs_certificate.serial_number == iasn.serial_number
            })
            .with_context(|| format!("the root hash is signed by a certificate that is not trusted ({}); not found in verity.d", describe(iasn)))?;
        verify_signer(si, cert, content.as_bytes()).with_context(|| {
            format!(
                "signature by {} does not match root hash {content}",
                path.display()
            )
        })?;
        first.get_or_insert_with(|| (*path).clone());
    }
    first.context("the root hash signature has no signers")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RH: &str = "aea69771e07dcdaf5667b114ee6caaed6d2df19518a4c6e1672c868a39128be7";

    fn err(bytes: &[u8]) -> String {
        format!("{:#}", parse_verity_sig(bytes).unwrap_err())
    }

    #[test]
    fn verity_sig_json() {
        let json = format!(
            r#"{{"rootHash":"{}","certificateFingerprint":"ab","signature":"AQID\nBA=="}}"#,
            RH.to_uppercase()
        );
        let mut padded = json.clone().into_bytes();
        padded.resize(16384, 0);
        assert_eq!(
            parse_verity_sig(&padded).unwrap(),
            (RH.to_string(), vec![1, 2, 3, 4])
        );
        assert_eq!(
            parse_verity_sig(json.as_bytes()).unwrap().1,
            vec![1, 2, 3, 4]
        );
        padded[9000] = b'x';
        assert!(err(&padded).contains("embedded NUL"), "{}", err(&padded));
        assert!(err(b"{not json").contains("not valid JSON"));
        assert!(err(br#"{"signature":"AQ=="}"#).contains("lacks the 'rootHash'"));
        assert!(
            err(format!(r#"{{"rootHash":"{RH}"}}"#).as_bytes()).contains("lacks the 'signature'")
        );
        assert!(
            err(format!(r#"{{"rootHash":"{RH}","signature":"!!!!"}}"#).as_bytes())
                .contains("base64")
        );
        assert!(
            err(format!(r#"{{"rootHash":"{RH}","signature":""}}"#).as_bytes()).contains("empty")
        );
        assert!(err(br#"{"rootHash":"abc","signature":"AQ=="}"#).contains("odd number"));
        assert!(err(br#"{"rootHash":1,"signature":"AQ=="}"#).contains("not a string"));
        assert!(err(&vec![b' '; MAX_SIG_PARTITION + 1]).contains("larger than 4 MiB"));
    }

    /// The partition size is checked before the buffer exists: the reader fails the test if called.
    #[test]
    fn signature_partition_size_is_bounded_before_reading() {
        let json = format!(r#"{{"rootHash":"{RH}","signature":"AQID"}}"#);
        let mut disk = vec![0u8; 8192];
        disk[4096..4096 + json.len()].copy_from_slice(json.as_bytes());
        let mut read = crate::ondisk::bytes::slice_reader(&disk);
        assert_eq!(
            read_verity_sig(&mut read, 4096, 4096, 8192).unwrap(),
            (RH.to_string(), vec![1, 2, 3])
        );
        let mut never = |_: u64, _: &mut [u8]| -> std::io::Result<()> {
            panic!("nothing may be read for a refused signature partition")
        };
        let mut e = |o, s, d| {
            read_verity_sig(&mut never, o, s, d)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e(0, 4 * 1024 * 1024 + 1, u64::MAX),
            "verity signature partition is 4194305 bytes, more than the 4 MiB systemd accepts: refusing"
        );
        assert_eq!(
            e(8192, 4096, 8192),
            "verity signature partition (bytes 8192+4096) ends beyond the end of the disk (8192 bytes): refusing"
        );
        assert_eq!(
            e(u64::MAX, 1, u64::MAX),
            format!("verity signature partition (bytes {}+1) ends beyond the end of the disk ({} bytes): refusing", u64::MAX, u64::MAX)
        );
    }

    #[test]
    fn garbage_signatures_are_clear_errors() {
        let certs = vec![(PathBuf::from("/x.crt"), vec![0x30, 0x00])];
        let e = format!(
            "{:#}",
            verify_roothash_signature(RH, b"garbage", &certs).unwrap_err()
        );
        assert!(e.contains("not a DER PKCS#7"), "{e}");
        let e = format!(
            "{:#}",
            verify_roothash_signature(RH, b"", &certs).unwrap_err()
        );
        assert!(e.contains("empty"), "{e}");
        let e = format!(
            "{:#}",
            verify_roothash_signature(RH, b"x", &[]).unwrap_err()
        );
        assert!(e.contains("no trusted certificates"), "{e}");
    }

    #[test]
    fn pem_without_certificate() {
        let e = first_pem_certificate(
            b"-----BEGIN PRIVATE KEY-----\nAQID\n-----END PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("no PEM CERTIFICATE"), "{e}");
        assert!(first_pem_certificate(b"hello").is_err());
    }
}
