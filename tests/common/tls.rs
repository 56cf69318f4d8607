//! A private certificate authority for the TLS tests, made with the `openssl` command
//! (scripts/setup.sh installs it): a CA and one server certificate it signed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files of a private CA and its server certificate.
pub struct Pki {
    /// The CA's certificate (what a client is told to trust).
    pub ca: PathBuf,
    /// The server's certificate, PEM.
    pub cert: PathBuf,
    /// The server's private key, PEM (PKCS#8).
    pub key: PathBuf,
}

/// Makes a CA and a server certificate signed by it for `san` (an OpenSSL
/// subjectAltName list, e.g. `IP:127.0.0.1, DNS:localhost`) in `dir`.
pub fn private_ca(dir: &Path, san: &str) -> Pki {
    std::fs::create_dir_all(dir).unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs (scripts/setup.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=gridwatch test city CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=gridwatch test server",
    ]);
    std::fs::write(dir.join("ext.cnf"), format!("subjectAltName = {san}\n")).unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}
