//! The text of an `inputs` file: one absolute http(s) URL a line.
//!
//! The API keeps an extractor's inputs as JSON in one of two shapes
//! (`api::Inputs` and its dialect); the mount shows and takes plain lines,
//! which is what `cat`, `>>`, `sed -i` and editors work with. What is
//! subtle: validation is by line and names the bad line in its error, and it
//! can check a part of the file that starts at any line, so that `write.rs`
//! checks complete lines as they are written (a bad URL fails the write(2)
//! itself: shells ignore close() errors of `>`).

use crate::api::models::Inputs;
use crate::fs::FsError;

/// The `inputs` file: one URL a line, ending with a newline (empty when none).
pub fn inputs_text(inputs: &Inputs) -> String {
    let mut s = String::new();
    for u in &inputs.urls {
        s.push_str(u);
        s.push('\n');
    }
    s
}

/// The largest `inputs` (and `credentials`) accepted: the API's body limit.
pub const MAX_INPUTS: usize = 1 << 20;

/// Check the text of `inputs` and turn it into URLs, naming the bad line.
pub fn validate_inputs(bytes: &[u8]) -> Result<Vec<String>, FsError> {
    validate_lines(bytes, 1)
}

/// [`validate_inputs`] for a part of the file that starts at line `first_line`.
pub(super) fn validate_lines(bytes: &[u8], first_line: usize) -> Result<Vec<String>, FsError> {
    if bytes.len() > MAX_INPUTS {
        return Err(FsError::with(
            libc::EFBIG,
            format!("inputs refused: {} bytes, larger than 1 MiB", bytes.len()),
        ));
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(FsError::with(
            libc::EINVAL,
            "inputs refused: not UTF-8 text",
        ));
    };
    let mut urls = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let ok = reqwest::Url::parse(line)
            .map(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some_and(|h| !h.is_empty())
            })
            .unwrap_or(false);
        if !ok {
            let shown: String = line.chars().take(200).collect();
            return Err(FsError::with(
                libc::EINVAL,
                format!(
                    "inputs refused: line {} is not an absolute http(s) URL: {shown:?}",
                    first_line + i
                ),
            ));
        }
        urls.push(line.to_owned());
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_text_is_one_url_a_line() {
        let i = Inputs {
            urls: vec!["https://a.example/".into(), "https://b.example/".into()],
            dialect: crate::api::models::InputsDialect::Object,
        };
        assert_eq!(inputs_text(&i), "https://a.example/\nhttps://b.example/\n");
        assert_eq!(validate_inputs(inputs_text(&i).as_bytes()).unwrap(), i.urls);
    }

    #[test]
    fn inputs_validation() {
        assert_eq!(
            validate_inputs(b"https://a.example/x\n\n  http://b.example/?q=1  \n").unwrap(),
            vec!["https://a.example/x", "http://b.example/?q=1"]
        );
        assert!(validate_inputs(b"").unwrap().is_empty());
        for bad in [
            &b"ftp://a.example/"[..],
            b"not a url",
            b"/relative/path",
            b"https://",
            b"\xff\xfe",
        ] {
            assert!(validate_inputs(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            validate_inputs(&vec![b'a'; MAX_INPUTS + 1])
                .unwrap_err()
                .errno,
            libc::EFBIG
        );
    }
}
