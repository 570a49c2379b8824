//! The command line. Every role DESIGN.md names is a subcommand; the flags here are the contract
//! that docker-compose.yml, the README and the tests rely on.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about = "Move records from SaaS APIs and MySQL into MySQL and DingTalk through RabbitMQ: nothing missed, nothing written twice.",
    long_about = "Ferry runs integration schemes (config/schemes/*.json): `extract` pages through a source and \
publishes batches to RabbitMQ, `transform` applies the scheme's mapping, `load` writes to the target and \
acknowledges only what was written. Failed records land in dead-letter queues; `replay` moves them back.\n\n\
Environment: FERRY_CONFIG, FERRY_AMQP_URL, FERRY_STATE_URL, FERRY_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_ENDPOINT), \
FERRY_METRICS_ADDR, FERRY_LOG (a tracing filter, default info), FERRY_LOG_FORMAT (text|json).\n\n\
Exit codes: 0 done; 1 fatal (configuration, a source that keeps failing, a scheme stopped on a \
configuration error, a lost broker); 2 usage error; 3 (`ferry run --once`) the run finished but \
records were dead-lettered (`--allow-dead-letters` makes it 0)."
)]
pub struct Cli {
    /// The main configuration file; schemes are found relative to it.
    #[arg(
        long,
        global = true,
        env = "FERRY_CONFIG",
        default_value = "config/ferry.toml"
    )]
    pub config: PathBuf,

    /// Serve /metrics, /healthz and /readyz on this address (e.g. 0.0.0.0:9100) in long-running roles.
    #[arg(long, global = true, env = "FERRY_METRICS_ADDR")]
    pub metrics_addr: Option<String>,

    /// Log line format.
    #[arg(long, global = true, env = "FERRY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Page through sources on each scheme's cron schedule (or once) and publish batches.
    Extract(ExtractArgs),
    /// Consume ferry.<scheme>.transform, apply the mapping, publish to ferry.<scheme>.load.
    Transform(WorkerArgs),
    /// Consume ferry.<scheme>.load and write to the target; acknowledge only what was written.
    Load(WorkerArgs),
    /// Extract, transform and load in one process (for a single machine, tests and demos).
    Run(RunArgs),
    /// Move dead letters back to their work queue (all, or those the filters select), or with
    /// --rerender send load dead letters back through the transform.
    Replay(ReplayArgs),
    /// Remove dead letters no longer wanted (those the filters select); audited.
    Discard(DiscardArgs),
    /// Remove a retired scheme's queues (work, retry, dead letters); refuses while they hold
    /// messages or have consumers, unless --force.
    Teardown(TeardownArgs),
    /// Per scheme: queue depths, dead letters, checkpoint, last runs.
    Status(StatusArgs),
    /// Serve the operator console (schemes, runs, dead letters, replay) in a browser; login from
    /// `[console]` in ferry.toml.
    Console(ConsoleArgs),
    /// Check the configuration and every scheme (offline; `--online` also against the live
    /// services).
    Lint(LintArgs),
    /// Show what the target would receive for sample source records, touching no service.
    Preview(PreviewArgs),
    /// Run the test cases kept beside each scheme (schemes/tests/NAME.test.json), touching no
    /// service; exit 1 when any case fails.
    #[command(after_long_help = TEST_FILE_FORMAT)]
    Test(TestArgs),
    /// Run local simulators of the vendor APIs (DingTalk, Yida, Jushuitan, OKKI, Kingdee).
    // Boxed: its options are far larger than any other command's (clippy::large_enum_variant).
    Sandbox(Box<SandboxArgs>),
}

