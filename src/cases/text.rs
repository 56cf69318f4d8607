//! Free text that people write into gridwatch — reviewers' names and notes, case
//! descriptions from outside — checked in one place before it is stored or sent on.
//!
//! Refused: NUL and the other control characters (tab, and line breaks where the field
//! may hold several lines, excepted), and the Unicode bidirectional controls
//! (U+202A–U+202E, U+2066–U+2069) that make text show in another order than it is
//! stored (a name that reads differently in the review page than in the workflow).
//! A receiver that refuses such text (PostgreSQL and many Open311 servers refuse NUL)
//! would otherwise fail a follow-up for good after gridwatch had taken it.

/// Whether `c` may not be in free text.
fn forbidden(c: char, multiline: bool) -> bool {
    match c {
        '\t' => false,
        '\n' | '\r' => !multiline,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        c => c.is_control(),
    }
}

/// Checks `value` of `field`: at most `max_chars` characters, none of the forbidden
/// ones. The message names the field, the character and where it is.
pub fn check(field: &str, value: &str, max_chars: usize, multiline: bool) -> Result<(), String> {
    let n = value.chars().count();
    if n > max_chars {
        return Err(format!("{field}: {n} characters, at most {max_chars}"));
    }
    if let Some((i, c)) = value
        .chars()
        .enumerate()
        .find(|(_, c)| forbidden(*c, multiline))
    {
        return Err(format!(
            "{field}: character {} is U+{:04X}, a control character that is not allowed",
            i + 1,
            c as u32
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_refused_with_where_they_are() {
        assert!(check("note", "van on the kerb, 违停\nsecond line\tok", 100, true).is_ok());
        let e = check("reviewer", "a\u{0}b", 100, false).unwrap_err();
        assert!(
            e.contains("reviewer") && e.contains("character 2") && e.contains("U+0000"),
            "{e}"
        );
        for bad in [
            "\u{202e}<script>",
            "x\u{2066}y",
            "bell\u{7}",
            "c1\u{85}",
            "esc\u{1b}[31m",
        ] {
            assert!(check("note", bad, 100, true).is_err(), "{bad:?}");
        }
        assert!(check("reviewer", "two\nlines", 100, false).is_err());
        assert!(check("note", "two\nlines", 100, true).is_ok());
        assert!(check("note", &"x".repeat(101), 100, true)
            .unwrap_err()
            .contains("101"));
    }
}
