//! What an evidence photo is in a case's sequence.

use serde::Serialize;

/// A photo's place in the evidence sequence of a violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhotoRole {
    /// When the subject was first seen where it broke the rule (its stay began).
    FirstSight,
    /// A frame between the first sight and the violation.
    Middle,
    /// The moment of the violation: the frame in which the rule fired.
    Violation,
    /// A later sighting that the open case absorbed (another frame or camera).
    Latest,
    /// The subject cut out of the violation's frame, with a margin.
    Crop,
    /// A camera-fault case's frames.
    Fault,
    /// The subject cut out of the camera's main (high-resolution) stream, taken after
    /// the violation (by the service's detail worker); or, when the main stream could not
    /// be had or did not show the detection's view, the detection stream's close-up
    /// again with a strip saying why.
    Detail,
    /// An MP4 of the sampled frames up to the violation, the violation's last (made by
    /// the service's clip worker after the case opened).
    Clip,
}

impl PhotoRole {
    /// Every role.
    pub const ALL: [Self; 8] = [
        Self::FirstSight,
        Self::Middle,
        Self::Violation,
        Self::Latest,
        Self::Crop,
        Self::Fault,
        Self::Detail,
        Self::Clip,
    ];

    /// Its name in the store and the API.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::FirstSight => "first_sight",
            Self::Middle => "middle",
            Self::Violation => "violation",
            Self::Latest => "latest",
            Self::Crop => "crop",
            Self::Fault => "fault",
            Self::Detail => "detail",
            Self::Clip => "clip",
        }
    }

    /// Words for the caption strip.
    pub fn label(&self) -> &'static str {
        match self {
            Self::FirstSight => "first sight",
            Self::Middle => "during the stay",
            Self::Violation => "violation",
            Self::Latest => "latest sighting",
            Self::Crop => "close-up",
            Self::Fault => "camera fault",
            Self::Detail => "high-resolution close-up",
            Self::Clip => "clip",
        }
    }

    /// The stored file's extension.
    pub fn extension(&self) -> &'static str {
        match self {
            Self::Clip => "mp4",
            _ => "jpg",
        }
    }

    /// The stored file's media type.
    pub fn content_type(&self) -> &'static str {
        match self {
            Self::Clip => "video/mp4",
            _ => "image/jpeg",
        }
    }

    /// The role named `s` (as [`Self::as_str`] writes it).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A photo for a case, as a scene hands it to the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Photo {
    /// Its place in the sequence.
    pub role: PhotoRole,
    /// When the frame was taken, ms since the Unix epoch.
    pub at_ms: i64,
    /// JPEG bytes (annotated, captioned and made private).
    pub jpeg: Vec<u8>,
    /// The same photo unblurred, when originals are kept and something was pixelated
    /// ([`super::originals`]): for reviewers only.
    pub original: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in PhotoRole::ALL {
            assert_eq!(PhotoRole::parse(r.as_str()), Some(r));
            assert_eq!(
                serde_json::to_value(r).unwrap(),
                serde_json::json!(r.as_str())
            );
        }
        assert_eq!(PhotoRole::parse("selfie"), None);
    }
}
