//! The frame type every stage after decoding works on.

/// A decoded picture: packed BGR, 8 bits a channel, rows without padding
/// (`data.len() == width * height * 3`). Decoders write into an existing frame so its
/// buffer is reused from one frame to the next.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Packed BGR bytes, row by row.
    pub data: Vec<u8>,
    /// Index of the frame in its source (presentation order; 0 for an image).
    pub index: u64,
    /// Presentation time in milliseconds from the start of the source; `None` for
    /// still images.
    pub pts_ms: Option<i64>,
    /// Whether the frame was coded as a random-access (key) frame.
    pub keyframe: bool,
}

impl Frame {
    /// Sets the size, growing the buffer only when it is too small.
    pub fn reshape(&mut self, width: u32, height: u32) {
        self.width = width;
        self.height = height;
        self.data.resize(width as usize * height as usize * 3, 0);
    }

    /// Bytes per row.
    pub fn stride(&self) -> usize {
        self.width as usize * 3
    }

    /// A solid-colour frame, for tests and warm-up.
    pub fn filled(width: u32, height: u32, bgr: [u8; 3]) -> Self {
        let mut f = Self::default();
        f.reshape(width, height);
        for px in f.data.chunks_exact_mut(3) {
            px.copy_from_slice(&bgr);
        }
        f
    }
}
