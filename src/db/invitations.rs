//! Queries on `invitations`: who invited whom, and the rewards promised and paid for it.

use sqlx::{Any, Executor, Row};

use crate::domain::time::now_ms;

/// A signup through an invitation, with the rewards due once the invitee is verified.
pub struct Invitation {
    pub inviter_id: i64,
    pub invitee_id: i64,
    pub inviter_reward: i64,
    pub invitee_reward: i64,
}

pub async fn insert<'e>(
    db: impl Executor<'e, Database = Any>,
    invitation: &Invitation,
    code: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO invitations (inviter_id, invitee_id, code, inviter_reward, invitee_reward, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(invitation.inviter_id)
    .bind(invitation.invitee_id)
    .bind(code)
    .bind(invitation.inviter_reward)
    .bind(invitation.invitee_reward)
    .bind(now_ms())
    .execute(db)
    .await
    .map(|_| ())
}

/// The invitee's invitation whose rewards are not paid yet.
pub async fn unrewarded<'e>(
    db: impl Executor<'e, Database = Any>,
    invitee_id: i64,
) -> Result<Option<Invitation>, sqlx::Error> {
    sqlx::query(
        "SELECT inviter_id, invitee_id, inviter_reward, invitee_reward FROM invitations \
         WHERE invitee_id = $1 AND rewarded_at IS NULL",
    )
    .bind(invitee_id)
    .fetch_optional(db)
    .await?
    .map(|r| {
        Ok(Invitation {
            inviter_id: r.try_get("inviter_id")?,
            invitee_id: r.try_get("invitee_id")?,
            inviter_reward: r.try_get("inviter_reward")?,
            invitee_reward: r.try_get("invitee_reward")?,
        })
    })
    .transpose()
}

/// Who invited `invitee_id`, if anyone.
pub async fn inviter_of<'e>(
    db: impl Executor<'e, Database = Any>,
    invitee_id: i64,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query("SELECT inviter_id FROM invitations WHERE invitee_id = $1")
        .bind(invitee_id)
        .fetch_optional(db)
        .await?
        .map(|r| r.try_get("inviter_id"))
        .transpose()
}

pub async fn mark_rewarded<'e>(db: impl Executor<'e, Database = Any>, invitee_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE invitations SET rewarded_at = $2 WHERE invitee_id = $1 AND rewarded_at IS NULL")
        .bind(invitee_id)
        .bind(now_ms())
        .execute(db)
        .await
        .map(|_| ())
}

/// What the inviter has earned: the sum of paid inviter rewards.
pub async fn earned<'e>(db: impl Executor<'e, Database = Any>, inviter_id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "SELECT CAST(COALESCE(SUM(inviter_reward), 0) AS BIGINT) AS total_reward FROM invitations \
         WHERE inviter_id = $1 AND rewarded_at IS NOT NULL",
    )
    .bind(inviter_id)
    .fetch_one(db)
    .await?
    .try_get("total_reward")
}

/// An inviter's invitees with the reward each earned them: `(email, joined at, inviter reward,
/// rewarded at)`, newest first; the reward is only paid once `rewarded at` is set.
pub async fn invitees_with_rewards<'e>(
    db: impl Executor<'e, Database = Any>,
    inviter_id: i64,
) -> Result<Vec<(String, i64, i64, Option<i64>)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT u.email, u.created_at, COALESCE(i.inviter_reward, 0) AS reward, i.rewarded_at FROM users u \
         LEFT JOIN invitations i ON i.invitee_id = u.id AND i.inviter_id = $1 \
         WHERE u.invited_by = $1 ORDER BY u.id DESC LIMIT 500",
    )
    .bind(inviter_id)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("email")?, r.try_get("created_at")?, r.try_get("reward")?, r.try_get("rewarded_at")?)))
        .collect()
}
