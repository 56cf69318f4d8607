//! `gridwatch cases verify`: every evidence image of a case (or of the whole store)
//! against its SHA-256 and the case's evidence chain ([`crate::cases::integrity`]).

use clap::Args;

use super::cases::DataArgs;
use crate::cases::integrity::verify_case;
use crate::cases::DedupConfig;

/// Arguments of `cases verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The case to check (all cases when left out).
    #[arg(long, value_name = "ID")]
    case: Option<i64>,
    /// Print one JSON object per case (case_id, items, head, problems) instead of text.
    #[arg(long)]
    json: bool,
}

/// Checks; fails (exit status 1) naming each item that does not match.
pub fn verify(a: VerifyArgs) -> anyhow::Result<()> {
    let store = a.data.open(DedupConfig::default())?;
    let ids: Vec<i64> = match a.case {
        Some(id) => vec![id],
        None => {
            let mut ids: Vec<i64> = store
                .cases(None, i64::MAX as usize)?
                .iter()
                .map(|c| c.id)
                .collect();
            ids.sort_unstable();
            ids
        }
    };
    let (mut bad, mut items) = (Vec::new(), 0);
    for id in &ids {
        let check = verify_case(&*store, *id)?;
        items += check.items;
        if a.json {
            println!("{}", serde_json::to_string(&check)?);
        } else if check.problems.is_empty() {
            println!(
                "case {id}: {} evidence item(s), chain head {}",
                check.items, check.head
            );
        }
        for p in &check.problems {
            if !a.json {
                eprintln!("{p}");
            }
            bad.push(p.clone());
        }
    }
    if !bad.is_empty() {
        anyhow::bail!(
            "{} problem(s) in {} evidence item(s) of {} case(s) of {}",
            bad.len(),
            items,
            ids.len(),
            store.name()
        );
    }
    if !a.json {
        println!(
            "{} case(s), {items} evidence item(s): every image matches its SHA-256 and the chain",
            ids.len()
        );
    }
    Ok(())
}
