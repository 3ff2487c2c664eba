//! The `switchyard` command line: run, check, demo.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use switchyard::gateway::{self, Compiled, Source};

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "An edge API gateway that runs ngrok-style Traffic Policies"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve: PATH is one YAML file or a directory of them.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Load and compile everything as `run` would; print a summary, or `file:line: reason` lines.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run CRS regression tests (go-ftw YAML) against the WAF engine in-process.
    CrsTest {
        /// The CRS directory (holding rules/ and crs-setup.conf[.example]).
        #[arg(long)]
        crs: PathBuf,
        /// The directory of test files (searched recursively).
        #[arg(long)]
        tests: PathBuf,
        /// Tests to skip, each with its reason (go-ftw overrides format).
        #[arg(long)]
        overrides: Option<PathBuf>,
        /// A base configuration to load before the CRS instead of the built-in one.
        #[arg(long)]
        base: Option<PathBuf>,
        /// The paranoia level to run at (the CRS suite's own setup is 4).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=4))]
        paranoia: u8,
        /// Print passing tests too.
        #[arg(long)]
        verbose: bool,
    },
    /// The Acme scenario on loopback, with built-in upstream APIs.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => gateway::run(Source::Path(config)).map(|_| ExitCode::SUCCESS),
        Command::Check { config } => Ok(check(config)),
        Command::Demo { listen } => switchyard::demo::run(listen).map(|_| ExitCode::SUCCESS),
        Command::CrsTest {
            crs,
            tests,
            overrides,
            base,
            paranoia,
            verbose,
        } => crs_test(
            &crs,
            &tests,
            overrides.as_deref(),
            base.as_deref(),
            paranoia,
            verbose,
        ),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: PathBuf) -> ExitCode {
    let shown = path.display().to_string();
    let compiled = switchyard::config::load(&path).and_then(|c| Compiled::build(&c, None));
    match compiled {
        Ok(c) => print_summary(&shown, &c),
        Err(errors) => {
            for e in &errors.0 {
                println!("{e}");
            }
            println!("check failed: {} error(s) in {shown}", errors.0.len());
            ExitCode::FAILURE
        }
    }
}

fn print_summary(shown: &str, c: &Compiled) -> ExitCode {
    for note in &c.notes {
        println!("{note}");
    }
    let internal = c.routes.iter().filter(|r| r.url.is_internal()).count();
    let listeners: Vec<String> = c
        .gateway
        .listeners
        .iter()
        .map(|l| l.address.to_string())
        .collect();
    println!(
        "{shown}: OK: {} file(s), {} endpoint URL(s) ({} public, {internal} internal), {} pool(s), listening on {}",
        c.files,
        c.routes.len(),
        c.routes.len() - internal,
        c.pools().count(),
        listeners.join(", ")
    );
    for r in &c.routes {
        let kind = if r.url.is_internal() {
            "internal"
        } else {
            "public"
        };
        match &r.pool {
            Some(p) => println!(
                "  {kind} {} -> pool of {}: {}",
                r.url,
                r.upstreams.len(),
                p.describe()
            ),
            None => println!("  {kind} {} (cloud endpoint: policy only)", r.url),
        }
    }
    ExitCode::SUCCESS
}

fn crs_test(
    crs: &std::path::Path,
    tests: &std::path::Path,
    overrides: Option<&std::path::Path>,
    base: Option<&std::path::Path>,
    paranoia: u8,
    verbose: bool,
) -> anyhow::Result<ExitCode> {
    use switchyard::waf::ftw;
    let rules = ftw::load_crs_at(crs, base, paranoia)?;
    let skips = match overrides {
        Some(p) => ftw::load_overrides(p).map_err(anyhow::Error::msg)?,
        None => Vec::new(),
    };
    let skip = |rule: u64, test: u64| {
        skips
            .iter()
            .any(|(r, ids, _)| *r == rule && (ids.is_empty() || ids.contains(&test)))
    };
    let (mut passed, mut failed) = (0, 0);
    for file in ftw::test_files(tests) {
        for o in ftw::run_file(&rules, &file, &skip) {
            if o.passed {
                passed += 1;
                if verbose {
                    println!("PASS {}", o.name);
                }
            } else {
                failed += 1;
                println!("FAIL {}: {}", o.name, o.detail);
            }
        }
    }
    println!(
        "{} rules loaded; {} tests overridden",
        rules.rules,
        skips.len()
    );
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
