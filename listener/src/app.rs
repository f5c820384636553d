//! The `activity-listener` program behind the thin binary.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use domain::Mapping;

use crate::aws::Clients;
use crate::cli::{Cli, Command, DlqArgs, DlqCommand, PublishArgs};
use crate::handler::Processor;
use crate::{dlq, lambda, provision, publish, worker};

/// Runs [`main`] on a single-threaded Tokio runtime. The listener's work is
/// waiting on SQS and DynamoDB with a few microseconds of transform per event; a
/// multi-threaded runtime only adds thread wake-ups to every small request
/// (BENCHMARKS.md). Concurrency comes from the receive loops, not from threads.
pub fn run() -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(main())
}

/// The whole `activity-listener` program: parse the command line, set up JSON
/// logging, build the clients once and run the command.
pub async fn main() -> Result<()> {
    let mut cli = Cli::load();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(std::io::stderr)
        .init();
    let command = match cli.command.take() {
        Some(c) => c,
        None if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() => Command::Lambda,
        None => bail!("no command given; see activity-listener --help"),
    };
    let clients = Clients::from_env().await;
    // Loaded once, before any command runs, so a bad mapping file stops every
    // command at start with its reason.
    let mapping = Arc::new(
        domain::Mapping::load(cli.mapping_file.as_deref()).context("loading the mapping")?,
    );
    let processor = Processor {
        dynamodb: clients.dynamodb.clone(),
        table: cli.table.clone(),
        mapping: mapping.clone(),
        metrics: Arc::default(),
        ingest_key: cli.ingest_key.clone(),
    };
    match command {
        Command::Lambda => lambda::run_lambda(processor)
            .await
            .map_err(|e| anyhow::anyhow!(e)),
        Command::Poll(cfg) => {
            let sqs = clients.sqs.clone();
            worker::run_worker(processor, sqs, cfg, worker::shutdown_signal()).await
        }
        Command::Dlq(args) => {
            let judge = dlq::Judge {
                mapping: &mapping,
                dynamodb: &clients.dynamodb,
                table: &cli.table,
            };
            // Boxed: the command's future is large, and main's stays small.
            Box::pin(dlq_command(&clients.sqs, args, &judge)).await
        }
        Command::Publish(args) => publish_command(&clients, args, &mapping).await,
        Command::Provision { prefix, standard } => {
            let spec = provision::Spec {
                table: cli.table.clone(),
                prefix,
                fifo: !standard,
            };
            provision_command(&clients, &spec).await
        }
    }
}

/// `activity-listener dlq ...`: prints its report as JSON.
async fn dlq_command(
    sqs: &aws_sdk_sqs::Client,
    args: DlqArgs,
    judge: &dlq::Judge<'_>,
) -> Result<()> {
    let dlq_url = match (&args.dlq_url, &args.queue_url) {
        (Some(d), _) => d.clone(),
        (None, Some(q)) => dlq::dlq_of(sqs, q).await?,
        (None, None) => bail!(
            "name the activity queue (--queue-url or ACTIVITY_QUEUE_URL) or the DLQ (--dlq-url)"
        ),
    };
    let out = match args.command {
        DlqCommand::Stats => {
            serde_json::to_string_pretty(&dlq::stats(sqs, &dlq_url, judge).await?)?
        }
        DlqCommand::Peek { limit, show_data } => {
            let rows = dlq::peek(sqs, &dlq_url, judge, limit, show_data).await?;
            let lines = rows.iter().map(serde_json::to_string);
            lines.collect::<Result<Vec<_>, _>>()?.join("\n")
        }
        DlqCommand::Replay {
            event_type,
            limit,
            dry_run,
            rate,
        } => {
            let source = args
                .queue_url
                .as_deref()
                .context("replay needs the activity queue: --queue-url or ACTIVITY_QUEUE_URL")?;
            let options = dlq::ReplayOptions {
                event_type,
                limit,
                dry_run,
                rate,
            };
            serde_json::to_string_pretty(&dlq::replay(sqs, &dlq_url, source, &options).await?)?
        }
        DlqCommand::Export { out } => {
            let n = dlq::export(sqs, &dlq_url, &out).await?;
            serde_json::json!({ "exported": n, "file": out }).to_string()
        }
    };
    println!("{out}");
    Ok(())
}

/// `activity-listener publish`: prints the report; exit code 2 when any line was refused.
async fn publish_command(clients: &Clients, args: PublishArgs, mapping: &Mapping) -> Result<()> {
    let to = match (args.topic, args.queue_url) {
        (Some(t), _) => publish::Destination::Topic(t),
        (None, Some(q)) => publish::Destination::Queue(q),
        (None, None) => bail!("name a destination: --topic or --queue-url"),
    };
    let report = if args.file.as_os_str() == "-" {
        publish::publish(clients, &to, std::io::stdin().lock(), mapping).await?
    } else {
        let f = std::fs::File::open(&args.file)
            .with_context(|| format!("opening {}", args.file.display()))?;
        publish::publish(clients, &to, std::io::BufReader::new(f), mapping).await?
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    if !report.bad_lines.is_empty() || !report.failed_lines.is_empty() {
        // Scripts notice; the good lines were published all the same.
        std::process::exit(2);
    }
    Ok(())
}

/// `activity-listener provision`: prints shell-friendly lines the local scripts read.
async fn provision_command(clients: &Clients, spec: &provision::Spec) -> Result<()> {
    let p = provision::provision(&clients.dynamodb, &clients.sns, &clients.sqs, spec).await?;
    println!("ACTIVITY_TABLE={}", p.table);
    println!("ACTIVITY_QUEUE_URL={}", p.queue_url);
    println!("ACTIVITY_DLQ_URL={}", p.dlq_url);
    for (domain, arn) in &p.topics {
        println!("TOPIC_{}={arn}", domain.to_uppercase());
    }
    Ok(())
}
