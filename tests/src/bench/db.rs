//! Scratch PostgreSQL databases (`dpg_bench_<random>`) on the local server.

use anyhow::{Context, anyhow};
use sea_orm::sqlx::postgres::PgConnection;
use sea_orm::sqlx::{self, AssertSqlSafe, Connection};
use uuid::Uuid;

/// A database created for this run; call [`ScratchDatabase::drop_now`] when done.
pub struct ScratchDatabase {
    admin_url: String,
    pub name: String,
    pub url: url::Url,
}

impl ScratchDatabase {
    /// Creates `dpg_bench_<random><suffix>` on the server of `admin_url`.
    pub async fn create(admin_url: &str, suffix: &str) -> anyhow::Result<ScratchDatabase> {
        let name = format!("dpg_bench_{}{suffix}", Uuid::new_v4().simple());
        let mut url = url::Url::parse(admin_url).context("--postgres-url is not a valid URL")?;
        url.set_path(&name);
        let mut admin = connect(admin_url).await?;
        // The name is generated here (hex and a fixed suffix); identifiers cannot be bound.
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .with_context(|| format!("could not create database {name}"))?;
        admin.close().await.ok();
        Ok(ScratchDatabase {
            admin_url: admin_url.to_string(),
            name,
            url,
        })
    }

    /// Runs statements (several, separated by `;`) in this database.
    pub async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        let mut conn = connect(self.url.as_str()).await?;
        sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&mut conn)
            .await
            .with_context(|| format!("SQL failed in {}", self.name))?;
        conn.close().await.ok();
        Ok(())
    }

    /// Drops the database, closing any connection still open on it.
    pub async fn drop_now(self) -> anyhow::Result<()> {
        let mut admin = connect(&self.admin_url).await?;
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await
        .with_context(|| format!("could not drop database {}", self.name))?;
        admin.close().await.ok();
        Ok(())
    }
}

async fn connect(url: &str) -> anyhow::Result<PgConnection> {
    // The URL may hold a password: never print it.
    PgConnection::connect(url)
        .await
        .map_err(|error| anyhow!("PostgreSQL (--postgres-url) does not answer: {error}"))
}
