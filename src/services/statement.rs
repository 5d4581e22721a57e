//! Monthly statements: every ledger row of one UTC month (per-request settlements included)
//! between an opening and a closing balance line, as CSV, so that the amounts sum exactly to
//! `closing - opening`. Only ever the asking user's rows; no axum types here.
//!
//! Rows are in time order (ties by id). The file is streamed in chunks, so a month of millions
//! of requests never sits in memory. The closing line is written last from the rows actually
//! sent (opening + their sum, integers): the statement adds up even while new rows arrive during
//! the download.

use futures_util::Stream;
use sqlx::AnyPool;

use super::codes::csv_field;
use crate::db::ledger::{self, StatementCursor, StatementRow};
use crate::domain::money::Money;
use crate::domain::time::{now_ms, parse_utc_month, utc_iso};
use crate::state::AppState;

/// Rows read per query while streaming.
const CHUNK: i64 = 1000;

/// The CSV's first line.
pub const HEADER: &str = "time,kind,amount,balance_after,description,model,reference\n";

/// A calendar month in UTC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Month {
    /// `YYYY-MM`.
    pub label: String,
    /// Unix ms of its first instant.
    pub start: i64,
    /// Unix ms of the next month's first instant.
    pub end: i64,
}

impl Month {
    /// Parses `YYYY-MM`; the error names the expected form.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        match parse_utc_month(raw) {
            Some((start, end)) => Ok(Self { label: raw.to_string(), start, end }),
            None => Err("month: expected a month as YYYY-MM (UTC), e.g. 2026-11"),
        }
    }

    /// The download's file name.
    pub fn file_name(&self) -> String {
        format!("statement-{}.csv", self.label)
    }
}

enum Phase {
    Opening,
    Rows,
    Done,
}

struct Cursor {
    pool: AnyPool,
    user_id: i64,
    month: Month,
    currency: String,
    phase: Phase,
    opening: i64,
    /// The opening balance plus every amount sent so far.
    running: i64,
    /// The last row sent.
    after: Option<StatementCursor>,
}

/// The user's statement for `month` as CSV chunks. The opening balance (every ledger row before
/// the month) is read before the first byte, so a database failure there is an error the caller
/// can still answer with a status; a failure later ends the stream with an error, which aborts
/// the download rather than leaving a statement that does not add up.
pub async fn csv(
    state: &AppState,
    user_id: i64,
    month: Month,
) -> Result<impl Stream<Item = Result<String, sqlx::Error>> + Send + 'static, sqlx::Error> {
    let pool = state.db().pool().clone();
    let opening = ledger::sum_before(&pool, user_id, month.start).await?;
    let currency = state.site().currency.clone();
    let cursor =
        Cursor { pool, user_id, month, currency, phase: Phase::Opening, opening, running: opening, after: None };
    Ok(futures_util::stream::try_unfold(cursor, next_chunk))
}

async fn next_chunk(mut c: Cursor) -> Result<Option<(String, Cursor)>, sqlx::Error> {
    match c.phase {
        Phase::Opening => {
            let note = format!("opening balance {} ({} UTC, {})", c.month.label, utc_iso(c.month.start), c.currency);
            let out = format!("{HEADER}{}", balance_line(c.month.start, "opening_balance", c.opening, &note));
            c.phase = Phase::Rows;
            Ok(Some((out, c)))
        }
        Phase::Rows => {
            let rows = ledger::statement_rows(&c.pool, c.user_id, (c.month.start, c.month.end), c.after, CHUNK).await?;
            if rows.is_empty() {
                // The end of the month, or now for the current month.
                let at = c.month.end.min(now_ms());
                let note = format!(
                    "closing balance {} ({} UTC, {}); change {}",
                    c.month.label,
                    utc_iso(at),
                    c.currency,
                    Money(c.running - c.opening)
                );
                let out = balance_line(at, "closing_balance", c.running, &note);
                c.phase = Phase::Done;
                return Ok(Some((out, c)));
            }
            let mut out = String::with_capacity(rows.len() * 96);
            for r in &rows {
                c.running += r.row.amount;
                c.after = Some(StatementCursor { created_at: r.row.created_at, id: r.row.id });
                out.push_str(&row_line(r));
            }
            Ok(Some((out, c)))
        }
        Phase::Done => Ok(None),
    }
}

/// An opening or closing line: no amount (it is not a change), the balance in `balance_after`.
fn balance_line(at: i64, kind: &str, balance: i64, note: &str) -> String {
    format!("{},{kind},,{},{},,\n", utc_iso(at), Money(balance), csv_field(note))
}

/// One ledger row. Amounts are written as we format them (`-0.000150`), never defused: they are
/// numbers the spreadsheet must add up. Every text cell — notes, models and references can carry
/// user text — is quoted and defused.
fn row_line(r: &StatementRow) -> String {
    let row = &r.row;
    format!(
        "{},{},{},{},{},{},{}\n",
        utc_iso(row.created_at),
        csv_field(&row.kind),
        Money(row.amount),
        Money(row.balance_after),
        csv_field(row.note.as_deref().unwrap_or_default()),
        csv_field(r.model.as_deref().unwrap_or_default()),
        csv_field(row.reference.as_deref().unwrap_or_default()),
    )
}

/// The user's ledger rows other than per-request charges, newest first.
pub async fn recent(state: &AppState, user_id: i64, limit: i64) -> Result<Vec<ledger::LedgerRow>, sqlx::Error> {
    ledger::history(state.db().pool(), user_id, limit).await
}

/// A page of the user's whole ledger, newest first, below `before` (keyset paging).
pub async fn page(
    state: &AppState,
    user_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<ledger::FullRow>, sqlx::Error> {
    ledger::page(state.db().pool(), user_id, before, limit).await
}

/// The user's charges per UTC day since `since_ms`: `(day, amount)`.
pub async fn charges_per_day(state: &AppState, user_id: i64, since_ms: i64) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    ledger::charges_per_day(state.db().pool(), user_id, since_ms).await
}

/// What the user owes (0 when nothing).
pub async fn debt(state: &AppState, user_id: i64) -> Result<i64, sqlx::Error> {
    ledger::debt(state.db().pool(), user_id).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::ledger::FullRow;

    #[test]
    fn months_are_checked() {
        let month = Month::parse("2026-11").unwrap();
        assert_eq!((month.start, month.end), (1_793_491_200_000, 1_796_083_200_000));
        assert_eq!(month.file_name(), "statement-2026-11.csv");
        assert!(Month::parse("2026-13").unwrap_err().contains("YYYY-MM"));
        assert!(Month::parse("november").is_err());
    }

    #[test]
    fn text_cells_are_defused_and_numbers_are_not() {
        let row = FullRow {
            id: 7,
            created_at: 1_793_491_200_000,
            kind: "adjustment".into(),
            amount: -2_500_000_000,
            balance_after: 150_000,
            reference: Some("@SUM(A1)".into()),
            note: Some("=HYPERLINK(\"http://evil\",\"x\"), more".into()),
        };
        let line = row_line(&StatementRow { row, model: Some("+cmd".into()) });
        assert_eq!(
            line,
            "2026-11-01T00:00:00.000Z,adjustment,-2.50,0.00015,\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\"), more\",'+cmd,'@SUM(A1)\n"
        );
        assert_eq!(
            balance_line(0, "opening_balance", 0, "-x"),
            "1970-01-01T00:00:00.000Z,opening_balance,,0.00,'-x,,\n"
        );
    }
}