#[derive(Debug, Args, Clone, Default)]
pub struct SchemeFilter {
    /// Only these schemes (repeatable); default: every scheme in the configuration.
    #[arg(long = "scheme", value_name = "NAME")]
    pub schemes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    #[command(flatten)]
    pub filter: SchemeFilter,
    /// Run every selected scheme once now and exit, instead of following the schedules.
    #[arg(long)]
    pub once: bool,
    /// Run every selected scheme once as soon as the extractor starts, then follow the schedules
    /// (so a fresh deployment moves data without waiting for the next cron tick).
    #[arg(long, conflicts_with = "once")]
    pub run_now: bool,
    /// Extract every selected scheme from the beginning: discard the saved position of a run that
    /// did not finish (by default the next extraction resumes it after its last confirmed page).
    #[arg(long)]
    pub restart: bool,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub filter: SchemeFilter,
    /// Concurrent consumers per scheme in this process.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub filter: SchemeFilter,
    /// Run every selected scheme once, wait until everything published is loaded or
    /// dead-lettered, print a summary and exit: 0 when every record settled without a dead
    /// letter; 3 when the run finished but records were dead-lettered (the summary says how many
    /// and the `ferry replay` command); 4 when a target stayed down longer than
    /// --outage-limit-secs (its messages stay queued); 1 on a fatal error (a scheme that failed or stopped on a
    /// configuration error, a lost broker, --timeout-secs).
    #[arg(long)]
    pub once: bool,
    /// With --once: exit 0 even when records were dead-lettered (they are still reported).
    #[arg(long, requires = "once")]
    pub allow_dead_letters: bool,
    /// Concurrent consumers per scheme and stage.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
    /// With --once: give up (exit 1) if the run has not settled after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout_secs: u64,
    /// With --once: how long to wait for a target that does not answer (its messages are held in
    /// their queue meanwhile, and the wait is logged every few seconds); after that, exit 4 with
    /// the messages still queued.
    #[arg(long, default_value_t = 900)]
    pub outage_limit_secs: u64,
    /// Extract every selected scheme from the beginning: discard the saved position of a run that
    /// did not finish (by default the next extraction resumes it after its last confirmed page).
    #[arg(long)]
    pub restart: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StageArg {
    Transform,
    Load,
}

/// Which dead letters `replay` and `discard` take: every filter given must hold.
#[derive(Debug, Args, Default)]
pub struct DeadLetterFilterArgs {
    /// Only dead letters of this error class.
    #[arg(long, value_enum)]
    pub error_class: Option<ErrorClassArg>,
    /// Only dead letters whose error or payload (record id and data) contains TEXT, ignoring case.
    #[arg(long = "match", value_name = "TEXT")]
    pub text: Option<String>,
    /// Only the dead letter of this record id (repeatable).
    #[arg(long = "record", value_name = "ID")]
    pub records: Vec<String>,
    /// Only dead letters that failed (last) at or after TIME: RFC 3339 (`2026-03-01T08:00:00+08:00`),
    /// or `YYYY-MM-DD[ HH:MM[:SS]]` in UTC.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only dead letters that failed (last) before TIME (same forms as --since).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Take at most this many dead letters (per stage).
    #[arg(long)]
    pub limit: Option<usize>,
    /// List what would be taken, take nothing (audited as a dry run).
    #[arg(long)]
    pub dry_run: bool,
    /// The name recorded in the audit (default: the OS user).
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ErrorClassArg {
    Transient,
    Record,
    Config,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The scheme whose dead letters to move.
    #[arg(long)]
    pub scheme: String,
    /// Which stage's dead-letter queue; default both (with --rerender: load).
    #[arg(long, value_enum)]
    pub stage: Option<StageArg>,
    #[command(flatten)]
    pub filter: DeadLetterFilterArgs,
    /// Move at most this many dead letters a second: `N/s`, `N/min` or `N` (per second).
    #[arg(long, value_name = "N/s", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Load dead letters: send the source record each was rendered from back through the
    /// transform, so a fixed mapping renders it again (nothing is extracted again).
    #[arg(long)]
    pub rerender: bool,
}

#[derive(Debug, Args)]
pub struct DiscardArgs {
    /// The scheme whose dead letters to remove.
    #[arg(long)]
    pub scheme: String,
    /// Which stage's dead-letter queue.
    #[arg(long, value_enum)]
    pub stage: StageArg,
    #[command(flatten)]
    pub filter: DeadLetterFilterArgs,
}

#[derive(Debug, Args)]
pub struct TeardownArgs {
    /// The retired scheme whose queues to remove (it need not be in the configuration any more).
    #[arg(long)]
    pub scheme: String,
    /// Remove the queues even while they hold messages or have consumers (the messages are lost).
    #[arg(long)]
    pub force: bool,
    /// The name recorded in the audit (default: the OS user).
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
}

/// `--since` / `--until`: RFC 3339, or a date and time without an offset, taken as UTC.
fn parse_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(format!(
        "`{text}` is not a time: use RFC 3339 (2026-03-01T08:00:00+08:00) or \
         YYYY-MM-DD[ HH:MM[:SS]] in UTC"
    ))
}

/// `--rate`: `N/s`, `N/min` or `N`, as messages per second.
fn parse_rate(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (number, per_secs) = if let Some(n) = text.strip_suffix("/s") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("/min") {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n / per_secs),
        _ => Err(format!(
            "`{text}` is not a rate: use N/s or N/min with N a positive number (e.g. 5/s)"
        )),
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub filter: SchemeFilter,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// Address to listen on; default `[console] listen`, else 127.0.0.1:9190 (loopback only: give
    /// 0.0.0.0:9190 to reach it from other machines, e.g. in docker-compose).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

#[derive(Debug, Args, Default)]
pub struct LintArgs {
    /// After the offline checks, check each scheme against its live services: fetch one sample
    /// page from the source (nothing is written, no checkpoint moves) and report target
    /// placeholders no fetched record has, target SQL columns the target table lacks, and a MySQL
    /// source whose `id` column is not a unique key of its table.
    #[arg(long)]
    pub online: bool,
    #[command(flatten)]
    pub filter: SchemeFilter,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The scheme to preview.
    #[arg(long)]
    pub scheme: String,
    /// A JSON file holding an array of source records (or one record), or `-` for standard input.
    #[arg(long)]
    pub input: String,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub filter: SchemeFilter,
    /// Write what came out into each case's `expect` (the keys it has, `errors` when records
    /// failed), keeping the rest of the file; review the change before committing it.
    #[arg(long)]
    pub update: bool,
}

/// `ferry test --help`: the test file format.
const TEST_FILE_FORMAT: &str = "\
Test files: a scheme file schemes/NAME.json keeps its cases in schemes/tests/NAME.test.json (the \
`schemes/*.json` glob does not reach tests/, so a test file is never read as a scheme).

{
  \"now\": \"2026-03-02T09:30:00+08:00\",  optional: the time templates see
  \"cases\": [
    {
      \"name\": \"两条留言合成一条消息\",           required, unique in the file
      \"now\": \"...\",                          optional, for this case
      \"records\": [ {\"id\": 1, \"name\": \"张三\"} ], source records, as the source yields them
      \"expect\": {                              every key given is compared:
        \"records\":    [ {\"id\": \"1\", \"request\": {...}} ],  each rendered target request
        \"statements\": [ {\"sql\": \"INSERT ...\", \"rows\": [ {\"name\": \"张三\"} ]} ],
                      MySQL targets: each statement the sink runs, with the binds of each row
        \"messages\":   [ {\"msgtype\": \"markdown\", \"markdown\": {...}, \"at\": {...}} ],
                      robot targets: each message body pushed (signature aside)
        \"requests\":   [ {\"method\": \"POST\", \"path\": \"/v1/orders\", \"content_type\": \"...\", \"body\": [...]} ],
                      http targets: each call, `batch_size` records a body
        \"errors\":     [ {\"record\": \"2\", \"path\": \"main_params.datetime_new\", \"message\": \"...\"} ]
                      the records that fail, always compared (default: none)
      }
    }
  ]
}

