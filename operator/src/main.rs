// Kubernetes kinds are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

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
        Command::Crd => {
            print!("{}", fleetcast_operator::crd::crd_yaml()?);
            Ok(())
        }
        Command::Run => anyhow::bail!("not built yet"),
    }
}
