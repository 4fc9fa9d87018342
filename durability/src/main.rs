//! `raidtorrent-durability run --config preset.toml --out DIR` and `calibrate`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use raidtorrent_durability::config::SimConfig;
use raidtorrent_durability::{report, runner};

#[derive(Parser)]
#[command(
    version,
    about = "Durability and availability simulator over the gateway's own planner"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulates every policy of a preset and writes runs.csv, summary.csv and timeseries.csv.
    Run {
        /// The preset (TOML).
        #[arg(long, env = "DURABILITY_CONFIG")]
        config: PathBuf,
        /// Where the CSV files go.
        #[arg(long, env = "DURABILITY_OUT")]
        out: PathBuf,
        /// Overrides `run.seeds`.
        #[arg(long)]
        seeds: Option<u32>,
        /// Overrides `run.years`.
        #[arg(long)]
        years: Option<f64>,
        /// No progress line.
        #[arg(long)]
        quiet: bool,
    },
    /// Runs the calibration preset and compares losses with the Markov chain.
    Calibrate {
        #[arg(long, default_value = "durability/presets/calibration.toml")]
        config: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run {
            config,
            out,
            seeds,
            years,
            quiet,
        } => {
            let mut cfg = SimConfig::load(&config)?;
            cfg.run.seeds = seeds.unwrap_or(cfg.run.seeds);
            cfg.run.years = years.unwrap_or(cfg.run.years);
            cfg.validate()?;
            let runs = runner::run_all(&cfg, !quiet);
            let sums = report::summarize(&cfg, &runs);
            report::write_all(&out, &runs, &sums).context("writing results")?;
            print!("{}", report::summary_csv(&sums));
        }
        Command::Calibrate { config, out } => {
            let cfg = SimConfig::load(&config)?;
            let runs = runner::run_all(&cfg, true);
            let sums = report::summarize(&cfg, &runs);
            if let Some(out) = out {
                report::write_all(&out, &runs, &sums).context("writing results")?;
            }
            for s in &sums {
                let markov = s
                    .markov
                    .context("the calibration preset must suit the Markov chain")?;
                println!(
                    "{}: simulated annual loss {:.4e} (95% {:.4e} .. {:.4e}, {} objects lost), Markov {:.4e}, ratio {:.3}",
                    s.policy.name(), s.pooled, s.pooled_lo, s.pooled_hi, s.lost, markov, s.pooled / markov
                );
                if let Some(m) = &s.model {
                    println!(
                        "{}: chain with the measured rates {:.4e}, ratio {:.3} (hours to a repair by state: {:?})",
                        s.policy.name(), m.annual_loss, s.pooled / m.annual_loss, &m.repair_hours[1..]
                    );
                }
            }
        }
    }
    Ok(())
}
