//! SDK clients, built once per process from the standard AWS variables
//! (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB`,
//! `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL_SNS`).

/// The clients the listener uses, built from one shared configuration.
#[derive(Debug, Clone)]
pub struct Clients {
    /// The activity table.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// The activity queue and its dead-letter queue.
    pub sqs: aws_sdk_sqs::Client,
    /// Topics, for provisioning and publishing.
    pub sns: aws_sdk_sns::Client,
}

impl Clients {
    /// Loads the standard configuration chain (environment, profile, then the
    /// platform's role) with the process's one HTTP client ([`sdk_http`]). The
    /// local scripts set fake credentials and `AWS_EC2_METADATA_DISABLED=true` so
    /// the chain never reaches for the network.
    pub async fn from_env() -> Self {
        let config = sdk_http::sdk_config().await;
        Self::from_config(&config)
    }

    /// Clients from an explicit configuration (tests).
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
        }
    }
}

/// An SDK error with its whole chain of causes, for messages and logs (the SDK's
/// own `Display` says only "service error").
pub fn err<E: std::error::Error>(e: E) -> anyhow::Error {
    anyhow::anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e))
}
