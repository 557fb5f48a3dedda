//! What a search asks for ([`SearchQuery`], parsed from the `q` a user typed) and how a found
//! message shows why it was found ([`highlight`]).
//!
//! A query is words and "quoted phrases", all of which a message must contain. A word
//! outside quotes matches any word it begins (`deplo` finds "deploy"), so a word finds while it is
//! still being typed; a phrase matches its words exactly and in order. Nothing else is an operator:
//! `-`, `*`, `:`, `OR`, parentheses and backslashes are text like any other, so no input is a
//! syntax error. Each backend hands the terms to its own full-text engine, which splits them
//! into tokens as it split the messages (the store quotes every term), and compares them
//! without regard to case or accents.
//!
//! [`highlight`] marks the same matches in a message's text for display, HTML-escaped so
//! that it can be inserted as HTML: its own word splitting (runs of letters and digits) and
//! folding (lower case, accents dropped) follow the engines' closely enough for marking.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use crate::ValidationError;

/// The longest `q`, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Terms past this many are ignored: a query stays a bounded amount of work.
pub const MAX_TERMS: usize = 16;
/// A highlight of a longer text is an excerpt of about this many characters.
pub const EXCERPT_CHARS: usize = 240;

/// One thing a message must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// As typed (never contains `"`).
    pub text: String,
    /// A quoted phrase: its words match exactly. Otherwise the last word is a prefix.
    pub exact: bool,
}

/// A parsed `q`: see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    terms: Vec<Term>,
}

impl SearchQuery {
    /// Parses `q`: 1 to [`MAX_QUERY_CHARS`] characters, anything at all. A query of nothing
    /// but punctuation is valid and finds nothing.
    pub fn parse(q: &str) -> Result<Self, ValidationError> {
        let chars = q.chars().count();
        if chars == 0 {
            return Err(ValidationError::new("q", "type something to search for"));
        }
        if chars > MAX_QUERY_CHARS {
            return Err(ValidationError::new(
                "q",
                format!("must be at most {MAX_QUERY_CHARS} characters"),
            ));
        }
        let mut terms = Vec::new();
        for (i, part) in q.split('"').enumerate() {
            // Odd parts were between quotes (an unclosed quote runs to the end).
            if i % 2 == 1 {
                terms.push(Term {
                    text: part.trim().to_owned(),
                    exact: true,
                });
            } else {
                terms.extend(part.split_whitespace().map(|w| Term {
                    text: w.to_owned(),
                    exact: false,
                }));
            }
        }
        terms.retain(|t| !words(&t.text).is_empty());
        terms.dedup();
        terms.truncate(MAX_TERMS);
        Ok(Self { terms })
    }

