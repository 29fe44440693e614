//! Splitting a YAML stream into documents before parsing, so that a syntax error in one document does
//! not hide the documents after it.
//!
//! YAML forbids a document marker (`---` or `...` at column 0 followed by a space or line end) inside
//! any content, even block scalars, so cutting at `---` lines finds the same documents a YAML parser
//! would. Document indexes follow the parser too: text before the first `---` counts as a document
//! only if it has content (comments, blank lines and `%` directives do not count).

/// One document's text and where it starts in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk<'a> {
    /// The document's text, including its `---` line if it has one.
    pub text: &'a str,
    /// 1-based line of the source on which the text starts.
    pub first_line: usize,
}

/// Whether `line` (without its line break) is a `---` document start marker.
fn is_document_start(line: &str) -> bool {
    match line.strip_prefix("---") {
        Some(rest) => rest.is_empty() || rest.starts_with([' ', '\t', '\r']),
        None => false,
    }
}

/// Whether a chunk holds nothing a parser would turn into a document.
fn has_no_content(text: &str) -> bool {
    text.lines().all(|line| {
        let t = line.trim();
        t.is_empty() || t.starts_with('#') || line.starts_with('%')
    })
}

/// The documents of `text`, in order. A leading byte-order mark is ignored.
pub(crate) fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut chunks = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1usize;
    let mut offset = 0usize;
    for (line_no, line) in (1usize..).zip(text.split_inclusive('\n')) {
        let bare = line.strip_suffix('\n').unwrap_or(line);
        if is_document_start(bare) && offset > 0 {
            chunks.push(Chunk {
                text: &text[start..offset],
                first_line: start_line,
            });
            start = offset;
            start_line = line_no;
        }
        offset += line.len();
    }
    chunks.push(Chunk {
        text: &text[start..],
        first_line: start_line,
    });
    // The part before the first marker is a document only if it has content.
    if chunks.len() > 1 && has_no_content(chunks[0].text) {
        chunks.remove(0);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<(&str, usize)> {
        split_documents(text)
            .into_iter()
            .map(|c| (c.text, c.first_line))
            .collect()
    }

    #[test]
    fn single_document_without_marker() {
        assert_eq!(texts("a: 1\nb: 2\n"), [("a: 1\nb: 2\n", 1)]);
    }

    #[test]
    fn leading_marker_and_comments_do_not_make_a_document() {
        assert_eq!(
            texts("# header\n\n---\na: 1\n---\nb: 2\n"),
            [("---\na: 1\n", 3), ("---\nb: 2\n", 5)]
        );
    }

    #[test]
    fn content_before_first_marker_is_document_zero() {
        assert_eq!(texts("a: 1\n---\nb: 2"), [("a: 1\n", 1), ("---\nb: 2", 2)]);
    }

    #[test]
    fn empty_documents_keep_their_index() {
        assert_eq!(
            texts("---\na: 1\n---\n---\nb: 2\n"),
            [("---\na: 1\n", 1), ("---\n", 3), ("---\nb: 2\n", 4)]
        );
    }

    #[test]
    fn markers_need_column_zero_and_a_separator() {
        let t = "a: |\n  ---\n  x\nb: ---x\n----\n";
        assert_eq!(texts(t), [(t, 1)]);
    }

    #[test]
    fn marker_with_content_and_crlf() {
        assert_eq!(
            texts("a: 1\r\n--- \r\nb: 2\r\n---\t# c\n"),
            [("a: 1\r\n", 1), ("--- \r\nb: 2\r\n", 2), ("---\t# c\n", 4)]
        );
    }

    #[test]
    fn bom_is_ignored() {
        assert_eq!(texts("\u{feff}a: 1\n"), [("a: 1\n", 1)]);
    }

    #[test]
    fn empty_text_is_one_empty_document() {
        assert_eq!(texts(""), [("", 1)]);
    }
}
