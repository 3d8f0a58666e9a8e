use clap::Subcommand;
use gatehouse::admin;
use gatehouse::admin_api::views::Server;
use std::process::ExitCode;

use super::{Ctx, print, say};
use crate::output::{Format, Table, print_data, time};

#[derive(Subcommand)]
pub enum ServersCommand {
    /// Register an upstream MCP server (Streamable HTTP, a local program over stdio, or a
    /// virtual server aggregating others), mounted at /{name}/mcp.
    Add {
        name: String,
        /// The upstream MCP endpoint, e.g. http://127.0.0.1:9090/mcp.
        #[arg(
            long,
            required_unless_present_any = ["command", "members"],
            conflicts_with_all = ["command", "members"]
        )]
        url: Option<String>,
        /// A virtual server: the servers it aggregates, comma-separated (e.g. files,search).
        #[arg(long, value_delimiter = ',', conflicts_with = "command")]
        members: Vec<String>,
        #[command(flatten)]
        stdio: StdioArgs,
        /// Credential injected upstream, as 'Header-Name: value'. Stored encrypted, never shown.
        #[arg(long)]
        credential: Option<String>,
        /// Let callers without a credential through (still audited).
        #[arg(long)]
        allow_anonymous: bool,
        /// Forward methods the MCP specification does not define (refused by default).
        #[arg(long)]
        allow_unknown_methods: bool,
        /// When a tool's definition changes: block (hold it until approved), warn, or off.
        #[arg(long, default_value = "block")]
        pin_action: String,
        #[command(flatten)]
        upstream_auth: Box<UpstreamAuthArgs>,
    },
    /// Change a server's upstream URL or injected credential (connections stay).
    Update {
        name: String,
        /// The new upstream MCP endpoint.
        #[arg(long)]
        url: Option<String>,
        /// A virtual server's new members, comma-separated (replaces the list).
        #[arg(long, value_delimiter = ',', conflicts_with_all = ["url", "command"])]
        members: Option<Vec<String>>,
        /// The new credential injected upstream, as 'Header-Name: value'.
        #[arg(long, conflicts_with = "no_credential")]
        credential: Option<String>,
        /// Stop injecting a credential.
        #[arg(long)]
        no_credential: bool,
        #[command(flatten)]
        upstream_auth: Box<UpstreamAuthArgs>,
        #[command(flatten)]
        stdio: StdioArgs,
    },
    /// The server's pinned tool definitions and any changes waiting for approval.
    Tools { name: String },
    /// Approve changed or held tool definitions (all pending ones, or those named).
    ApproveTools {
        name: String,
        #[arg(long = "tool")]
        tools: Vec<String>,
    },
    /// Discard changed or held tool definitions (all pending ones, or those named): each tool
    /// keeps its approved definition and stays held while the server serves another.
    RejectTools {
        name: String,
        #[arg(long = "tool")]
        tools: Vec<String>,
    },
    /// Every upstream server with its settings (never the credential).
    List,
    /// One server's settings.
    Show { name: String },
    /// Remove a server and its connections.
    Remove { name: String },
}

/// A server that is a local program, spoken to over stdin/stdout (docs/upstreams.md).
#[derive(clap::Args)]
pub struct StdioArgs {
    /// The program to run, e.g. npx (allowed by [gateway] stdio_commands, if set).
    #[arg(long)]
    command: Option<String>,
    /// One argument of the program (repeat for each).
    #[arg(long = "arg", allow_hyphen_values = true, requires = "command")]
    args: Vec<String>,
    /// KEY=VALUE in the program's environment (repeat; values stored encrypted, never shown).
    #[arg(long = "env", requires = "command")]
    env: Vec<String>,
    /// The program's working directory.
    #[arg(long, requires = "command")]
    cwd: Option<String>,
    /// shared (one program for every client) or per_principal (one per client and user).
    #[arg(long, requires = "command")]
    sharing: Option<String>,
    /// per_principal: programs at most.
    #[arg(long, requires = "command")]
    max_children: Option<u32>,
    /// per_principal: stop a program unused this long (e.g. 15m).
    #[arg(long, requires = "command", value_parser = gatehouse_model::duration::parse)]
    idle_timeout: Option<std::time::Duration>,
    /// Address-space limit of the program, bytes (needs prlimit).
    #[arg(long, requires = "command")]
    memory_limit: Option<u64>,
    /// Open-files limit of the program (needs prlimit).
    #[arg(long, requires = "command")]
    open_files_limit: Option<u64>,
}

