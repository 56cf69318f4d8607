//! `multipart/form-data` bodies (RFC 7578): text fields and files, for receivers that
//! take evidence uploaded with the request (`[delivery] media = "attach"`).
//!
//! Hand-written (a few lines) rather than reqwest's `multipart` feature: the body is
//! plain bytes the client builds whole, like its other bodies, without the feature's
//! further dependencies.

/// A form being built.
#[derive(Default)]
pub struct Multipart {
    parts: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A field or file name as a quoted-string of `Content-Disposition` (as browsers
/// write it: `"`, CR and LF percent-encoded).
fn quoted(name: &str) -> String {
    name.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

impl Multipart {
    /// An empty form.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a text field.
    pub fn text(&mut self, name: &str, value: &str) {
        let head = format!(
            "Content-Disposition: form-data; name=\"{}\"\r\n",
            quoted(name)
        );
        self.parts
            .push((head.into_bytes(), value.as_bytes().to_vec()));
    }

    /// Adds a file.
    pub fn file(&mut self, name: &str, filename: &str, content_type: &str, bytes: &[u8]) {
        let head = format!(
            "Content-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {content_type}\r\n",
            quoted(name),
            quoted(filename)
        );
        self.parts.push((head.into_bytes(), bytes.to_vec()));
    }

    /// The `Content-Type` header (with its boundary) and the body. The boundary is one
    /// that occurs in no part.
    pub fn finish(self) -> (String, Vec<u8>) {
        let boundary = loop {
            let b = format!("gridwatch-{:032x}", rand::random::<u128>());
            let found = |p: &[u8]| p.windows(b.len()).any(|w| w == b.as_bytes());
            if !self.parts.iter().any(|(h, v)| found(h) || found(v)) {
                break b;
            }
        };
        let mut body = Vec::new();
        for (head, value) in &self.parts {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            body.extend_from_slice(head);
            body.extend_from_slice(b"\r\n");
            body.extend_from_slice(value);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        (format!("multipart/form-data; boundary={boundary}"), body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Python's own MIME parser reads the form back: every field and the file's bytes.
    #[test]
    fn pythons_email_parser_reads_it_back() {
        let mut m = Multipart::new();
        m.text("service_code", "0505");
        m.text("attribute[gridwatch_case_id]", "7");
        m.text("description", "路口 \"quoted\"\r\nnext line");
        let file: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 256) as u8).collect();
        m.file("media", "7-3.jpg", "image/jpeg", &file);
        let (ctype, body) = m.finish();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("body"), &body).unwrap();
        let got = std::process::Command::new("/usr/bin/python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/parse_multipart.py"
            ))
            .arg(dir.path().join("body"))
            .arg(&ctype)
            .output()
            .unwrap();
        assert!(
            got.status.success(),
            "{}",
            String::from_utf8_lossy(&got.stderr)
        );
        let parts: Vec<serde_json::Value> = serde_json::from_slice(&got.stdout).unwrap();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0]["name"], "service_code");
        assert_eq!(parts[0]["text"], "0505");
        assert_eq!(parts[1]["name"], "attribute[gridwatch_case_id]");
        assert_eq!(parts[2]["text"], "路口 \"quoted\"\r\nnext line");
        assert_eq!(parts[3]["name"], "media");
        assert_eq!(parts[3]["filename"], "7-3.jpg");
        assert_eq!(parts[3]["type"], "image/jpeg");
        use sha2::Digest;
        assert_eq!(
            parts[3]["sha256"],
            format!("{:x}", sha2::Sha256::digest(&file))
        );
    }
}
