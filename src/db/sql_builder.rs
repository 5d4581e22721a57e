//! A statement assembled from optional parts (the listings' filters) whose placeholders number
//! themselves: each bound value writes the next `$n` and is bound in that order, so a filter can
//! never shift another's parameter. Only SQL text written in `db/` goes in; user input is bound.
//!
//! Why not `sqlx::QueryBuilder`: over the `Any` driver (sqlx 0.8) its `push_bind` writes `?`
//! (`AnyArguments` keeps the trait's default placeholder), which Postgres rejects. This is the
//! same idea with `$n`, which both engines accept.

use super::AnyQuery;

/// A value bound by [`SqlBuilder::push_bind`]: the types the filters need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Bind {
    Int(i64),
    Text(String),
}

impl From<i64> for Bind {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<String> for Bind {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}

impl From<&str> for Bind {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

/// SQL text and the values of its `$1…$n`, in order.
#[derive(Clone, Debug, Default)]
pub(crate) struct SqlBuilder {
    sql: String,
    binds: Vec<Bind>,
}

impl SqlBuilder {
    pub(crate) fn new(sql: impl Into<String>) -> Self {
        Self { sql: sql.into(), binds: Vec::new() }
    }

    /// Appends SQL text (never user input: that goes through [`Self::push_bind`]).
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends the next placeholder and binds `value` to it.
    pub(crate) fn push_bind(&mut self, value: impl Into<Bind>) -> &mut Self {
        self.binds.push(value.into());
        self.sql.push('$');
        self.sql.push_str(&self.binds.len().to_string());
        self
    }

    #[cfg(test)]
    fn sql(&self) -> &str {
        &self.sql
    }

    /// The statement with its values bound, ready to run.
    pub(crate) fn build(&self) -> AnyQuery<'_> {
        self.binds.iter().fold(sqlx::query(&self.sql), |query, bind| match bind {
            Bind::Int(value) => query.bind(*value),
            Bind::Text(value) => query.bind(value.as_str()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_themselves_in_bind_order() {
        let mut b = SqlBuilder::new("SELECT id FROM t WHERE 1 = 1");
        b.push(" AND a = ").push_bind("x").push(" AND (b = ").push_bind(7_i64).push(" OR c = ").push_bind(7_i64);
        b.push(")").push(" LIMIT ").push_bind(10_i64);
        assert_eq!(b.sql(), "SELECT id FROM t WHERE 1 = 1 AND a = $1 AND (b = $2 OR c = $3) LIMIT $4");
        assert_eq!(b.binds, vec![Bind::from("x"), Bind::Int(7), Bind::Int(7), Bind::Int(10)]);
    }
}
