//! How a run's counts read, in `ferry run --once`'s summary and `ferry status`: the outcomes a
//! scheme's target can report are always shown (so `0 inserted, 0 updated, 237 unchanged` says
//! plainly that nothing changed), any other outcome only when it happened.

use ferry_core::config::Connection;
use ferry_core::connector::Writes;
use ferry_core::files::SchemeFile;
use ferry_core::write::{OnDuplicate, write_sql};
use ferry_state::Counts;

use crate::app::App;

/// The outcomes always shown for `scheme`'s target.
pub fn always_shown(app: &App, scheme: &SchemeFile) -> Vec<&'static str> {
    let target = &scheme.scheme.target;
    let mut names = match app
        .connection(&target.connection)
        .map(|c| Connection::kind(c).writes)
    {
        Some(Writes::Statement) => {
            let meta = &target.metadata;
            let on_duplicate = meta
                .other("main_sql")
                .and_then(|sql| write_sql(sql, meta.write_mode.as_deref(), meta.id_check).ok())
                .map(|w| w.on_duplicate);
            match on_duplicate {
                Some(OnDuplicate::Keep) => vec!["inserted", "kept"],
                Some(OnDuplicate::Refuse) => vec!["inserted"],
                Some(OnDuplicate::AsWritten | OnDuplicate::Replace) => vec!["written"],
                _ => vec!["inserted", "updated", "unchanged"],
            }
        }
        Some(Writes::Discards) => vec!["accepted"],
        _ => vec!["written", "skipped"],
    };
    names.push("dead-lettered");
    names
}

/// `5 inserted, 0 updated, 0 unchanged, 1 dead-lettered`.
pub fn text(counts: &Counts, always: &[&str]) -> String {
    counts
        .named()
        .iter()
        .filter(|(name, n)| *n > 0 || always.contains(name))
        .map(|(name, n)| format!("{n} {name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `; 12 shared an id with different content` when records of a page shared an id with another
/// content: each content was delivered, but a scheme whose `id` does not identify a record (seed
/// 000 keys contacts on `name`) wants a look.
pub fn shared_id_note(shared_id: i64) -> String {
    if shared_id <= 0 {
        return String::new();
    }
    format!("; {shared_id} shared an id with different content")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_targets_outcomes_always_show_and_others_when_they_happened() {
        let counts = Counts {
            unchanged: 237,
            skipped: 2,
            ..Counts::default()
        };
        assert_eq!(
            text(
                &counts,
                &["inserted", "updated", "unchanged", "dead-lettered"]
            ),
            "0 inserted, 0 updated, 237 unchanged, 2 skipped, 0 dead-lettered"
        );
    }
}