`now` defaults to 2026-01-01T09:00:00+08:00. A record is named by the scheme's source `id` field, or #N (its place in the case) without one. \
Each case runs the transform stage's mapping, the load messages as queued, and the sink's own \
rendering; nothing is sent. A failing case prints each differing field (`messages[0].markdown.text`, \
a line diff for texts). Exit codes: 0 every case passed; 1 a case failed, a test file could not be \
read, or there were no cases. `--update` writes what came out as the expectation.";

#[derive(Debug, Args)]
pub struct SandboxArgs {
    #[command(flatten)]
    pub options: ferry_sandbox::SandboxOptions,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ferry service of docker-compose.yml.
    struct Service {
        name: String,
        command: Vec<String>,
        /// Its healthcheck's `test`, its own or the `x-ferry` anchor's.
        healthcheck: Option<Vec<String>>,
    }

    /// Each ferry service in docker-compose.yml.
    fn compose_ferry_services() -> Vec<Service> {
        let compose = include_str!("../../../docker-compose.yml");
        let flow = |text: &str| -> Vec<String> {
            serde_json::from_str(text.trim()).expect("a JSON-style flow array")
        };
        // (name, is ferry, command, own healthcheck)
        let mut services: Vec<(String, bool, Option<Vec<String>>, Option<Vec<String>>)> =
            Vec::new();
        let mut anchor_healthcheck = None;
        let mut in_services = false;
        for line in compose.lines() {
            if line.starts_with("services:") {
                in_services = true;
                continue;
            }
            if !in_services {
                if let Some(test) = line.trim().strip_prefix("test:") {
                    anchor_healthcheck = Some(flow(test));
                }
                continue;
            }
            let indent = line.len() - line.trim_start().len();
            let text = line.trim();
            if indent == 2 && text.ends_with(':') {
                services.push((text.trim_end_matches(':').to_string(), false, None, None));
            } else if let Some(current) = services.last_mut() {
                if text.contains("*ferry") || text == "image: ferry:latest" {
                    current.1 = true;
                }
                if let Some(args) = text.strip_prefix("command:") {
                    current.2 = Some(flow(args));
                }
                if let Some(test) = text.strip_prefix("test:") {
                    current.3 = Some(flow(test));
                }
            }
        }
        services
            .into_iter()
            .filter(|(_, is_ferry, _, _)| *is_ferry)
            .map(|(name, _, cmd, healthcheck)| Service {
                command: cmd.unwrap_or_else(|| panic!("service {name} has no command")),
                healthcheck: healthcheck.or_else(|| anchor_healthcheck.clone()),
                name,
            })
            .collect()
    }

