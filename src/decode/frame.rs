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

    /// The `w`×`h` part at (`x`, `y`), clamped to the frame (what a camera steered
    /// there sees, for tests and tools; times and flags kept).
    pub fn crop(&self, x: u32, y: u32, w: u32, h: u32) -> Self {
        let x = x.min(self.width);
        let y = y.min(self.height);
        let w = w.min(self.width - x);
        let h = h.min(self.height - y);
        let mut out = Self {
            index: self.index,
            pts_ms: self.pts_ms,
            keyframe: self.keyframe,
            ..Self::default()
        };
        out.reshape(w, h);
        let row = w as usize * 3;
        for r in 0..h as usize {
            let from = (y as usize + r) * self.stride() + x as usize * 3;
            out.data[r * row..(r + 1) * row].copy_from_slice(&self.data[from..from + row]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Frame;

    #[test]
    fn a_crop_is_the_part_of_the_frame() {
        let mut f = Frame::filled(4, 3, [0, 0, 0]);
        for (i, b) in f.data.iter_mut().enumerate() {
            *b = i as u8;
        }
        let c = f.crop(1, 1, 2, 5);
        assert_eq!((c.width, c.height), (2, 2), "clamped");
        // row 1 starts at byte 12; pixel 1 of it at 15
        assert_eq!(&c.data[..6], &[15, 16, 17, 18, 19, 20]);
        assert_eq!(&c.data[6..], &[27, 28, 29, 30, 31, 32]);
    }
}
