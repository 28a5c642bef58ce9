//! `ringdb admin create-token / list-tokens / revoke-token`: access tokens for clients.

use anyhow::Context;
use ringdb_proto::v1::{CreateTokenRequest, ListTokensRequest, RevokeTokenRequest};

use crate::admin::aligned;
use crate::remote::{connect, status_error, HostArg};

/// The token subcommands of `ringdb admin`.
#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Create an access token; the token itself is printed on the last line of stdout
    /// (it is shown only this once: nodes keep only a hash of it).
    CreateToken {
        /// Its name (1-64 of letters, digits, '_', '-', '.'), used to list and revoke it.
        #[arg(long)]
        name: String,
        /// read (gets, queries), readwrite (also puts and deletes) or admin (everything).
        #[arg(long, value_parser = ["read", "readwrite", "admin"])]
        role: String,
        /// Limit a read or readwrite token to this collection; repeat for more.
        #[arg(long = "collection")]
        collections: Vec<String>,
        #[command(flatten)]
        host: HostArg,
    },
    /// List the live tokens: names, roles, collections (never secrets).
    ListTokens {
        #[command(flatten)]
        host: HostArg,
    },
    /// Revoke a token by name; every node refuses it within seconds.
    RevokeToken {
        /// The token's name.
        name: String,
        #[command(flatten)]
        host: HostArg,
    },
}

/// Run one token subcommand.
pub async fn run(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::CreateToken {
            name,
            role,
            collections,
            host,
        } => {
            let r = connect(&host)
                .await?
                .create_token(CreateTokenRequest {
                    name,
                    role,
                    collections,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            let info = r.info.context("empty answer")?;
            let scope = if info.collections.is_empty() {
                "every collection".to_string()
            } else {
                info.collections.join(", ")
            };
            println!(
                "token {} ({}, {scope}); it is not shown again:",
                info.name, info.role
            );
            println!("{}", r.token);
        }
        TokenCommand::ListTokens { host } => {
            let r = connect(&host)
                .await?
                .list_tokens(ListTokensRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            let mut rows = vec![[
                "Name".to_string(),
                "Role".into(),
                "Collections".into(),
                "Created by".into(),
            ]];
            for t in r.tokens {
                rows.push([
                    t.name,
                    t.role,
                    if t.collections.is_empty() {
                        "*".into()
                    } else {
                        t.collections.join(",")
                    },
                    t.created_by,
                ]);
            }
            print!("{}", aligned(&rows));
        }
        TokenCommand::RevokeToken { name, host } => {
            connect(&host)
                .await?
                .revoke_token(RevokeTokenRequest { name: name.clone() })
                .await
                .map_err(status_error)?;
            println!("token {name} revoked");
        }
    }
    Ok(())
}
