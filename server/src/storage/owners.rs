//! Cluster mode: which node owns each live alert, as rows with a fencing number.
//!
//! The rules (docs/cluster.md): taking an alert over adds one to its fence; each running node
//! (one start of a process: its instance id) beats in `cluster_nodes`, and the alerts of an
//! instance whose heartbeat stopped may be adopted; the durable writer commits an alert's items
//! only while the row still names its instance and fence ([`fenced_out`], in the commit's own
//! transaction). The heartbeat is a row of its own, so that it never locks the owner rows the
//! writer reads.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

use crate::storage::Db;

/// Who owns an alert now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The owning node.
    pub node_id: String,
    /// Its fencing number.
    pub fence: i64,
    /// When it last renewed (ms).
    pub renewed_at: i64,
}

fn stmt(db: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match db.get_database_backend() {
        // Written with `$n`; SQLite accepts `?n` for the same numbered parameters.
        DbBackend::Sqlite => sql.replace('$', "?"),
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(db.get_database_backend(), sql, values)
}

/// Takes an active alert for `node` whoever held it: the fence grows by one. Returns the new
/// fence, or `None` when the alert is not active (it ended meanwhile: nobody owns it).
pub async fn take(db: &Db, alert_id: &str, node: &str, now: i64) -> Result<Option<i64>, DbErr> {
    let sql = "INSERT INTO alert_owners (alert_id, node_id, fence, renewed_at) SELECT $1, $2, 1, $3 \
               WHERE EXISTS (SELECT 1 FROM alerts WHERE id = $1 AND status = 'active') \
               ON CONFLICT (alert_id) DO UPDATE SET node_id = excluded.node_id, \
               fence = alert_owners.fence + 1, renewed_at = excluded.renewed_at RETURNING fence";
    let row = db.query_one_raw(stmt(db, sql, vec![alert_id.into(), node.into(), now.into()])).await?;
    row.map(|r| r.try_get("", "fence")).transpose()
}

/// True while the alert is active (a mirror that hears nothing checks that it did not miss
/// the end).
pub async fn is_active(db: &Db, alert_id: &str) -> Result<bool, DbErr> {
    let sql = "SELECT COUNT(*) AS n FROM alerts WHERE id = $1 AND status = 'active'";
    let row = db.query_one_raw(stmt(db, sql, vec![alert_id.into()])).await?;
    Ok(row.map(|r| r.try_get::<i64>("", "n")).transpose()?.unwrap_or(0) > 0)
}

/// Takes an active alert whose owner's heartbeat stopped before `cutoff` (or that has none),
/// unless another node did first. Returns the new fence when this node got it.
pub async fn adopt(db: &Db, alert_id: &str, node: &str, cutoff: i64, now: i64) -> Result<Option<i64>, DbErr> {
    let sql = "INSERT INTO alert_owners (alert_id, node_id, fence, renewed_at) SELECT $1, $2, 1, $3 \
               WHERE EXISTS (SELECT 1 FROM alerts WHERE id = $1 AND status = 'active') \
               ON CONFLICT (alert_id) DO UPDATE SET node_id = excluded.node_id, \
               fence = alert_owners.fence + 1, renewed_at = excluded.renewed_at \
               WHERE NOT EXISTS (SELECT 1 FROM cluster_nodes n \
               WHERE n.node_id = alert_owners.node_id AND n.seen_at >= $4) RETURNING fence";
    let row = db
        .query_one_raw(stmt(db, sql, vec![alert_id.into(), node.into(), now.into(), cutoff.into()]))
        .await?;
    row.map(|r| r.try_get("", "fence")).transpose()
}

/// The owner of an alert, if any node took it.
pub async fn of(db: &Db, alert_id: &str) -> Result<Option<Owner>, DbErr> {
    let sql = "SELECT node_id, fence, renewed_at FROM alert_owners WHERE alert_id = $1";
    let row = db.query_one_raw(stmt(db, sql, vec![alert_id.into()])).await?;
    row.map(|r| {
        Ok(Owner {
            node_id: r.try_get("", "node_id")?,
            fence: r.try_get("", "fence")?,
            renewed_at: r.try_get("", "renewed_at")?,
        })
    })
    .transpose()
}

/// This instance is alive (and heartbeats older than an hour are forgotten).
pub async fn heartbeat(db: &Db, instance: &str, now: i64) -> Result<(), DbErr> {
    let sql = "INSERT INTO cluster_nodes (node_id, seen_at) VALUES ($1, $2) \
               ON CONFLICT (node_id) DO UPDATE SET seen_at = excluded.seen_at";
    db.execute_raw(stmt(db, sql, vec![instance.into(), now.into()])).await?;
    let sql = "DELETE FROM cluster_nodes WHERE seen_at < $1";
    db.execute_raw(stmt(db, sql, vec![(now - 3_600_000).into()])).await?;
    Ok(())
}

/// Active alerts whose owner's heartbeat stopped before `cutoff`, or that no node took although
/// they started before it.
pub async fn orphans(db: &Db, cutoff: i64, limit: u64) -> Result<Vec<String>, DbErr> {
    let sql = "SELECT a.id FROM alerts a LEFT JOIN alert_owners o ON o.alert_id = a.id \
               LEFT JOIN cluster_nodes n ON n.node_id = o.node_id \
               WHERE a.status = 'active' AND ((o.alert_id IS NULL AND a.started_at < $1) \
               OR (o.alert_id IS NOT NULL AND (n.node_id IS NULL OR n.seen_at < $1))) \
               ORDER BY a.started_at LIMIT $2";
    let rows = db.query_all_raw(stmt(db, sql, vec![cutoff.into(), (limit as i64).into()])).await?;
    rows.into_iter().map(|r| r.try_get("", "id")).collect()
}

/// Alerts `instance` owns that are no longer active (another node ended them and the word did
/// not arrive), and owner rows of ended alerts, which go.
pub async fn ended(db: &Db, instance: &str) -> Result<Vec<String>, DbErr> {
    let sql = "SELECT o.alert_id FROM alert_owners o JOIN alerts a ON a.id = o.alert_id \
               WHERE o.node_id = $1 AND a.status <> 'active'";
    let rows = db.query_all_raw(stmt(db, sql, vec![instance.into()])).await?;
    let ids = rows.into_iter().map(|r| r.try_get("", "alert_id")).collect::<Result<Vec<String>, _>>()?;
    let sql = "DELETE FROM alert_owners WHERE alert_id IN \
               (SELECT id FROM alerts WHERE status <> 'active') AND node_id <> $1";
    db.execute_raw(stmt(db, sql, vec![instance.into()])).await?;
    Ok(ids)
}

/// Forgets the owner row of an ended alert, if `node` holds it.
pub async fn release(db: &Db, alert_id: &str, node: &str) -> Result<(), DbErr> {
    let sql = "DELETE FROM alert_owners WHERE alert_id = $1 AND node_id = $2";
    db.execute_raw(stmt(db, sql, vec![alert_id.into(), node.into()])).await?;
    Ok(())
}

/// Inside a commit's transaction: of `claims` (alert → fence this node holds it with), the
/// alerts this node no longer owns. On PostgreSQL the rows are locked (`FOR SHARE`) until the
/// commit, so a takeover waits for it or the commit sees the takeover: never both.
pub async fn fenced_out<C: ConnectionTrait>(
    txn: &C,
    node: &str,
    claims: &HashMap<String, i64>,
) -> Result<Vec<String>, DbErr> {
    if claims.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Value> = claims.keys().map(|k| k.as_str().into()).collect();
    let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let lock = if txn.get_database_backend() == DbBackend::Postgres { " FOR SHARE" } else { "" };
    let sql = format!(
        "SELECT alert_id, node_id, fence FROM alert_owners WHERE alert_id IN ({}){lock}",
        marks.join(", ")
    );
    let rows = txn.query_all_raw(stmt(txn, &sql, ids)).await?;
    let mut held = HashMap::new();
    for r in rows {
        let id: String = r.try_get("", "alert_id")?;
        let owner: String = r.try_get("", "node_id")?;
        let fence: i64 = r.try_get("", "fence")?;
        held.insert(id, (owner, fence));
    }
    Ok(claims
        .iter()
        .filter(|(id, fence)| held.get(*id).is_none_or(|(o, f)| o != node || f != *fence))
        .map(|(id, _)| id.clone())
        .collect())
}
