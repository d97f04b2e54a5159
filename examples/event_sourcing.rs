//! Event sourcing: a bank whose accounts are domain events (AccountOpened, Deposited,
//! Withdrawn) and whose balances are a projection of them, rebuilt from the log.
//!
//! Run with `cargo run --example event_sourcing`.

use azoth::{AzothError, Config, Database, ProjectionContext, SyncMode, decode_payload};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct AccountOpened {
    account: String,
    owner: String,
}

#[derive(Serialize, Deserialize)]
struct Deposited {
    account: String,
    amount: u64,
}

#[derive(Serialize, Deserialize)]
struct Withdrawn {
    account: String,
    amount: u64,
}

fn balance_key(account: &str) -> Vec<u8> {
    format!("balance:{account}").into_bytes()
}

fn balance(view: &ProjectionContext<'_>, account: &str) -> azoth::Result<Option<u64>> {
    Ok(view
        .get(&balance_key(account))?
        .and_then(|v| v.try_into().ok())
        .map(u64::from_be_bytes))
}

/// Balances from events. Deterministic: it reads only the view as of the event, so replaying
/// the log gives the same balances. An overdraft refuses the event; nothing is logged.
fn bank(kind: &str, payload: &[u8], view: &mut ProjectionContext<'_>) -> azoth::Result<()> {
    match kind {
        "AccountOpened" => {
            let e: AccountOpened = decode_payload(payload)?;
            view.put(
                format!("owner:{}", e.account).as_bytes(),
                e.owner.as_bytes(),
            )?;
            view.put(&balance_key(&e.account), &0u64.to_be_bytes())?;
        }
        "Deposited" => {
            let e: Deposited = decode_payload(payload)?;
            let old = balance(view, &e.account)?
                .ok_or_else(|| AzothError::NotFound(format!("account {}", e.account)))?;
            view.put(&balance_key(&e.account), &(old + e.amount).to_be_bytes())?;
        }
        "Withdrawn" => {
            let e: Withdrawn = decode_payload(payload)?;
            let old = balance(view, &e.account)?
                .ok_or_else(|| AzothError::NotFound(format!("account {}", e.account)))?;
            let new = old
                .checked_sub(e.amount)
                .ok_or_else(|| AzothError::Config(format!("overdraft on {}", e.account)))?;
            view.put(&balance_key(&e.account), &new.to_be_bytes())?;
        }
        _ => {}
    }
    Ok(())
}

fn print_balances(db: &Database) -> azoth::Result<()> {
    for (key, value) in db.scan_prefix(b"balance:")? {
        let amount = u64::from_be_bytes(value.try_into().unwrap_or([0; 8]));
        println!("  {} = {amount}", String::from_utf8_lossy(&key));
    }
    Ok(())
}

fn main() -> azoth::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = || {
        Config::new(dir.path())
            .sync_mode(SyncMode::Always)
            .projection(bank)
    };
    let db = Database::open_with(config())?;

    for (account, owner) in [("acc-1", "Ada"), ("acc-2", "Grace")] {
        db.append_typed(
            "AccountOpened",
            &AccountOpened {
                account: account.into(),
                owner: owner.into(),
            },
        )?;
    }
    db.append_typed(
        "Deposited",
        &Deposited {
            account: "acc-1".into(),
            amount: 100,
        },
    )?;
    db.append_typed(
        "Deposited",
        &Deposited {
            account: "acc-2".into(),
            amount: 40,
        },
    )?;
    db.append_typed(
        "Withdrawn",
        &Withdrawn {
            account: "acc-1".into(),
            amount: 30,
        },
    )?;
    let refused = db.append_typed(
        "Withdrawn",
        &Withdrawn {
            account: "acc-2".into(),
            amount: 500,
        },
    );
    println!("overdraft refused: {}", refused.is_err());

    println!("balances:");
    print_balances(&db)?;

    // Throw the view away and derive it again from the log alone.
    db.rebuild_view()?;
    println!("balances rebuilt from {} events:", db.get_events()?.len());
    print_balances(&db)?;

    // After a restart the view is there again: flushed state plus a replay of the tail.
    db.close()?;
    let db = Database::open_with(config())?;
    println!("balances after reopening:");
    print_balances(&db)?;
    db.close()?;
    Ok(())
}
