//! The page's own words: the few words Roundtable itself uses that a member may not know ("thread",
//! "sealed", "sync"). Every page that shows one says what it means, in plain words, in a part
//! "Words on this page" at the end of the page.
//!
//! **Invariant:** [`explain`] runs on every page, after the header's sync line is in
//! ([`super::devices::with_sync_line`], in the guard), so no page can use one of these words without
//! its meaning; `tests/handlers.rs` checks it on every page it opens.

/// (the word as shown in the list, the forms looked for, what it means).
pub(crate) const OWN_WORDS: &[(&str, &[&str], &str)] = &[
    (
        "Thread",
        &["thread", "threads"],
        "a conversation about one subject.",
    ),
    (
        "Sealed",
        &["sealed"],
        "only the members named can read it. Everyone else sees that it is there, who writes in it, and why it is closed to them.",
    ),
    (
        "Sync",
        &["sync", "synced", "syncing"],
        "share the newest messages and answers between devices, so each has the same.",
    ),
    (
        "Record",
        &["record"],
        "everything the group has written and decided. Each member's device keeps a copy.",
    ),
    (
        "Device",
        &["device", "devices"],
        "a computer, a tablet or a phone.",
    ),
    (
        "Stance",
        &["stance", "stances"],
        "your answer to a proposal: agree, not sure, disagree or block.",
    ),
    (
        "Proposal",
        &["proposal", "proposals"],
        "a suggestion that the group decides on together.",
    ),
    (
        "Auditor",
        &["auditor", "auditors"],
        "someone from outside the group who checks that the record is genuine. They cannot write or read sealed threads.",
    ),
    (
        "Quorum",
        &["quorum"],
        "how many members must answer before something can be decided.",
    ),
];

/// The text a reader sees: no tags, no scripts or styles, entities left as they are.
pub(crate) fn visible_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        out.push(' ');
        let tag = &rest[lt..];
        let skip_to = ["<script", "<style"]
            .iter()
            .find(|t| tag.starts_with(*t))
            .and_then(|t| {
                let close = format!("</{}", &t[1..]);
                tag.find(&close)
            });
        let from = skip_to.unwrap_or(0);
        match tag[from..].find('>') {
            Some(gt) => rest = &tag[from + gt + 1..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// Whether `text` holds `word` as a whole word, in any case.
fn has_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric() && c != '-')
        .any(|w| w.eq_ignore_ascii_case(word))
}

/// The own words `html`'s visible text uses: (word, meaning).
pub(crate) fn used(html: &str) -> Vec<(&'static str, &'static str)> {
    let text = visible_text(html);
    OWN_WORDS
        .iter()
        .filter(|(_, forms, _)| forms.iter().any(|f| has_word(&text, f)))
        .map(|(w, _, m)| (*w, *m))
        .collect()
}

/// `html` with "Words on this page" before the end of its `<main>`, when it uses any own word.
pub(crate) fn explain(html: String) -> String {
    let Some(end) = html.rfind("</main>") else {
        return html;
    };
    let words = used(&html[..end]);
    if words.is_empty() {
        return html;
    }
    let mut part = String::from(
        "<section class=\"words-here\" aria-labelledby=\"words-here-h\">\n<h2 id=\"words-here-h\">Words on this page</h2>\n<dl data-read>\n",
    );
    for (w, m) in words {
        part.push_str(&format!("<dt>{w}</dt><dd>{m}</dd>\n"));
    }
    part.push_str("</dl>\n</section>\n");
    let mut out = html;
    out.insert_str(end, &part);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_words_shown_are_explained() {
        let html = "<html><head><script>var thread;</script></head><body><nav><a href=\"/threads\" title=\"sync\">Threads</a></nav><main><p class=\"sealed\">Your record</p></main></body></html>";
        let out = explain(html.to_string());
        assert!(out.contains("<dt>Thread</dt>"), "{out}");
        assert!(out.contains("<dt>Record</dt>"), "{out}");
        // In a script, an attribute or a class name, a word is not shown.
        assert!(!out.contains("<dt>Sync</dt>"), "{out}");
        assert!(!out.contains("<dt>Sealed</dt>"), "{out}");
        assert!(out.find("Words on this page") < out.find("</main>"));
        // Part of a longer word is not the word.
        assert!(used("<main>Recorded threadbare</main>").is_empty());
        let plain = "<main><p>Hello</p></main>".to_string();
        assert_eq!(explain(plain.clone()), plain);
    }
}
