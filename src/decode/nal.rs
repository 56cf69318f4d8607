//! NAL unit headers of H.264 / H.265 access units: which pictures nothing references.
//!
//! A picture no other picture predicts from can be left undecoded when it is not the
//! one sampling wants; the decoder's reference chain stays intact. Neither FFmpeg's
//! demuxers nor RTP say this for H.265 (and MP4 rarely for H.264), so it is read here
//! from the NAL unit headers:
//!
//! - H.264: every slice has `nal_ref_idc == 0`.
//! - H.265: every slice is a sub-layer non-reference picture (TRAIL_N, TSA_N, STSA_N,
//!   RADL_N, RASL_N, reserved _N types) *in the highest temporal sub-layer* the stream
//!   has (`sps_max_sub_layers_minus1`): a `_N` picture of a lower sub-layer may still be
//!   referenced by pictures of higher ones (cameras with temporal scalability send such
//!   streams). Until the SPS is seen, nothing H.265 is disposable.
//!
//! Access units come in Annex B (start codes: RTSP, MPEG-TS, raw streams) or with
//! length prefixes (MP4, Matroska: the size from the `avcC` / `hvcC` record).

/// How NAL units are delimited in a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `00 00 01` / `00 00 00 01` start codes.
    AnnexB,
    /// Each NAL unit preceded by its size in this many big-endian bytes (1, 2 or 4).
    Length(u8),
}

/// The codec family, for header layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// H.264 / AVC.
    H264,
    /// H.265 / HEVC.
    H265,
}

/// Reads access units of one stream and says which are disposable.
#[derive(Debug, Clone)]
pub struct NalReader {
    family: Family,
    framing: Framing,
    /// H.265: `sps_max_sub_layers_minus1` of the last SPS seen.
    max_sub_layer: Option<u8>,
}

impl NalReader {
    /// A reader for `family` with the framing and sub-layer count that a container's
    /// codec configuration record (`extradata`) gives, if any.
    pub fn new(family: Family, extradata: &[u8]) -> Self {
        let mut r = Self {
            family,
            framing: Framing::AnnexB,
            max_sub_layer: None,
        };
        // avcC / hvcC start with configurationVersion = 1; Annex B extradata with a
        // start code
        if extradata.first() == Some(&1) {
            match family {
                Family::H264 if extradata.len() >= 5 => {
                    r.framing = Framing::Length((extradata[4] & 3) + 1);
                }
                Family::H265 if extradata.len() >= 23 => {
                    r.framing = Framing::Length((extradata[21] & 3) + 1);
                    // numTemporalLayers (0: unknown)
                    let layers = (extradata[21] >> 3) & 7;
                    if layers > 0 {
                        r.max_sub_layer = Some(layers - 1);
                    }
                    r.scan_hvcc_sps(extradata);
                }
                _ => {}
            }
        } else {
            r.scan(extradata, |_| {});
        }
        r
    }

    /// The framing in use.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Whether nothing references the picture of this access unit (learning the
    /// H.265 sub-layer count from parameter sets in it on the way).
    pub fn disposable(&mut self, au: &[u8]) -> bool {
        let family = self.family;
        let mut slices = 0u32;
        let mut referenced = false;
        let mut hevc_n = Vec::<u8>::new();
        self.scan(au, |nal| match family {
            Family::H264 => {
                let kind = nal[0] & 0x1f;
                if (1..=5).contains(&kind) {
                    slices += 1;
                    referenced |= nal[0] & 0x60 != 0;
                }
            }
            Family::H265 => {
                if nal.len() < 2 {
                    return;
                }
                let kind = (nal[0] >> 1) & 0x3f;
                if kind <= 31 {
                    slices += 1;
                    let sub_layer_non_ref = kind <= 14 && kind % 2 == 0;
                    if sub_layer_non_ref {
                        hevc_n.push((nal[1] & 7).saturating_sub(1));
                    } else {
                        referenced = true;
                    }
                }
            }
        });
        if slices == 0 || referenced {
            return false;
        }
        match self.family {
            Family::H264 => true,
            Family::H265 => match self.max_sub_layer {
                Some(top) => hevc_n.iter().all(|&t| t == top),
                None => false,
            },
        }
    }

    /// Whether the access unit is a random-access point: an H.265 IRAP picture (IDR,
    /// CRA, BLA), or an H.264 IDR or a picture with a recovery point SEI that says
    /// decoding from it is right at once (`recovery_frame_cnt` 0, as x264's open GOPs
    /// write them). RTP depacketizers tend to count IDR pictures only.
    pub fn random_access(&mut self, au: &[u8]) -> bool {
        let family = self.family;
        let (mut irap, mut other_vcl, mut recovery) = (false, false, false);
        self.scan(au, |nal| match family {
            Family::H264 => match nal[0] & 0x1f {
                5 => irap = true,
                1..=4 => other_vcl = true,
                6 => recovery |= sei_recovers_at_once(&nal[1..]),
                _ => {}
            },
            Family::H265 => {
                let kind = (nal[0] >> 1) & 0x3f;
                if (16..=23).contains(&kind) {
                    irap = true;
                } else if kind <= 31 {
                    other_vcl = true;
                }
            }
        });
        match family {
            Family::H264 => irap || (recovery && other_vcl),
            Family::H265 => irap && !other_vcl,
        }
    }

