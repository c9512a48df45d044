//! swctl's command line, in kubectl's shape.

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "swctl",
    version,
    about = "Command line for Switchyard, in kubectl's style"
)]
pub struct Cli {
    /// Control plane address (overrides the credentials file's): https://HOST:PORT,
    /// unix:///PATH, or http://HOST:PORT for a control plane started with --insecure;
    /// several, comma-separated, are tried in turn.
    #[arg(long, global = true, env = "SWITCHYARD_SERVER")]
    pub server: Option<String>,
    /// Credentials file (kubeconfig-shaped; the control plane writes
    /// <data-dir>/admin.conf). Default: $SWITCHYARD_CONFIG, else ~/.switchyard/config.
    #[arg(long, global = true)]
    pub config: Option<std::path::PathBuf>,
    /// Namespace of the request.
    #[arg(short = 'n', long, global = true, default_value = "default")]
    pub namespace: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update objects from manifests (YAML or JSON; a file, a directory or - for stdin).
    Apply(ApplyArgs),
    /// List objects: `swctl get service,endpoints frontend-svc`.
    Get(GetArgs),
    /// Show one object in detail.
    Describe(DescribeArgs),
    /// Delete objects by kind and name, or those in manifests.
    Delete(DeleteArgs),
    /// Create a Service or Namespace from flags.
    #[command(subcommand)]
    Create(CreateCommand),
    /// Expose a Deployment or Pod as a new Service.
    Expose(ExposeArgs),
    /// Forward local ports to a pod, through the control plane: `swctl port-forward svc/x 8080:80`.
    PortForward(PortForwardArgs),
    /// Print the Service environment variables a pod gets (`--export` for `eval`).
    Env(EnvArgs),
    /// Credentials for other tools: `swctl config kubeconfig` for kubectl and
    /// every Kubernetes client library.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print (or write with -o) a kubeconfig for the current credentials and
    /// server: `kubectl --kubeconfig FILE get svc` then talks to this control plane.
    Kubeconfig {
        /// Where to write it (mode 0600: it holds a private key); stdout when omitted.
        #[arg(short = 'o', long)]
        output: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Manifest file, directory, or - for stdin (repeatable).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// What to do with fields the API does not know (they would be
    /// dropped): warn and apply, refuse the object, or say nothing.
    #[arg(long, value_enum, default_value = "warn", num_args = 0..=1, default_missing_value = "strict", require_equals = true)]
    pub validate: FieldValidation,
}

/// kubectl's `--validate` values; `true` is `strict`, `false` `ignore`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FieldValidation {
    #[value(alias = "true")]
    Strict,
    Warn,
    #[value(alias = "false")]
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Wide,
    Yaml,
    Json,
    Name,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Kinds, comma-separated (svc, ep, po, deploy, ns, nodes, endpointslices, users, tokens), or KIND/NAME.
    pub kinds: String,
    /// Names to show (all when none given).
    pub names: Vec<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector, e.g. `app=frontend,tier!=db`.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
    /// After listing, watch for changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Omit the table header.
    #[arg(long)]
    pub no_headers: bool,
    /// Show each object's labels as the last column.
    #[arg(long)]
    pub show_labels: bool,
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    pub kind: String,
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Delete the objects in these manifests.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    /// KIND NAME..., or KIND/NAME.
    pub args: Vec<String>,
    /// Treat a missing object as success.
    #[arg(long)]
    pub ignore_not_found: bool,
}

#[derive(Debug, Subcommand)]
pub enum CreateCommand {
    /// Create a Service of the given type.
    #[command(subcommand, visible_alias = "svc")]
    Service(CreateService),
    /// Create a Namespace.
    #[command(visible_alias = "ns")]
    Namespace { name: String },
    /// Issue a user's client certificate and write their credentials file.
    User(CreateUserArgs),
    /// Make a join token for a node; prints it, then the agent command.
    Token(CreateTokenArgs),
}

#[derive(Debug, Args)]
pub struct CreateUserArgs {
    pub name: String,
    /// admin (everything) or view (get, describe, watch, env).
    #[arg(long)]
    pub role: String,
    /// Lifetime of the certificate.
    #[arg(long, default_value = "8760h", value_parser = parse_duration)]
    pub ttl: std::time::Duration,
    /// Where to write the credentials file (mode 0600); stdout when omitted.
    #[arg(short = 'o', long = "output")]
    pub output: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct CreateTokenArgs {
    /// Only this node may join with the token.
    #[arg(long)]
    pub node: Option<String>,
    /// How long the token may be used.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: std::time::Duration,
    /// Any number of nodes may join with it (default: one).
    #[arg(long)]
    pub reusable: bool,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.as_secs() >= 1 => Ok(d),
        Ok(_) => Err("must be at least 1s".to_string()),
        Err(e) => Err(format!("{e} (e.g. 1h, 30m, 8760h)")),
    }
}

#[derive(Debug, Subcommand)]
pub enum CreateService {
    /// A ClusterIP Service (`--clusterip=None` for headless).
    Clusterip(CreateServiceArgs),
    /// A NodePort Service.
    Nodeport(CreateServiceArgs),
    /// A LoadBalancer Service.
    Loadbalancer(CreateServiceArgs),
    /// An ExternalName Service (`--external-name`).
    Externalname(CreateServiceArgs),
}

#[derive(Debug, Args)]
pub struct CreateServiceArgs {
    pub name: String,
    /// Port pairs PORT[:TARGET] (repeatable, or comma-separated).
    #[arg(long = "tcp", value_delimiter = ',')]
    pub tcp: Vec<String>,
    /// NodePort for the (single) port of a NodePort Service.
    #[arg(long)]
    pub node_port: Option<i32>,
    /// The ClusterIP to ask for, or None for a headless Service.
    #[arg(long)]
    pub clusterip: Option<String>,
    /// DNS name an ExternalName Service points at.
    #[arg(long)]
    pub external_name: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExposeArgs {
    /// deploy, deployment, po or pod (or KIND/NAME).
    pub kind: String,
    #[arg(value_name = "NAME")]
    pub target: Option<String>,
    /// The Service port.
    #[arg(long)]
    pub port: i32,
    /// The port (number or name) the backends listen on; defaults to --port.
    #[arg(long)]
    pub target_port: Option<String>,
    /// ClusterIP, NodePort, LoadBalancer.
    #[arg(long = "type")]
    pub type_: Option<String>,
    /// Name of the Service (defaults to the exposed object's name).
    #[arg(long = "name")]
    pub service_name: Option<String>,
    #[arg(long, default_value = "TCP")]
    pub protocol: String,
    /// Name of the port.
    #[arg(long)]
    pub port_name: Option<String>,
    /// ClusterIP to ask for, or None for headless.
    #[arg(long = "cluster-ip")]
    pub cluster_ip: Option<String>,
    /// External IP to add to the Service (repeatable).
    #[arg(long = "external-ip")]
    pub external_ip: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PortForwardArgs {
    /// svc/NAME, deploy/NAME, pod/NAME or a pod name.
    pub target: String,
    /// Port pairs [LOCAL:]REMOTE; `:REMOTE` picks a free local port. For svc/, REMOTE is the Service port.
    #[arg(required = true, value_name = "[LOCAL:]REMOTE")]
    pub ports: Vec<String>,
    /// Addresses to listen on (comma-separated IPs or localhost).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1")]
    pub address: Vec<String>,
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    /// The pod (NAME or pod/NAME); without it, every current Service of the namespace.
    pub pod: Option<String>,
    /// Print `export NAME='value'` lines: `eval "$(swctl env --export POD)"`.
    #[arg(long)]
    pub export: bool,
}
