//! The jargon checker: words from the members' glossary, and long sentences. It advises; it never
//! blocks (the partnership asks for clear words, and trusts members to choose their own).

/// The glossary shipped with Roundtable, used until members save their own (`glossary.txt` in the home).
pub const DEFAULT_GLOSSARY: &str = include_str!("../static/glossary.txt");

/// Sentences longer than this are flagged (Easy Read guidance: one idea per short sentence).
pub const MAX_WORDS: usize = 15;

/// One glossary line: a word or phrase and its plain alternative.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Term {
    /// The word or phrase to flag, as the glossary writes it; [`check`] matches it as whole words,
    /// ignoring case and the punctuation around words.
    pub word: String,
    /// The plain words to suggest instead.
    pub plain: String,
}

/// What the checker found in a text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advice {
    /// Glossary terms found, each once, in the order of the glossary.
    pub words: Vec<Term>,
    /// Sentences over [`MAX_WORDS`] words: (the sentence, its word count).
    pub long: Vec<(String, usize)>,
}

impl Advice {
    /// Whether there is nothing to advise: no glossary word and no long sentence.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty() && self.long.is_empty()
    }
}

/// Parses a glossary: one `word = plain words` per line; `#` starts a comment line; lines without
/// `=` or with an empty side are skipped (a member's typo must not break the page).
pub fn parse(text: &str) -> Vec<Term> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(w, p)| (w.trim(), p.trim()))
        .filter(|(w, p)| !w.is_empty() && !p.is_empty())
        .map(|(w, p)| Term {
            word: w.to_string(),
            plain: p.to_string(),
        })
        .collect()
}

/// The text's words, lower-cased, with their punctuation trimmed.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'' && c != '-')
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether `phrase` (one or more words) occurs in `ws` as whole words.
fn contains_phrase(ws: &[String], phrase: &[String]) -> bool {
    !phrase.is_empty() && ws.windows(phrase.len()).any(|w| w == phrase)
}

/// Splits into sentences at `.`, `!`, `?` and line ends.
fn sentences(text: &str) -> impl Iterator<Item = &str> {
    text.split(['.', '!', '?', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Advises on `text`: the glossary terms it contains as whole words (case ignored), and its
/// sentences (split at `.`, `!`, `?` and line ends) of more than [`MAX_WORDS`] words. Advice only:
/// the caller shows it and lets the member share the text unchanged.
pub fn check(text: &str, glossary: &[Term]) -> Advice {
    let ws = words(text);
    let mut advice = Advice::default();
    for t in glossary {
        let phrase = words(&t.word);
        if contains_phrase(&ws, &phrase) && !advice.words.iter().any(|x| x.word == t.word) {
            advice.words.push(t.clone());
        }
    }
    for s in sentences(text) {
        let n = s.split_whitespace().count();
        if n > MAX_WORDS {
            advice.long.push((s.to_string(), n));
        }
    }
    advice
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_glossary_words_as_whole_words_and_phrases() {
        let g = parse(
            "# comment\nquorum = how many people must take part\nin lieu of = instead of\nbad line\n = empty\n",
        );
        assert_eq!(g.len(), 2);
        let a = check("We need a Quorum, in lieu of a vote.", &g);
        assert_eq!(a.words.len(), 2);
        assert_eq!(a.words[0].plain, "how many people must take part");
        // Not inside another word.
        assert!(check("quorums", &g).words.is_empty());
    }

    #[test]
    fn flags_sentences_over_fifteen_words_only() {
        let fifteen = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen.";
        assert!(check(fifteen, &[]).long.is_empty());
        let sixteen = format!("{} sixteen. Short one.", fifteen.trim_end_matches('.'));
        let a = check(&sixteen, &[]);
        assert_eq!(a.long.len(), 1);
        assert_eq!(a.long[0].1, 16);
    }

    #[test]
    fn the_shipped_glossary_parses() {
        assert!(parse(DEFAULT_GLOSSARY).len() >= 20);
    }
}

/// Words that usually mean a message is private: health, care and money. A nudge only, never a
/// block: the member decides.
const PRIVATE_WORDS: &[&str] = &[
    "health",
    "doctor",
    "hospital",
    "medication",
    "medicine",
    "diagnosis",
    "illness",
    "ill",
    "mental",
    "depression",
    "anxiety",
    "therapy",
    "nurse",
    "gp",
    "surgery",
    "pain",
    "disability",
    "benefit",
    "benefits",
    "debt",
    "debts",
    "money",
    "bank",
    "pension",
    "salary",
    "wages",
    "rent",
    "arrears",
    "loan",
    "safeguarding",
    "abuse",
];

/// The first word of `text` that suggests it is private (health, care or money), if any.
pub fn private_word(text: &str) -> Option<&'static str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .find_map(|w| {
            let w = w.to_lowercase();
            PRIVATE_WORDS.iter().find(|p| **p == w).copied()
        })
}

#[cfg(test)]
mod private_tests {
    use super::private_word;

    #[test]
    fn health_and_money_words_are_noticed_as_whole_words() {
        assert_eq!(private_word("My Doctor says no stairs."), Some("doctor"));
        assert_eq!(private_word("I am in debt."), Some("debt"));
        assert_eq!(private_word("The bus is late."), None);
        // A word inside another is not that word.
        assert_eq!(private_word("Banking hours"), None);
    }
}
