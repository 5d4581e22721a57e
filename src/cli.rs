//! The command line. `burncloud` alone is `burncloud serve`. Every failure prints one line on
//! stderr naming what to fix, and exits non-zero: 2 for a configuration error, 1 otherwise —
//! except `audit`, for cron: 0 clean books, 1 offenders found, 2 could not check.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::app::Application;
use crate::config::Config;
use crate::db::{self, Db};
use crate::domain::email::Email;
use crate::services::accounts;
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(name = "burncloud", version, about = "BurnCloud LLM gateway and console")]
pub struct Cli {
    /// TOML configuration file (environment variables override it).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve {
        /// Apply this bootstrap file (channels, prices, groups, users, keys) before serving.
        #[arg(long, value_name = "FILE.toml")]
        bootstrap: Option<PathBuf>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage admin accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Exit 0 when the server on BURNCLOUD_LISTEN answers /healthz (for container health checks).
    Healthcheck,
    /// Check the books: for every user, the ledger sums to the balance, leases hold no more than
    /// the balance, and the balance is not negative. Prints each offender; exits 0 when clean, 1
    /// with offenders, 2 when the check could not run (for cron).
    Audit,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a root admin, or reset an existing account to an active root admin.
    Create {
        /// The admin's email address.
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Runs a parsed command line to completion.
pub async fn run(cli: Cli) -> ExitCode {
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("burncloud: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&config);
    let result = match cli.command.unwrap_or(Command::Serve { bootstrap: None }) {
        Command::Serve { bootstrap } => serve(config, bootstrap).await,
        Command::Migrate => migrate(&config).await,
        Command::Admin { command: AdminCommand::Create { email, password_stdin } } => {
            admin_create(&config, &email, password_stdin).await
        }
        Command::Healthcheck => healthcheck(&config).await,
        // Its own exit codes: offenders are not a failure to run.
        Command::Audit => return audit(&config).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("burncloud: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config, bootstrap: Option<PathBuf>) -> Result<(), String> {
    let app = Application::build(config).await.map_err(|e| e.to_string())?;
    if let Some(file) = bootstrap {
        app.bootstrap(&file).await.map_err(|e| e.to_string())?;
    }
    app.run_until_stopped().await.map_err(|e| format!("server error: {e}"))
}

async fn open_migrated(config: &Config) -> Result<Db, String> {
    let db = Db::connect(&config.database, config.database_max_connections)
        .await
        .map_err(|e| format!("DATABASE_URL: {e}"))?;
    db::migrate::run(&db).await.map_err(|e| format!("DATABASE_URL: migrating the database failed: {e}"))?;
    Ok(db)
}

async fn migrate(config: &Config) -> Result<(), String> {
    let db = open_migrated(config).await?;
    db.close().await;
    tracing::info!(backend = db.backend().name(), "migrations applied");
    Ok(())
}

async fn admin_create(config: &Config, email: &str, password_stdin: bool) -> Result<(), String> {
    if !password_stdin {
        return Err("admin create: pass the password on standard input with --password-stdin".into());
    }
    let email = Email::parse(email).map_err(|e| format!("admin create: --email: {e}"))?;
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .map_err(|e| format!("admin create: cannot read the password from standard input: {e}"))?;
    let password = password.strip_suffix('\n').unwrap_or(&password);
    let password = password.strip_suffix('\r').unwrap_or(password);
    let db = open_migrated(config).await?;
    let result = accounts::create_or_reset_admin(&db, &email, password).await;
    db.close().await;
    result.map_err(|e| format!("admin create: {e}"))?;
    println!("root admin {email} is ready");
    Ok(())
}

async fn healthcheck(config: &Config) -> Result<(), String> {
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(head)
    };
    match tokio::time::timeout(Duration::from_secs(5), probe).await {
        Ok(Ok(head)) if head.starts_with(b"HTTP/1.1 200") => Ok(()),
        Ok(Ok(head)) => Err(format!("healthcheck: {addr} answered {:?}", String::from_utf8_lossy(&head))),
        Ok(Err(e)) => Err(format!("healthcheck: {addr}: {e}")),
        Err(_) => Err(format!("healthcheck: {addr}: no answer within 5 s")),
    }
}

/// `burncloud audit`. Reads only: it neither migrates nor repairs (a wrong balance is for an
/// operator to look into, with the ledger as the record).
async fn audit(config: &Config) -> ExitCode {
    let db = match Db::connect(&config.database, config.database_max_connections).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("burncloud: audit: DATABASE_URL: {e}");
            return ExitCode::from(2);
        }
    };
    let checked = db::ledger::audit(db.pool()).await;
    db.close().await;
    let (offenders, users) = match checked {
        Ok(found) => found,
        Err(e) => {
            eprintln!("burncloud: audit: reading the books failed: {e}");
            return ExitCode::from(2);
        }
    };
    for o in &offenders {
        println!("{}", describe_offender(o));
    }
    println!("audit: {users} users checked, {} offenders", offenders.len());
    if offenders.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// One line per offender, naming every rule the user breaks.
fn describe_offender(o: &db::ledger::Offender) -> String {
    use crate::domain::money::Money;
    let mut problems = Vec::new();
    if o.balance != o.ledger_sum {
        problems.push(format!(
            "ledger sum {} != balance (off by {})",
            Money(o.ledger_sum),
            Money(o.balance - o.ledger_sum)
        ));
    }
    if o.leased > o.balance {
        problems.push(format!("leased {} > balance", Money(o.leased)));
    }
    if o.balance < 0 {
        problems.push("negative balance".to_string());
    }
    format!("user {} <{}>: balance {}: {}", o.user_id, o.email, Money(o.balance), problems.join("; "))
}
