//! The `ferry` binary: parse the command line, load the configuration, start telemetry, and
//! hand over to the role or command. Everything else lives in the modules below.

mod alerts;
mod app;
mod cli;
mod commands;
mod connections;
mod console;
mod counts;
mod dead_letters;
mod metrics;
mod online;
mod registry;
mod roles;
mod scheme_test;
mod shutdown;
mod telemetry;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ferry_bus::Stage;

use crate::app::App;
use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // reqwest and sqlx use rustls with the ring provider; install it once for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferry: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match run(cli).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("ferry: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Commands that touch no service and need no telemetry.
    match &cli.command {
        Command::Lint(args) => {
            return Ok(if commands::lint(&cli.config, args).await? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Preview(_) => {
            let Command::Preview(args) = cli.command else {
                unreachable!()
            };
            return Ok(if commands::preview(&cli.config, args)? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Test(_) => {
            let Command::Test(args) = cli.command else {
                unreachable!()
            };
            return Ok(if scheme_test::run(&cli.config, args)? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        _ => {}
    }

    let (trigger, shutdown) = shutdown::channel();
    trigger.on_signals();

    if let Command::Sandbox(args) = cli.command {
        let telemetry = telemetry::init(cli.log_format, "ferry-sandbox", None, "info");
        let result = commands::sandbox(*args, shutdown).await;
        telemetry.shutdown();
        return result.map(|()| ExitCode::SUCCESS);
    }

    let app = Arc::new(App::read(&cli.config)?);
    let telemetry_cfg = &app.files.config.telemetry;
    let quiet = matches!(
        cli.command,
        Command::Status(_) | Command::Replay(_) | Command::Discard(_) | Command::Teardown(_)
    );
    let telemetry = telemetry::init(
        cli.log_format,
        &telemetry_cfg.service_name,
        telemetry_cfg.otlp_endpoint.as_deref(),
        if quiet { "warn" } else { "info" },
    );
    let metrics_addr = cli
        .metrics_addr
        .clone()
        .or_else(|| telemetry_cfg.metrics_addr.clone());
    let long_running = matches!(
        &cli.command,
        Command::Transform(_)
            | Command::Load(_)
            | Command::Extract(cli::ExtractArgs { once: false, .. })
            | Command::Run(cli::RunArgs { once: false, .. })
            | Command::Console(_)
    );
    if let (Some(addr), true) = (metrics_addr, long_running) {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = metrics::serve(&addr, shutdown).await {
                tracing::error!(error = %format!("{e:#}"), "metrics server stopped");
            }
        });
    }

    let result = match cli.command {
        Command::Extract(args) => {
            let schemes = app.schemes(&args.filter)?;
            if args.restart {
                commands::discard_unfinished(&app, &schemes).await?;
            }
            let when = if args.once {
                roles::extracting::When::Once
            } else if args.run_now {
                roles::extracting::When::NowThenScheduled
            } else {
                roles::extracting::When::Scheduled
            };
            roles::extracting::extract(Arc::clone(&app), schemes, when, shutdown).await
        }
        Command::Transform(args) => {
            let schemes = app.schemes(&args.filter)?;
            roles::consume::consume(
                Arc::clone(&app),
                schemes,
                Stage::Transform,
                args.workers,
                shutdown,
            )
            .await
        }
        Command::Load(args) => {
            let schemes = app.schemes(&args.filter)?;
            roles::consume::consume(
                Arc::clone(&app),
                schemes,
                Stage::Load,
                args.workers,
                shutdown,
            )
            .await
        }
        Command::Run(args) => {
            let schemes = app.schemes(&args.filter)?;
            if args.restart {
                commands::discard_unfinished(&app, &schemes).await?;
            }
            let options = roles::run::RunOptions {
                once: args.once,
                workers: args.workers,
                timeout: Duration::from_secs(args.timeout_secs),
                allow_dead_letters: args.allow_dead_letters,
                outage_limit: Duration::from_secs(args.outage_limit_secs),
            };
            let code = roles::run::run(Arc::clone(&app), schemes, options, shutdown).await;
            telemetry.shutdown();
            return code;
        }
        Command::Replay(args) => commands::replay(Arc::clone(&app), args).await,
        Command::Discard(args) => commands::discard(Arc::clone(&app), args).await,
        Command::Teardown(args) => {
            let code = commands::teardown(Arc::clone(&app), args).await;
            telemetry.shutdown();
            return code;
        }
        Command::Status(args) => commands::status(Arc::clone(&app), args).await,
        Command::Console(args) => console::serve(Arc::clone(&app), args.listen, shutdown).await,
        Command::Lint(_) | Command::Preview(_) | Command::Test(_) | Command::Sandbox(_) => {
            unreachable!("handled above")
        }
    };
    telemetry.shutdown();
    result.map(|()| ExitCode::SUCCESS)
}
