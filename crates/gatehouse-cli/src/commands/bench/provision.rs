//! `--provision`: a throw-away client for one bench, made through the local deployment (so
//! the running gateway has applied each change before the first request) and deleted with
//! everything it owns (key, connection, client secret) afterwards.

use gatehouse::admin::{NewConnection, NewKey, oauth::OAuthRegistration};
use std::time::Duration;

use super::Credentials;
use crate::deployment::Deployment;

/// The key outlives no bench: should the deletion never happen (the command killed), it
/// stops working on its own.
const KEY_LIFETIME: Duration = Duration::from_secs(3_600);

pub struct Provisioned {
    pub client: String,
    pub credentials: Credentials,
}

/// A client named `bench-…`, connected to `server` for `tool`, with an API key and a
/// client secret for the client-credentials grant. Nothing is left behind on failure.
pub async fn make(
    deployment: &dyn Deployment,
    server: &str,
    tool: &str,
) -> anyhow::Result<Provisioned> {
    // Before anything is made: an unknown server changes nothing.
    deployment.get_server(server).await?;
    let client = format!("bench-{}", gatehouse::secrets::random_id(10)?);
    deployment
        .create_client(&client, "throw-away client of gatehouse bench")
        .await?;
    match credentials(deployment, &client, server, tool).await {
        Ok(credentials) => Ok(Provisioned {
            client,
            credentials,
        }),
        Err(err) => {
            if let Err(cleanup) = deployment.delete_client(&client).await {
                eprintln!("warning: could not delete the bench client {client}: {cleanup:#}");
            }
            Err(err)
        }
    }
}

async fn credentials(
    deployment: &dyn Deployment,
    client: &str,
    server: &str,
    tool: &str,
) -> anyhow::Result<Credentials> {
    deployment
        .grant_connection(NewConnection {
            client: client.into(),
            server: server.into(),
            tools: tool.into(),
            resources: false,
            prompts: false,
        })
        .await?;
    let key = deployment
        .create_key(NewKey {
            client: client.into(),
            label: "gatehouse bench".into(),
            expires_in: Some(KEY_LIFETIME),
            tools: None,
        })
        .await?;
    let registered = deployment
        .register_oauth(
            client,
            OAuthRegistration {
                grant_types: vec!["client_credentials".into()],
                ..OAuthRegistration::default()
            },
        )
        .await?;
    let secret = registered
        .client_secret
        .ok_or_else(|| anyhow::anyhow!("the OAuth registration issued no client secret"))?;
    Ok(Credentials {
        key: Some(key.token),
        client: Some((registered.client_id, secret)),
    })
}

/// Deletes the client with its key, connection and secrets.
pub async fn remove(deployment: &dyn Deployment, made: &Provisioned) -> anyhow::Result<()> {
    deployment.delete_client(&made.client).await.map_err(|err| {
        err.context(format!(
            "the bench client {} is left behind: delete it with `gatehouse clients delete {}`",
            made.client, made.client
        ))
    })
}
