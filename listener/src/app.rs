//! The `activity-listener` program behind the thin binary.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Parser;

use crate::aws::Clients;
use crate::cli::{Cli, Command};
use crate::handler::Processor;
use crate::{lambda, provision, worker};

/// The whole `activity-listener` program: parse the command line, set up JSON
/// logging, build the clients once and run the command.
pub async fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(std::io::stderr)
        .init();
    let command = match cli.command {
        Some(c) => c,
        None if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() => Command::Lambda,
        None => bail!("no command given; see activity-listener --help"),
    };
    let clients = Clients::from_env().await;
    let processor = || -> Result<Processor> {
        let mapping =
            domain::Mapping::load(cli.mapping_file.as_deref()).context("loading the mapping")?;
        Ok(Processor {
            dynamodb: clients.dynamodb.clone(),
            table: cli.table.clone(),
            mapping: Arc::new(mapping),
            metrics: Arc::default(),
        })
    };
    match command {
        Command::Lambda => lambda::run_lambda(processor()?)
            .await
            .map_err(|e| anyhow::anyhow!(e))?,
        Command::Poll(args) => {
            worker::run_worker(
                processor()?,
                clients.sqs.clone(),
                args.worker_config(),
                worker::shutdown_signal(),
            )
            .await?
        }
        Command::Provision { prefix, standard } => {
            let spec = provision::Spec {
                table: cli.table.clone(),
                prefix,
                fifo: !standard,
            };
            let p =
                provision::provision(&clients.dynamodb, &clients.sns, &clients.sqs, &spec).await?;
            // Shell-friendly output: the local scripts read these lines.
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