    #[test]
    fn every_compose_service_command_parses_with_this_cli() {
        let services = compose_ferry_services();
        let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["sandbox", "extractor", "transformer", "loader", "console"]
        );
        for Service {
            name: service,
            command: args,
            ..
        } in &services
        {
            let argv = std::iter::once("ferry".to_string()).chain(args.iter().cloned());
            if let Err(e) = Cli::try_parse_from(argv) {
                panic!(
                    "docker-compose.yml service `{service}`: `ferry {}` does not parse:\n{e}",
                    args.join(" ")
                );
            }
        }
    }

    /// `docker compose up` moves the seed schemes' data at once: the extractor runs each scheme
    /// when it starts, then follows the schedules.
    #[test]
    fn the_compose_extractor_runs_every_scheme_when_it_starts() {
        let services = compose_ferry_services();
        let extractor = services.iter().find(|s| s.name == "extractor").unwrap();
        let argv = std::iter::once("ferry".to_string()).chain(extractor.command.iter().cloned());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Extract(args) => assert!(args.run_now && !args.once, "{args:?}"),
            other => panic!("the extractor runs {other:?}"),
        }
    }

    /// Every ferry service has a healthcheck on `/healthz` at the port it serves (the roles'
    /// FERRY_METRICS_ADDR, the sandbox's --listen), with a client the image has.
    #[test]
    fn every_compose_ferry_service_has_a_healthz_healthcheck() {
        let dockerfile = include_str!("../../../Dockerfile");
        assert!(dockerfile.contains(" curl "), "the image needs curl");
        let compose = include_str!("../../../docker-compose.yml");
        assert!(compose.contains("FERRY_METRICS_ADDR: 0.0.0.0:9100"));
        for service in compose_ferry_services() {
            let port = if service.name == "sandbox" {
                "9180"
            } else {
                "9100"
            };
            assert_eq!(
                service.healthcheck,
                Some(
                    [
                        "CMD",
                        "curl",
                        "-fsS",
                        &format!("http://127.0.0.1:{port}/healthz"),
                    ]
                    .map(String::from)
                    .to_vec()
                ),
                "service {}",
                service.name
            );
        }
    }

    /// Prometheus (a compose service reading config/prometheus.yml) scrapes every role's
    /// /metrics port, every replica of it.
    #[test]
    fn prometheus_scrapes_every_compose_role() {
        let compose = include_str!("../../../docker-compose.yml");
        assert!(compose.contains("./config/prometheus.yml:/etc/prometheus/prometheus.yml:ro"));
        let prometheus = include_str!("../../../config/prometheus.yml");
        for service in compose_ferry_services()
            .iter()
            .filter(|s| s.name != "sandbox")
        {
            let job = format!(
                "  - job_name: ferry-{name}\n    dns_sd_configs:\n      - names: [{name}]\n        type: A\n        port: 9100\n",
                name = service.name
            );
            assert!(
                prometheus.contains(&job),
                "no scrape job for {}",
                service.name
            );
        }
    }

    #[test]
    fn the_image_runs_the_ferry_binary() {
        let dockerfile = include_str!("../../../Dockerfile");
        assert!(dockerfile.contains(r#"ENTRYPOINT ["ferry"]"#));
        assert!(dockerfile.contains("cargo build --release --locked --bin ferry"));
    }

    #[test]
    fn rates_and_times_parse() {
        assert_eq!(parse_rate("5/s"), Ok(5.0));
        assert_eq!(parse_rate("30/min"), Ok(0.5));
        assert_eq!(parse_rate("2"), Ok(2.0));
        assert!(parse_rate("0/s").unwrap_err().contains("not a rate"));
        assert!(parse_rate("fast").is_err());
        let utc = |s: &str| parse_time(s).unwrap().to_rfc3339();
        assert_eq!(
            utc("2026-03-01T08:00:00+08:00"),
            "2026-03-01T00:00:00+00:00"
        );
        assert_eq!(utc("2026-03-01 08:00"), "2026-03-01T08:00:00+00:00");
        assert_eq!(utc("2026-03-01"), "2026-03-01T00:00:00+00:00");
        assert!(parse_time("yesterday").unwrap_err().contains("not a time"));
    }

    #[test]
    fn the_cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
