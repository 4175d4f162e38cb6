//! Reading the tab-separated tables in `data/`, so that the food and synonym tables are plain
//! text a reviewer can read and diff, compiled into the binary with `include_str!`.

/// One row of a table: its 1-based line number in the file (for messages) and its fields.
pub(super) struct Row {
    pub(super) line: usize,
    pub(super) fields: Vec<&'static str>,
}

/// The rows of `text`: blank lines and lines starting with `#` are skipped; fields are split on
/// tabs and trimmed. Trailing empty fields may be left out, so a row may have fewer fields than
/// the table has columns.
pub(super) fn rows(text: &'static str) -> impl Iterator<Item = Row> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|(i, line)| Row {
            line: i + 1,
            fields: line.split('\t').map(str::trim).collect(),
        })
}

/// For a table's test: panics on the first row that does not parse, and gives the first key
/// (a row's first field) listed a second time, if any.
#[cfg(test)]
pub(super) fn repeated_key<T>(
    rows: impl Iterator<Item = Result<(&'static str, T), String>>,
) -> Option<&'static str> {
    let mut seen = std::collections::HashSet::new();
    rows.map(|row| row.unwrap_or_else(|e| panic!("{e}")).0)
        .find(|key| !seen.insert(*key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_blank_lines_are_skipped_and_lines_counted_from_one() {
        let rows: Vec<Row> =
            rows("# a comment\n\nbeef\tmeat\n  \nsalt\tspices\t\tsalty\n").collect();
        let seen: Vec<(usize, Vec<&str>)> = rows.into_iter().map(|r| (r.line, r.fields)).collect();
        assert_eq!(
            seen,
            [
                (3, vec!["beef", "meat"]),
                (5, vec!["salt", "spices", "", "salty"])
            ]
        );
    }

    #[test]
    fn the_first_repeated_key_is_found() {
        let rows = ["a", "b", "a", "b"].map(|key| Ok((key, ())));
        assert_eq!(repeated_key(rows.into_iter()), Some("a"));
        assert_eq!(repeated_key([Ok(("a", ()))].into_iter()), None);
    }
}
