use clap::{Parser, Subcommand};

/// Fleetcast operator: turns MediaCluster resources into origin and edge
/// media-server workloads and wires every edge to its origins.
#[derive(Parser)]
#[command(name = "fleetcast-operator", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller against the cluster in KUBECONFIG or the in-cluster config.
    Run,
    /// Print the MediaCluster CustomResourceDefinition as YAML.
    Crd,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run | Command::Crd => {
            anyhow::bail!("this command is not built yet in this version of fleetcast-operator")
        }
    }
}