    /// What a message must contain; empty when `q` had no letters or digits.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// Whether the query can find nothing (it had no letters or digits).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

/// `text`'s words (runs of letters and digits) with their byte ranges.
fn words(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

/// Lower case without accents: "Café" and "cafe" fold alike.
fn fold(word: &str) -> String {
    word.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// `text` HTML-escaped, with `<mark>…</mark>` around what the query's terms match in it.
/// A text longer than [`EXCERPT_CHARS`] is cut to an excerpt around its first match, with
/// `…` where it was cut. `None` when no term matches (the message was found by another
/// field, e.g. an attachment's name).
pub fn highlight(text: &str, query: &SearchQuery) -> Option<String> {
    let spans = words(text);
    let folded: Vec<String> = spans.iter().map(|&(s, e)| fold(&text[s..e])).collect();
    let mut marks: Vec<(usize, usize)> = Vec::new();
    for term in query.terms() {
        let wanted: Vec<String> = words(&term.text)
            .iter()
            .map(|&(s, e)| fold(&term.text[s..e]))
            .collect();
        let n = wanted.len();
        if n == 0 || n > folded.len() {
            continue;
        }
        for i in 0..=folded.len() - n {
            let hit = (0..n).all(|k| {
                let (have, want) = (&folded[i + k], &wanted[k]);
                if k + 1 == n && !term.exact {
                    have.starts_with(want.as_str())
                } else {
                    have == want
                }
            });
            if hit {
                marks.push((spans[i].0, spans[i + n - 1].1));
            }
        }
    }
    if marks.is_empty() {
        return None;
    }
    marks.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (s, e) in marks {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    Some(marked(text, &merged))
}

/// `text` HTML-escaped and cut like a highlight, with nothing marked: what a result shows
/// when its match is somewhere [`highlight`] does not see.
pub fn plain(text: &str) -> String {
    marked(text, &[])
}

/// The excerpt around the first of `marks` (sorted, apart), escaped, the marks marked.
fn marked(text: &str, marks: &[(usize, usize)]) -> String {
    let (from, to) = excerpt(text, marks.first().map_or(0, |m| m.0));
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    let mut at = from;
    for &(s, e) in marks {
        if e <= from || s >= to {
            continue;
        }
        let (s, e) = (s.max(from), e.min(to));
        escape_into(&mut out, &text[at..s]);
        out.push_str("<mark>");
        escape_into(&mut out, &text[s..e]);
        out.push_str("</mark>");
        at = e;
    }
    escape_into(&mut out, &text[at..to]);
    if to < text.len() {
        out.push('…');
    }
    out
}

/// The byte range of the excerpt shown for a first match at `first`: the whole text when
/// short, else about [`EXCERPT_CHARS`] characters starting a little before the match, cut
/// at whitespace where there is some nearby.
fn excerpt(text: &str, first: usize) -> (usize, usize) {
    if text.chars().count() <= EXCERPT_CHARS {
        return (0, text.len());
    }
    let lead = EXCERPT_CHARS / 4;
    let before: Vec<usize> = text[..first].char_indices().map(|(i, _)| i).collect();
    let mut from = before.len().checked_sub(lead).map_or(0, |k| before[k]);
    if from > 0 {
        // Start at a word: past the first whitespace of the lead, if there is one.
        if let Some(ws) = text[from..first].find(char::is_whitespace) {
            from += ws;
            from += text[from..].chars().next().map_or(0, char::len_utf8);
        }
    }
    let mut to = text[from..]
        .char_indices()
        .nth(EXCERPT_CHARS)
        .map_or(text.len(), |(i, _)| from + i);
    if to < text.len() {
        if let Some(ws) = text[first.max(from)..to].rfind(char::is_whitespace) {
            let cut = first.max(from) + ws;
            if cut > first {
                to = cut;
            }
        }
    }
    (from, to)
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> SearchQuery {
        SearchQuery::parse(text).unwrap()
    }

    #[test]
    fn words_and_phrases() {
        let query = q(r#"deploy "the new build" -rollback"#);
        let texts: Vec<(&str, bool)> = query
            .terms()
            .iter()
            .map(|t| (t.text.as_str(), t.exact))
            .collect();
        assert_eq!(
            texts,
            [
                ("deploy", false),
                ("the new build", true),
                ("-rollback", false)
            ]
        );
    }

    #[test]
    fn an_unclosed_quote_runs_to_the_end() {
        let query = q(r#"a "b c"#);
        assert_eq!(query.terms()[1].text, "b c");
        assert!(query.terms()[1].exact);
    }

    #[test]
    fn length_is_checked_in_characters() {
        assert_eq!(SearchQuery::parse("").unwrap_err().field, "q");
        assert!(SearchQuery::parse(&"é".repeat(200)).is_ok());
        assert!(SearchQuery::parse(&"é".repeat(201)).is_err());
    }

    #[test]
    fn punctuation_alone_finds_nothing() {
        for odd in ["*", "\"\"", "-", ":", "\\", "()", "%_", "   "] {
            assert!(q(odd).is_empty(), "{odd:?}");
        }
        assert!(!q("世界").is_empty());
    }

    #[test]
    fn marks_prefixes_without_case_or_accents_and_escapes() {
        let h = highlight("Le <b>Café</b> & CAFETERIA", &q("cafe")).unwrap();
        assert_eq!(
            h,
            "Le &lt;b&gt;<mark>Café</mark>&lt;/b&gt; &amp; <mark>CAFETERIA</mark>"
        );
    }

    #[test]
    fn a_phrase_marks_its_words_together_and_exactly() {
        let h = highlight("the new build, the newer build", &q("\"new build\"")).unwrap();
        assert_eq!(h, "the <mark>new build</mark>, the newer build");
    }

    #[test]
    fn no_match_no_highlight() {
        assert_eq!(highlight("hello", &q("world")), None);
        assert_eq!(plain("a <b>"), "a &lt;b&gt;");
        assert!(plain(&"word ".repeat(100)).ends_with('…'));
    }

    #[test]
    fn a_long_text_is_cut_around_its_first_match() {
        let text = format!("{} needle {}", "hay ".repeat(200), "straw ".repeat(200));
        let h = highlight(&text, &q("needle")).unwrap();
        assert!(h.starts_with('…') && h.ends_with('…'), "{h}");
        assert!(h.contains("<mark>needle</mark>"));
        assert!(h.chars().count() < EXCERPT_CHARS + 20, "{}", h.len());
    }
}
