//! `activity-listener`: reads configuration, sets up logging, builds the AWS
//! clients once and hands over to the library.

use anyhow::Result;
use clap::Parser;
use listener::aws::Clients;
use listener::cli::{Cli, Command};
use listener::provision;

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_current_span(true)
        .with_writer(std::io::stderr)
        .init();
    let clients = Clients::from_env().await;
    match cli.command {
        Command::Provision { prefix, standard } => {
            let spec = provision::Spec {
                table: cli.table,
                prefix,
                fifo: !standard,
            };
            let p =
                provision::provision(&clients.dynamodb, &clients.sns, &clients.sqs, &spec).await?;
            // Shell-friendly output: the local scripts source these lines.
            println!("ACTIVITY_TABLE={}", p.table);
            println!("ACTIVITY_QUEUE_URL={}", p.queue_url);
            println!("ACTIVITY_DLQ_URL={}", p.dlq_url);
            for (domain, arn) in &p.topics {
                println!("TOPIC_{}={arn}", domain.to_uppercase());
            }
        }
    }
    Ok(())
}
