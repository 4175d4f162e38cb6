//! The frame of every dashboard page (head, style, navigation, flash message) and the pieces the
//! pages share: times, ages, percentages and status badges. No script anywhere: every page
//! reads and every action works with JavaScript off.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use shared::job::JobStatus;

use super::csrf;
use super::flash::Flash;
use super::session::Admin;

/// Inline, so a page is one request and needs no static files.
const STYLE: &str = r#"
:root { --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, sans-serif; color: var(--fg); }
header { display: flex; align-items: center; gap: 1.5rem; padding: .6rem 1.5rem; background: #24292f; color: #fff; }
header a { color: #fff; text-decoration: none; }
header a:hover { text-decoration: underline; }
header nav { display: flex; gap: 1.2rem; flex: 1; align-items: center; }
header nav form { margin-left: auto; }
main { padding: 1rem 1.5rem 3rem; max-width: 1400px; }
h1 { font-size: 1.4rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.1rem; margin: 1.6rem 0 .5rem; }
a { color: #0969da; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--bg); font-weight: 600; white-space: nowrap; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .id { font-family: ui-monospace, monospace; font-size: .85em; }
.muted { color: var(--muted); }
.status { display: inline-block; padding: 0 .55rem; border-radius: 1rem; font-size: .85em; font-weight: 600; }
.status.queued { background: #ddf4ff; color: #0969da; }
.status.running { background: #fff8c5; color: #9a6700; }
.status.retrying { background: #fff1e5; color: #bc4c00; }
.status.succeeded { background: #dafbe1; color: #1a7f37; }
.status.failed { background: #ffebe9; color: #cf222e; }
.status.cancelled { background: #eaeef2; color: #57606a; }
.flash { padding: .6rem 1rem; border-radius: 6px; background: #dafbe1; border: 1px solid #4ac26b; }
.flash.refusal { background: #ffebe9; border-color: #ff8182; }
button { font: inherit; padding: .2rem .8rem; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); cursor: pointer; }
button.primary { background: #1f883d; color: #fff; border-color: #1a7f37; }
button.danger { color: #cf222e; }
header button { background: transparent; color: #fff; border-color: #57606a; }
form.inline { display: inline; margin: 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(11rem, 1fr)); gap: .75rem; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: .6rem .9rem; }
.card .value { font-size: 1.5rem; font-weight: 600; }
.card .label { color: var(--muted); font-size: .85em; }
.card.alarm { border-color: #ff8182; background: #fff5f5; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1.2rem; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
.filters { display: flex; gap: .75rem; align-items: end; flex-wrap: wrap; margin-bottom: 1rem; }
.filters label { display: flex; flex-direction: column; font-size: .85em; color: var(--muted); }
.actions { display: flex; gap: .75rem; align-items: center; margin: 1rem 0; }
input, select { font: inherit; padding: .25rem .4rem; border: 1px solid var(--line); border-radius: 6px; }
.login { max-width: 22rem; }
.login label { display: block; margin: .7rem 0; }
.login input { width: 100%; }
.refused { color: #cf222e; }
pre { background: var(--bg); padding: .75rem; overflow: auto; }
footer { padding: 0 1.5rem 1.5rem; font-size: .85em; }
"#;

/// A whole page. `admin` adds the navigation (with the logout form, which needs their CSRF
/// token); pages seen before logging in have none.
pub fn page(title: &str, admin: Option<&Admin>, flash: Option<Flash>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Menus admin" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "Menus admin" }
                    @if let Some(admin) = admin {
                        nav {
                            a href="/admin" { "Overview" }
                            a href="/admin/jobs" { "Failed jobs" }
                            a href="/admin/jobs?status=" { "All jobs" }
                            a href="/admin/batches" { "Batches" }
                            a href="/admin/audit" { "Audit log" }
                            form method="post" action="/admin/logout" {
                                (csrf::field(&admin.csrf))
                                button { "Log out" }
                            }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some(flash) = flash {
                        p.flash.refusal[flash.is_refusal()] role="status" { (flash.message()) }
                    }
                    (content)
                }
                @if admin.is_some() {
                    footer.muted { "Times are in UTC." }
                }
            }
        }
    }
}

/// The page of an error: its status and message, and the ways on.
pub fn error_page(status: StatusCode, message: &str) -> Markup {
    let title = status.canonical_reason().unwrap_or("Error");
    page(
        title,
        None,
        None,
        html! {
            p.refused { (message) }
            p { a href="/admin" { "Back to the dashboard" } " · " a href="/admin/login" { "Log in" } }
        },
    )
}

/// `items` as a table, a header row of the cells `head` and a row each drawn by `row` (its
/// `tr` included); or the sentence `empty`, muted, when there are none.
pub fn table_or<I>(items: I, empty: &str, head: Markup, row: impl Fn(I::Item) -> Markup) -> Markup
where
    I: IntoIterator,
    I::IntoIter: ExactSizeIterator,
{
    let items = items.into_iter();
    html! {
        @if items.len() == 0 {
            p.muted { (empty) }
        } @else {
            table {
                thead { tr { (head) } }
                tbody {
                    @for item in items { (row(item)) }
                }
            }
        }
    }
}

/// A time, to the second, in UTC.
pub fn time(at: DateTime<Utc>) -> Markup {
    html! { time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M:%S")) } }
}

/// A time that may not have come yet.
pub fn maybe_time(at: Option<DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => time(at),
        None => none(),
    }
}

/// Where there is nothing to show.
pub fn none() -> Markup {
    html! { span.muted { "—" } }
}

/// A job's status as a coloured badge.
pub fn status(status: JobStatus) -> Markup {
    html! { span.status.(status.as_str()) { (status.as_str()) } }
}

/// A duration in seconds, in the largest units that read well: `42 s`, `3 min 5 s`, `2 h 7 min`.
pub fn age(secs: f64) -> String {
    let secs = secs.max(0.0).round() as u64;
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

/// A share (0.25) as a percentage (`25.0 %`).
pub fn percent(share: f64) -> String {
    format!("{:.1} %", share * 100.0)
}

/// An amount of US dollars to the micro-dollar, the unit costs are kept in: `$0.001234`.
pub fn dollars(usd: f64) -> String {
    format!("${usd:.6}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_the_largest_sensible_units() {
        assert_eq!(age(-1.0), "0 s");
        assert_eq!(age(42.4), "42 s");
        assert_eq!(age(185.0), "3 min 5 s");
        assert_eq!(age(7_620.0), "2 h 7 min");
    }

    #[test]
    fn dollars_are_shown_to_the_micro_dollar() {
        assert_eq!(dollars(0.001234), "$0.001234");
        assert_eq!(dollars(12.5), "$12.500000");
    }

    #[test]
    fn a_table_has_a_row_per_item_or_says_it_is_empty() {
        let head = || html! { th { "n" } };
        let row = |n: &u8| html! { tr { td { (n) } } };
        assert_eq!(
            table_or(&[1u8, 2], "none", head(), row).into_string(),
            "<table><thead><tr><th>n</th></tr></thead>\
             <tbody><tr><td>1</td></tr><tr><td>2</td></tr></tbody></table>"
        );
        assert_eq!(
            table_or(&[] as &[u8], "none", head(), row).into_string(),
            "<p class=\"muted\">none</p>"
        );
    }

    #[test]
    fn text_is_escaped_so_job_data_cannot_inject_markup() {
        let html = page("<script>", None, None, html! { p { "<b>error</b>" } }).into_string();
        assert!(html.contains("&lt;b&gt;error&lt;/b&gt;"), "{html}");
        assert!(!html.contains("<script"), "no script at all");
    }
}
