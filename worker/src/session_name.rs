//! Session names, generated from the first message (property 49: docs/PROPERTIES.md#p49):
//! short, on one line, without control characters or markup noise.

/// Words a generated name keeps at most.
const MAX_WORDS: usize = 6;
/// Characters a generated name keeps at most.
const MAX_CHARS: usize = 48;

/// The name of a session whose first message is `first_message`.
pub(crate) fn from_first_message(first_message: &str) -> String {
    let line = first_message.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let words: Vec<String> = line
        .split_whitespace()
        .map(|w| {
            // Emphasis and code marks go wherever they are (`**there**,`);
            // headings, quotes and link brackets only at the ends.
            w.chars()
                .filter(|c| !c.is_control() && !matches!(c, '*' | '`' | '~'))
                .collect::<String>()
                .trim_matches(|c: char| matches!(c, '#' | '_' | '>' | '[' | ']'))
                .to_owned()
        })
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return "New conversation".to_owned();
    }
    let mut name = String::new();
    let mut cut = false;
    for (i, word) in words.iter().enumerate() {
        if i == MAX_WORDS || name.chars().count() + word.chars().count() + 1 > MAX_CHARS {
            cut = true;
            break;
        }
        if !name.is_empty() {
            name.push(' ');
        }
        name.push_str(word);
    }
    if name.is_empty() {
        // One very long word.
        name = words[0].chars().take(MAX_CHARS - 1).collect();
        cut = true;
    }
    let name = name.trim_end_matches(|c: char| c.is_ascii_punctuation() && c != '?' && c != ')');
    if cut {
        format!("{name}…")
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::from_first_message;

    #[test]
    fn names_are_short_clean_and_single_line() {
        assert_eq!(
            from_first_message("What is the capital of France?"),
            "What is the capital of France?"
        );
        assert_eq!(
            from_first_message("Please help me plan a **three week** trip to Japan in spring"),
            "Please help me plan a three…"
        );
        assert_eq!(from_first_message("\n\n  # Title line\nbody"), "Title line");
        assert_eq!(
            from_first_message("Hello **there**, `code` here"),
            "Hello there, code here"
        );
        assert_eq!(from_first_message("rename my_var ~~now~~"), "rename my_var now");
        assert_eq!(from_first_message("   "), "New conversation");
        let long = from_first_message(&"x".repeat(200));
        assert!(long.chars().count() <= 48 && long.ends_with('…'));
        for name in [from_first_message("a\u{7}b c"), from_first_message("tab\there")] {
            assert!(!name.chars().any(char::is_control), "{name:?}");
        }
    }
}