impl StdioArgs {
    fn into_new(self, ctx: &Ctx) -> anyhow::Result<Option<admin::NewStdio>> {
        let Some(command) = self.command else {
            return Ok(None);
        };
        let env = self
            .env
            .iter()
            .map(|pair| {
                pair.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .ok_or_else(|| anyhow::anyhow!("--env {pair:?}: expected KEY=VALUE"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Some(admin::NewStdio {
            command,
            args: self.args,
            env,
            cwd: self.cwd,
            sharing: self.sharing,
            max_children: self.max_children,
            idle_timeout: self.idle_timeout,
            limits: gatehouse_model::records::StdioLimits {
                memory_bytes: self.memory_limit,
                open_files: self.open_files_limit,
                ..Default::default()
            },
            allowed_commands: ctx.config.gateway.stdio_commands.clone(),
        }))
    }
}

impl ServersCommand {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        match self {
            ServersCommand::Add {
                name,
                url,
                members,
                stdio,
                credential,
                allow_anonymous,
                allow_unknown_methods,
                pin_action,
                upstream_auth,
            } => {
                let (upstream_auth, identity_header, per_user_discovery) =
                    upstream_auth.for_add()?;
                let new = admin::NewServer {
                    name: name.clone(),
                    url: url.unwrap_or_default(),
                    credential,
                    allow_anonymous,
                    allow_unknown_methods,
                    pin_action: Some(pin_action),
                    upstream_auth,
                    identity_header,
                    stdio: stdio.into_new(ctx)?,
                    per_user_discovery,
                    members,
                };
                let server = ctx.ops.add_server(new).await?;
                show(ctx.format, &[server], "added", true)
            }
            ServersCommand::Update {
                name,
                url,
                members,
                credential,
                no_credential,
                upstream_auth,
                stdio,
            } => {
                let (upstream_auth, identity_header, per_user_discovery) =
                    upstream_auth.for_update()?;
                let stdio = stdio.into_new(ctx)?;
                if url.is_none()
                    && credential.is_none()
                    && !no_credential
                    && upstream_auth.is_none()
                    && per_user_discovery.is_none()
                    && identity_header.is_none()
                    && stdio.is_none()
                    && members.is_none()
                {
                    anyhow::bail!(
                        "nothing to change: pass --url, --command, --members, --credential, \
                         --no-credential, --token-endpoint, --per-user-discover, \
                         --no-upstream-auth, --identity-header or \
                         --no-identity-header"
                    );
                }
                let update = admin::ServerUpdate {
                    url,
                    stdio,
                    credential: if no_credential {
                        Some(None)
                    } else {
                        credential.map(Some)
                    },
                    upstream_auth,
                    identity_header,
                    per_user_discovery,
                    members,
                };
                let server = ctx.ops.update_server(&name, update).await?;
                show(ctx.format, &[server], "updated", true)
            }
            ServersCommand::List => show(ctx.format, &ctx.ops.list_servers().await?, "", false),
            ServersCommand::Show { name } => {
                show(ctx.format, &[ctx.ops.get_server(&name).await?], "", true)
            }
            ServersCommand::Tools { name } => {
                let pins = ctx.ops.tool_pins(&name).await?;
                if ctx.format.is_data() {
                    print_data(ctx.format, &pins)?;
                } else {
                    let mut table = Table::new(&[
                        "TOOL",
                        "STATUS",
                        "REASON",
                        "APPROVED HASH",
                        "FIRST SEEN",
                        "UPDATED",
                    ]);
                    for p in &pins {
                        let status = match (&p.approved_hash, &p.pending_hash) {
                            (_, Some(_)) => "pending approval",
                            (Some(_), None) => "approved",
                            (None, None) => "unknown",
                        };
                        table.row(vec![
                            p.tool.clone(),
                            status.into(),
                            p.pending_reason.clone().unwrap_or_else(|| "-".into()),
                            p.approved_hash
                                .as_deref()
                                .map_or("-".into(), |h| h.chars().take(12).collect()),
                            time(Some(p.first_seen)),
                            time(Some(p.updated_at)),
                        ]);
                    }
                    print(&table.render());
                    for p in pins.iter().filter(|p| p.pending_hash.is_some()) {
                        print(&super::pin_diff::held_change(p));
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            ServersCommand::ApproveTools { name, tools } => {
                let approved = ctx.ops.approve_tools(&name, &tools).await?;
                if ctx.format.is_data() {
                    print_data(
                        ctx.format,
                        &serde_json::json!({ "server": name, "approved": approved }),
                    )?;
                } else {
                    say(
                        ctx.format,
                        &format!("{approved} tool definition(s) of {name} approved"),
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            ServersCommand::RejectTools { name, tools } => {
                let rejected = ctx.ops.reject_tools(&name, &tools).await?;
                if ctx.format.is_data() {
                    print_data(
                        ctx.format,
                        &serde_json::json!({ "server": name, "rejected": rejected }),
                    )?;
                } else {
                    say(
                        ctx.format,
                        &format!("{rejected} tool definition(s) of {name} rejected"),
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            ServersCommand::Remove { name } => {
                ctx.ops.remove_server(&name).await?;
                say(
                    ctx.format,
                    &format!("server {name} removed (with its connections)"),
                );
                if ctx.format.is_data() {
                    print_data(ctx.format, &serde_json::json!({ "removed": name }))?;
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn show(format: Format, servers: &[Server], verb: &str, single: bool) -> anyhow::Result<ExitCode> {
    if format.is_data() {
        match servers {
            [one] if single => print_data(format, one)?,
            many => print_data(format, &many)?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[
        "NAME",
        "URL",
        "CREDENTIAL",
        "ANONYMOUS",
        "UNKNOWN METHODS",
        "CREATED",
    ]);
    for s in servers {
        table.row(vec![
            s.name.clone(),
            match (&s.stdio, s.members.is_empty()) {
                // The environment's names only: its values are sealed and never shown.
                (Some(p), _) if !p.env_names.is_empty() => format!(
                    "stdio: {} {} (env: {})",
                    p.command,
                    p.args.join(" "),
                    p.env_names.join(", ")
                ),
                (Some(p), _) => format!("stdio: {} {}", p.command, p.args.join(" ")),
                (None, false) => format!("virtual: {}", s.members.join(",")),
                (None, true) => s.url.clone(),
            },
            s.credential_header
                .as_ref()
                .map_or("-".into(), |h| format!("{h}: ****")),
            yes_no(s.allow_anonymous),
            yes_no(s.allow_unknown_methods),
            time(Some(s.created_at)),
        ]);
    }
    if !verb.is_empty() {
        say(format, &format!("server {verb}:"));
    }
    print(&table.render());
    Ok(ExitCode::SUCCESS)
}

pub fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.into()
}

/// Upstream token settings and the identity header (ADR 0006 §5-6). Secrets come from a file
/// or an environment variable, never the command line (which other users of the host see).
#[derive(clap::Args, Default)]
#[command(group(
    clap::ArgGroup::new("token_source").args(["token_endpoint", "per_user_discover"])
))]
pub struct UpstreamAuthArgs {
    /// Fetch OAuth client-credentials tokens for the upstream from this token endpoint.
    #[arg(long, requires = "client_id")]
    token_endpoint: Option<String>,
    /// Gatehouse's client id at the upstream's authorization server.
    #[arg(long, requires = "token_source")]
    client_id: Option<String>,
    /// client_secret_basic (default), client_secret_post, private_key_jwt, or none (a public
    /// client; per-user only, the default with --per-user-discover).
    #[arg(long, requires = "client_id")]
    auth_method: Option<String>,
    /// File holding the client secret.
    #[arg(long, requires = "client_id", conflicts_with_all = ["client_secret_env", "private_key_file"])]
    client_secret_file: Option<std::path::PathBuf>,
    /// Environment variable holding the client secret.
    #[arg(long, requires = "client_id", conflicts_with = "private_key_file")]
    client_secret_env: Option<String>,
    /// PEM PKCS #8 private key file, for private_key_jwt.
    #[arg(long, requires = "token_endpoint")]
    private_key_file: Option<std::path::PathBuf>,
    /// Space-separated scopes to ask the upstream's authorization server for.
    #[arg(long, requires = "token_source")]
    scope: Option<String>,
    /// RFC 8707 resource indicator to ask for (usually the upstream's MCP URL).
    #[arg(long, requires = "token_source")]
    resource: Option<String>,
    /// Get a token per person by RFC 8693 token exchange (presenting Gatehouse's signed
    /// assertion of the caller) instead of one client-credentials token for everyone.
    #[arg(
        long,
        requires = "token_endpoint",
        conflicts_with = "authorization_endpoint"
    )]
    token_exchange: bool,
    /// Each person's own upstream token, granted in the upstream's OAuth flow (authorization
    /// code + PKCE) started from this authorization endpoint on their first call.
    #[arg(long, requires = "token_endpoint")]
    authorization_endpoint: Option<String>,
    /// The upstream's revocation endpoint (RFC 7009), told when a person's grant is revoked.
    #[arg(long, requires = "authorization_endpoint")]
    revocation_endpoint: Option<String>,
    /// Each person's own upstream token, with the upstream's authorization server found by
    /// Gatehouse (--upstream-issuer, else the resource metadata of --resource or the URL) and
    /// Gatehouse registered there by its client metadata document or dynamic registration,
    /// unless --client-id names a client registered already.
    #[arg(long, conflicts_with_all = ["token_endpoint", "token_exchange", "no_upstream_auth"])]
    per_user_discover: bool,
    /// The upstream authorization server's issuer, for --per-user-discover.
    #[arg(long, requires = "per_user_discover")]
    upstream_issuer: Option<String>,
    /// Stop fetching tokens for the upstream (update only).
    #[arg(long, conflicts_with = "token_endpoint")]
    no_upstream_auth: bool,
    /// Send Gatehouse's signed assertion of the caller in this header, e.g.
    /// X-Gatehouse-Identity.
    #[arg(long)]
    identity_header: Option<String>,
    /// Stop sending the identity assertion (update only).
    #[arg(long, conflicts_with = "identity_header")]
    no_identity_header: bool,
}

type AuthChange = Option<Option<admin::upstream_auth::NewUpstreamAuth>>;
type Discovery = Option<admin::upstream_registration::PerUserDiscovery>;

impl UpstreamAuthArgs {
    fn for_add(
        self,
    ) -> anyhow::Result<(
        Option<admin::upstream_auth::NewUpstreamAuth>,
        Option<String>,
        Discovery,
    )> {
        if self.no_upstream_auth || self.no_identity_header {
            anyhow::bail!("--no-upstream-auth and --no-identity-header are for servers update");
        }
        let identity_header = self.identity_header.clone();
        let (auth, discovery) = self.new_auth()?;
        Ok((auth, identity_header, discovery))
    }

    fn for_update(self) -> anyhow::Result<(AuthChange, Option<Option<String>>, Discovery)> {
        let identity_header = match (&self.identity_header, self.no_identity_header) {
            (Some(header), _) => Some(Some(header.clone())),
            (None, true) => Some(None),
            (None, false) => None,
        };
        let (auth, discovery) = if self.no_upstream_auth {
            (Some(None), None)
        } else {
            let (auth, discovery) = self.new_auth()?;
            (auth.map(Some), discovery)
        };
        Ok((auth, identity_header, discovery))
    }

    fn secret(&self) -> anyhow::Result<Option<String>> {
        let read = |path: &std::path::Path| {
            std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))
        };
        Ok(
            match (
                &self.client_secret_file,
                &self.client_secret_env,
                &self.private_key_file,
            ) {
                (Some(path), _, _) | (_, _, Some(path)) => Some(read(path)?),
                (_, Some(var), _) => Some(
                    std::env::var(var)
                        .map_err(|_| anyhow::anyhow!("environment variable {var} is not set"))?,
                ),
                _ => None,
            },
        )
    }

    fn new_auth(
        self,
    ) -> anyhow::Result<(Option<admin::upstream_auth::NewUpstreamAuth>, Discovery)> {
        if self.per_user_discover {
            let discovery = admin::upstream_registration::PerUserDiscovery {
                secret: self.secret()?,
                issuer: self.upstream_issuer,
                client_id: self.client_id,
                auth_method: self.auth_method.as_deref().map(str::parse).transpose()?,
                scope: self.scope,
                resource: self.resource,
            };
            return Ok((None, Some(discovery)));
        }
        Ok((self.given_auth()?, None))
    }

    fn given_auth(self) -> anyhow::Result<Option<admin::upstream_auth::NewUpstreamAuth>> {
        use gatehouse_model::upstream_auth::UpstreamAuthSpec;
        let secret = self.secret()?;
        let (Some(token_endpoint), Some(client_id)) = (self.token_endpoint, self.client_id) else {
            return Ok(None);
        };
        let auth_method = self
            .auth_method
            .as_deref()
            .unwrap_or("client_secret_basic")
            .parse()?;
        let (scope, resource) = (self.scope, self.resource);
        let spec = if let Some(authorization_endpoint) = self.authorization_endpoint {
            UpstreamAuthSpec::PerUser {
                authorization_endpoint,
                token_endpoint,
                revocation_endpoint: self.revocation_endpoint,
                client_id,
                auth_method,
                scope,
                resource,
                issuer: None,
                registration: Default::default(),
                redirect_uri: None,
            }
        } else if self.token_exchange {
            UpstreamAuthSpec::TokenExchange {
                token_endpoint,
                client_id,
                auth_method,
                scope,
                resource,
            }
        } else {
            UpstreamAuthSpec::ClientCredentials {
                token_endpoint,
                client_id,
                auth_method,
                scope,
                resource,
            }
        };
        Ok(Some(admin::upstream_auth::NewUpstreamAuth { spec, secret }))
    }
}