    /// Calls `f` with each NAL unit (header first) of `data`; notes H.265 SPSs.
    fn scan(&mut self, data: &[u8], mut f: impl FnMut(&[u8])) {
        let hevc = self.family == Family::H265;
        let mut max = self.max_sub_layer;
        let mut each = |nal: &[u8]| {
            if nal.is_empty() {
                return;
            }
            if hevc && (nal[0] >> 1) & 0x3f == 33 {
                if let Some(&b) = nal.get(2) {
                    max = Some((b >> 1) & 7);
                }
            }
            f(nal);
        };
        match self.framing {
            Framing::AnnexB => annexb_units(data).for_each(&mut each),
            Framing::Length(n) => {
                let n = n as usize;
                let mut at = 0usize;
                while at + n <= data.len() {
                    let len = data[at..at + n]
                        .iter()
                        .fold(0usize, |acc, &b| (acc << 8) | b as usize);
                    at += n;
                    let end = at.saturating_add(len).min(data.len());
                    each(&data[at..end]);
                    at = end;
                }
            }
        }
        self.max_sub_layer = max;
    }

    /// The SPSs in an `hvcC` record's arrays.
    fn scan_hvcc_sps(&mut self, rec: &[u8]) {
        let mut at = 23usize;
        let Some(&arrays) = rec.get(22) else { return };
        for _ in 0..arrays {
            let Some(&kind) = rec.get(at) else { return };
            let Some(count) = rec.get(at + 1..at + 3) else {
                return;
            };
            let count = u16::from_be_bytes([count[0], count[1]]);
            at += 3;
            for _ in 0..count {
                let Some(len) = rec.get(at..at + 2) else {
                    return;
                };
                let len = u16::from_be_bytes([len[0], len[1]]) as usize;
                at += 2;
                if kind & 0x3f == 33 {
                    if let Some(&b) = rec.get(at + 2) {
                        self.max_sub_layer = Some((b >> 1) & 7);
                    }
                }
                at += len;
            }
        }
    }
}

/// Whether an H.264 SEI payload (after the NAL header) holds a recovery point with
/// `recovery_frame_cnt` 0.
fn sei_recovers_at_once(mut p: &[u8]) -> bool {
    // sei_message()s: payloadType and payloadSize, each a run of 0xFF plus a last byte
    while p.len() >= 2 && p[0] != 0x80 {
        let kind = ff_coded(&mut p);
        let size = ff_coded(&mut p);
        if kind == 6 {
            // recovery_frame_cnt is ue(v): a leading 1 bit means 0
            return p.first().is_some_and(|b| b & 0x80 != 0);
        }
        p = p.get(size..).unwrap_or(&[]);
    }
    false
}

/// Reads an SEI number: the sum of a run of 0xFF bytes and the byte after it.
fn ff_coded(p: &mut &[u8]) -> usize {
    let mut n = 0usize;
    while let Some((&b, rest)) = p.split_first() {
        *p = rest;
        n += b as usize;
        if b != 0xff {
            break;
        }
    }
    n
}

/// The NAL units of an Annex B byte stream (without their start codes).
fn annexb_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut next = find_start(data, 0);
    std::iter::from_fn(move || {
        let s = next?;
        next = find_start(data, s);
        let mut e = next.map_or(data.len(), |n| n - 3);
        // a zero byte before the next start code belongs to it (4-byte start codes)
        while next.is_some() && e > s && data[e - 1] == 0 {
            e -= 1;
        }
        Some(&data[s..e])
    })
}

