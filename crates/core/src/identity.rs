//! Record identity: a record is its (id, content). Two items with one id and the same content
//! are one record delivered twice; two contents of one id are two records (the later one an
//! update of the former), and both are delivered. The transform drops identical repeats of a page
//! and counts the ids shared by several contents; the sinks do the same per batch, the robot with
//! the digest of what the group sees as the content.

use crate::Record;

/// A batch with its identical repeats removed (see [`distinct`]).
#[derive(Debug)]
pub struct Distinct<T> {
    /// Every distinct content, in batch order, each with whether an earlier item of the batch
    /// had the same id with another content (a later content of its id: an update).
    pub kept: Vec<(T, bool)>,
    /// Items dropped as identical repeats of an earlier one (same id, same content).
    pub repeats: u64,
    /// Items kept although an earlier item had their id with another content.
    pub shared_id: u64,
}

/// Drop the identical repeats of a batch, keeping every distinct content of each id in order.
///
/// A record is identified by (id, content): two items with one id and the same content are one
/// record delivered twice, so the later copy is dropped; two contents of one id are both kept,
/// in order, so a MySQL upsert ends on the last and a robot shows both. Items without an id have
/// no identity and are all kept. `same` says whether two items of one id carry the same content.
pub fn distinct<T>(
    items: Vec<T>,
    id: impl Fn(&T) -> &str,
    same: impl Fn(&T, &T) -> bool,
) -> Distinct<T> {
    use std::collections::HashMap;
    // First over borrowed items (no copy of an id per item), then moving the kept ones out.
    // Per item, None for an identical repeat, else whether it is a later content of its id.
    let mut verdicts: Vec<Option<bool>> = Vec::with_capacity(items.len());
    {
        // Per id, the items holding its distinct contents.
        let mut contents: HashMap<&str, Vec<usize>> = HashMap::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let key = id(item);
            if key.is_empty() {
                verdicts.push(Some(false));
                continue;
            }
            let verdict = match contents.get_mut(key) {
                None => {
                    contents.insert(key, vec![i]);
                    Some(false)
                }
                Some(at) if at.iter().any(|&j| same(&items[j], item)) => None,
                Some(at) => {
                    at.push(i);
                    Some(true)
                }
            };
            verdicts.push(verdict);
        }
    }
    let repeats = verdicts.iter().filter(|v| v.is_none()).count() as u64;
    let shared_id = verdicts.iter().filter(|v| **v == Some(true)).count() as u64;
    let kept = items
        .into_iter()
        .zip(verdicts)
        .filter_map(|(item, verdict)| verdict.map(|later| (item, later)))
        .collect();
    Distinct {
        kept,
        repeats,
        shared_id,
    }
}

/// [`distinct`] over records, whose content is their whole data.
pub fn distinct_records(records: Vec<Record>) -> Distinct<Record> {
    distinct(records, |r| &r.id, |a, b| a.data == b.data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(id: &str, v: i64) -> Record {
        Record::new(id, json!({ "v": v }))
    }

    #[test]
    fn identical_repeats_go_and_every_content_of_an_id_stays_in_order() {
        let got = distinct_records(vec![
            r("a", 1),
            r("b", 2),
            r("a", 1),
            r("a", 3),
            r("", 4),
            r("a", 1),
            r("", 4),
            r("a", 3),
            r("b", 5),
        ]);
        assert_eq!(
            got.kept,
            vec![
                (r("a", 1), false),
                (r("b", 2), false),
                (r("a", 3), true),
                (r("", 4), false),
                (r("", 4), false),
                (r("b", 5), true),
            ]
        );
        assert_eq!((got.repeats, got.shared_id), (3, 2));
    }
}
