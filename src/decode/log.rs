//! FFmpeg's own diagnostics, kept per thread, so that an error can say what FFmpeg
//! said ("moov atom not found", "Invalid NAL unit size") instead of only an error code.
//!
//! FFmpeg logs through one process-wide callback; messages of error level and worse
//! are kept (the last few, on the thread that called into FFmpeg) and nothing is
//! printed: gridwatch reports errors itself, with the file or camera named.

use std::cell::RefCell;
use std::collections::VecDeque;

use ffmpeg_next::ffi;

/// Messages kept per thread.
const KEEP: usize = 8;

thread_local! {
    static MESSAGES: RefCell<VecDeque<String>> = const { RefCell::new(VecDeque::new()) };
}

/// Routes FFmpeg's log into the per-thread store (once per process).
pub(crate) fn install() {
    // SAFETY: setting FFmpeg's global log level and callback; the callback below is
    // safe to call from any thread at any time.
    unsafe {
        ffi::av_log_set_level(ffi::AV_LOG_ERROR);
        #[cfg(target_arch = "x86_64")]
        ffi::av_log_set_callback(Some(keep));
        #[cfg(not(target_arch = "x86_64"))]
        ffi::av_log_set_level(ffi::AV_LOG_QUIET);
    }
}

#[cfg(target_arch = "x86_64")]
unsafe extern "C" fn keep(
    avcl: *mut libc::c_void,
    level: libc::c_int,
    fmt: *const libc::c_char,
    vl: *mut ffi::__va_list_tag,
) {
    if level > ffi::AV_LOG_ERROR || fmt.is_null() {
        return;
    }
    let mut buf = [0 as libc::c_char; 512];
    let mut prefix: libc::c_int = 1;
    // SAFETY: FFmpeg hands us its own arguments; the line is written into `buf`,
    // NUL-terminated, at most its size.
    let line = unsafe {
        ffi::av_log_format_line2(
            avcl,
            level,
            fmt,
            vl,
            buf.as_mut_ptr(),
            buf.len() as i32,
            &mut prefix,
        );
        std::ffi::CStr::from_ptr(buf.as_ptr())
    };
    let text = line.to_string_lossy();
    // "[h264 @ 0x55…] message" → "h264: message"
    let text = match text.strip_prefix('[').and_then(|t| t.split_once("] ")) {
        Some((who, msg)) => format!("{}: {}", who.split(" @ ").next().unwrap_or(who), msg.trim()),
        None => text.trim().to_string(),
    };
    if text.is_empty() {
        return;
    }
    let _ = MESSAGES.try_with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            if m.len() == KEEP {
                m.pop_front();
            }
            m.push_back(text);
        }
    });
}

/// Forgets this thread's messages (before a call whose failure should be explained).
pub fn clear() {
    let _ = MESSAGES.try_with(|m| m.borrow_mut().clear());
}

/// This thread's messages since the last [`clear`] or [`take`], oldest first, joined by
/// "; " (empty when FFmpeg said nothing).
pub fn take() -> String {
    MESSAGES
        .try_with(|m| {
            let mut m = m.borrow_mut();
            let mut seen = Vec::<String>::new();
            for s in m.drain(..) {
                if !seen.contains(&s) {
                    seen.push(s);
                }
            }
            seen.join("; ")
        })
        .unwrap_or_default()
}

/// `message`, with what FFmpeg said on this thread appended in parentheses.
pub fn explain(message: impl Into<String>) -> String {
    let message = message.into();
    match take() {
        s if s.is_empty() => message,
        s => format!("{message} (FFmpeg: {s})"),
    }
}