/// The position just after the first start code at or after `from`.
fn find_start(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 3 <= data.len() {
        if data[i + 2] > 1 {
            i += 3;
        } else if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            return Some(i + 3);
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter()
            .flat_map(|n| [&[0u8, 0, 0, 1][..], n].concat())
            .collect()
    }

    #[test]
    fn h264_non_reference_slices_are_disposable() {
        let mut r = NalReader::new(Family::H264, &[]);
        // nal_ref_idc 0, non-IDR slice (type 1): a non-reference B
        assert!(r.disposable(&annexb(&[&[0x01, 0x9e, 0x12]])));
        // nal_ref_idc 2 (0x41 = ref P), an SEI alone, an IDR
        assert!(!r.disposable(&annexb(&[&[0x41, 0x9a, 0x00]])));
        assert!(!r.disposable(&annexb(&[&[0x06, 0x05, 0x10]])));
        assert!(!r.disposable(&annexb(&[&[0x67, 0x64], &[0x65, 0x88]])));
        // one referenced slice among non-referenced: not disposable
        assert!(!r.disposable(&annexb(&[&[0x01, 0x9e], &[0x21, 0x9e]])));
    }

    #[test]
    fn length_prefixed_units_follow_the_avcc_record() {
        // avcC: version 1, profile, compat, level, 0xff (4-byte lengths)
        let mut r = NalReader::new(Family::H264, &[1, 0x64, 0, 0x1f, 0xff, 0xe1]);
        assert_eq!(r.framing(), Framing::Length(4));
        let au = [0, 0, 0, 3, 0x01, 0x9e, 0x00, 0, 0, 0, 2, 0x09, 0x10];
        assert!(r.disposable(&au));
        let au = [0, 0, 0, 3, 0x21, 0x9e, 0x00];
        assert!(!r.disposable(&au));
    }

    #[test]
    fn h265_n_pictures_are_disposable_only_in_the_top_sub_layer() {
        let mut r = NalReader::new(Family::H265, &[]);
        let trail_n_t0 = [0x00, 0x01, 0xaf]; // TRAIL_N, temporal id 0
        assert!(!r.disposable(&annexb(&[&trail_n_t0])), "no SPS seen yet");
        // SPS (type 33 → 0x42 0x01), max_sub_layers_minus1 = 0
        let sps_one_layer = [0x42, 0x01, 0x01];
        assert!(!r.disposable(&annexb(&[&sps_one_layer])));
        assert!(r.disposable(&annexb(&[&trail_n_t0])));
        let trail_r = [0x02, 0x01, 0xaf]; // TRAIL_R
        let cra = [0x2a, 0x01, 0xaf]; // CRA (21)
        assert!(!r.disposable(&annexb(&[&trail_r])));
        assert!(!r.disposable(&annexb(&[&cra])));
        // two temporal sub-layers: a _N picture of layer 0 may be referenced by layer 1
        let sps_two_layers = [0x42, 0x01, 0x03];
        r.disposable(&annexb(&[&sps_two_layers]));
        assert!(!r.disposable(&annexb(&[&trail_n_t0])));
        let trail_n_t1 = [0x00, 0x02, 0xaf];
        assert!(r.disposable(&annexb(&[&trail_n_t1])));
    }

    #[test]
    fn random_access_points_of_both_codecs() {
        let mut h = NalReader::new(Family::H264, &[]);
        assert!(
            h.random_access(&annexb(&[&[0x67, 0x64], &[0x65, 0x88]])),
            "IDR"
        );
        assert!(!h.random_access(&annexb(&[&[0x41, 0x9a]])), "a P picture");
        // SEI: payload type 6 (recovery point), size 1, recovery_frame_cnt 0 (bit 1),
        // then a non-IDR slice: an open-GOP I-frame as x264 writes it
        let sei0 = [0x06, 0x06, 0x01, 0x84, 0x80];
        assert!(h.random_access(&annexb(&[&sei0, &[0x41, 0x88]])));
        // recovery_frame_cnt 3 (gradual refresh: not right at once)
        let sei3 = [0x06, 0x06, 0x01, 0x20, 0x80];
        assert!(!h.random_access(&annexb(&[&sei3, &[0x41, 0x88]])));
        // another SEI (user data, type 5) before the recovery point
        let sei = [0x06, 0x05, 0x02, 0xaa, 0xbb, 0x06, 0x01, 0x84, 0x80];
        assert!(h.random_access(&annexb(&[&sei, &[0x41, 0x88]])));
        let mut v = NalReader::new(Family::H265, &[]);
        assert!(v.random_access(&annexb(&[&[0x2a, 0x01, 0xaf]])), "CRA");
        assert!(
            v.random_access(&annexb(&[&[0x26, 0x01, 0xaf]])),
            "IDR_W_RADL"
        );
        assert!(v.random_access(&annexb(&[&[0x20, 0x01, 0xaf]])), "BLA_W_LP");
        assert!(!v.random_access(&annexb(&[&[0x10, 0x01, 0xaf]])), "RASL_R");
        assert!(
            !v.random_access(&annexb(&[&[0x40, 0x01], &[0x42, 0x01]])),
            "parameter sets alone"
        );
    }

    #[test]
    fn hvcc_gives_framing_and_sub_layers() {
        let mut rec = vec![0u8; 23];
        rec[0] = 1;
        rec[21] = (1 << 3) | 3; // one temporal layer, 4-byte lengths
        let mut r = NalReader::new(Family::H265, &rec);
        assert_eq!(r.framing(), Framing::Length(4));
        assert!(r.disposable(&[0, 0, 0, 3, 0x00, 0x01, 0xaf]));
    }

    #[test]
    fn annexb_splits_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 0xaa, 0, 0, 1, 0x68, 0xbb, 0, 0, 0, 1, 0x65,
        ];
        let units: Vec<&[u8]> = annexb_units(&data).collect();
        assert_eq!(units, [&[0x67, 0xaa][..], &[0x68, 0xbb], &[0x65]]);
        assert_eq!(annexb_units(&[1, 2, 3]).count(), 0);
    }
}
