//! `roundtable`: the command line of a Roundtable device.
//!
//! Exit codes: 0 ok; 1 refused or a check failed (the message says why); 2 usage or I/O error.
//! With `--json`, stdout holds exactly one JSON document and every message goes to stderr.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand};
use roundtable_app::{AppError, Draft, Seat};
use roundtable_core::bundle::BundleError;
use roundtable_core::{DeviceId, DeviceKey, Effect, EntryId, GroupId, MemberId, Rule, StanceKind};
use roundtable_store::{Group, Home, KeyError, OpenError, StoreError};
use serde_json::{Value, json};

mod audit;
mod net;
mod progress;
mod sealed;
mod show;

#[derive(Parser)]
#[command(
    name = "roundtable",
    version,
    about = "A shared, signed record for a partnership where every member has an equal seat"
)]
struct Cli {
    /// Folder that holds this device's record and key.
    #[arg(long, global = true, env = "ROUNDTABLE_HOME")]
    home: Option<PathBuf>,
    /// Print one JSON document on stdout (messages go to stderr).
    #[arg(long, global = true)]
    json: bool,
    /// The group to use (needed only when this device holds more than one).
    #[arg(long, global = true)]
    group: Option<String>,
    /// Name of an environment variable holding the passphrase that protects the device key.
    #[arg(long, global = true, value_name = "VAR")]
    passphrase_env: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Set up this device for a member.
    Init {
        #[arg(long)]
        name: String,
        /// Your communication and access needs, in your words.
        #[arg(long, default_value = "")]
        needs: String,
    },
    /// Show this device's member id and device id.
    Id,
    /// Start or look at groups.
    Group {
        #[command(subcommand)]
        cmd: GroupCmd,
    },
    /// Add, list, remove members, or leave.
    Member {
        #[command(subcommand)]
        cmd: MemberCmd,
    },
    /// Your devices: link another one (a phone, a laptop), list them, stop a lost one.
    Device {
        #[command(subcommand)]
        cmd: DeviceCmd,
    },
    /// Start a thread.
    Thread {
        #[command(subcommand)]
        cmd: ThreadCmd,
    },
    /// Write a message in a thread.
    Post { thread_id: String, text: String },
    /// Make a proposal in a thread.
    Propose {
        thread_id: String,
        title: String,
        /// The easy-read version, shown first.
        #[arg(long)]
        easy_read: String,
        /// The full text.
        #[arg(long, default_value = "")]
        text: String,
        /// The rule it is decided by: the group's, or consent in a majority group (never weaker).
        #[arg(long, value_parser = ["consent", "majority"])]
        rule: Option<String>,
        /// How many members must give a view before it can be closed (the group's, or more).
        #[arg(long)]
        quorum: Option<u64>,
        /// This proposal, if passed, removes this member.
        #[arg(long, value_name = "MEMBER_ID", conflicts_with = "sets_rule")]
        removes: Option<String>,
        /// This proposal, if passed, changes the group's rule (with --sets-quorum).
        #[arg(long, value_parser = ["consent", "majority"], requires = "sets_quorum")]
        sets_rule: Option<String>,
        /// This proposal, if passed, changes the group's quorum (with --sets-rule).
        #[arg(long, requires = "sets_rule")]
        sets_quorum: Option<u64>,
        /// The day you mean it to close by (shown to everyone; closing stays a member's step).
        #[arg(long, value_name = "YYYY-MM-DD")]
        closes: Option<String>,
    },
    /// Give your stance on a proposal (or record one for another member with --for).
    Stance {
        proposal_id: String,
        #[arg(value_parser = ["agree", "abstain", "disagree", "block"])]
        stance: String,
        #[arg(long, default_value = "")]
        reason: String,
        /// Record this stance for another member; it counts once they confirm it.
        #[arg(long = "for", value_name = "MEMBER_ID")]
        for_member: Option<String>,
    },
    /// Say how you understood an entry, so its author can confirm or correct it.
    Understand {
        entry_id: String,
        #[arg(long = "as")]
        as_text: String,
    },
    /// Confirm an understanding of your entry, or a stance recorded for you.
    Confirm { entry_id: String },
    /// Correct your entry (or an understanding of it); the original keeps its id.
    Correct { entry_id: String, text: String },
    /// Close a proposal: the stances are counted and the outcome recorded.
    Close {
        proposal_id: String,
        #[arg(long)]
        outcome: String,
    },
    /// Actions: who does what by when.
    Action {
        #[command(subcommand)]
        cmd: ActionCmd,
    },
    /// Show threads, messages, proposals and actions.
    Show {
        thread_id: Option<String>,
        /// Also show entries hidden by a correction.
        #[arg(long)]
        all: bool,
    },
    /// Show the record's heads (two devices with the same entries show the same heads).
    Heads,
    /// Write every entry of the group to a bundle file, or the public record as an Automerge file.
    #[command(group(clap::ArgGroup::new("to").required(true).multiple(true)))]
    Export {
        #[arg(long, value_name = "FILE", group = "to")]
        bundle: Option<PathBuf>,
        /// Write the group's public document as a standard Automerge file, NAME.automerge, in DIR.
        #[arg(long, value_name = "DIR", group = "to")]
        automerge: Option<PathBuf>,
    },
    /// Verify a bundle's whole history, offline, with no home and no key. Exit 0 verified, 1 problems
    /// found, 2 unreadable input.
    Audit {
        bundle: PathBuf,
        /// Also write a report for people, as HTML.
        #[arg(long, value_name = "FILE.html")]
        report: Option<PathBuf>,
        /// Threads for checking signatures (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Let an auditor's device sync the record (it can never write).
    Auditor {
        #[command(subcommand)]
        cmd: AuditorCmd,
    },
    /// Name an always-on device as a keeper of the group's record (the group decides).
    Keeper {
        #[command(subcommand)]
        cmd: KeeperCmd,
    },
    /// Run this device as a keeper: serve the group's record and pull from members' devices,
    /// until stopped. Prints {"device_id", "addrs", "tickets", "health"} first.
    Keep {
        /// Address to listen on (repeatable), e.g. 127.0.0.1:0. Default: every interface, a random port.
        #[arg(long, value_name = "ADDR")]
        listen: Vec<std::net::SocketAddr>,
        /// A self-hosted iroh relay, for members on different networks.
        #[arg(long, value_name = "URL")]
        relay: Option<String>,
        /// A member's serving device to pull from every round (its ticket; repeatable).
        #[arg(long, value_name = "TICKET")]
        peer: Vec<String>,
        /// Answer GET /health on this loopback address, e.g. 127.0.0.1:8099.
        #[arg(long, value_name = "ADDR")]
        health: Option<std::net::SocketAddr>,
        /// Seconds between rounds of pulling from the devices it knows.
        #[arg(long, default_value_t = 30)]
        interval: u64,
        /// Stop after this many rounds (default: run until stopped).
        #[arg(long)]
        rounds: Option<u64>,
    },
    /// Check and store the entries of a bundle file.
    Import { file: PathBuf },
    /// Keep this device reachable so others can sync with it; prints a ticket first.
    Serve {
        /// Address to listen on (repeatable), e.g. 127.0.0.1:0. Default: every interface, a random port.
        #[arg(long, value_name = "ADDR")]
        listen: Vec<std::net::SocketAddr>,
        /// Do not look for other devices on the local network.
        #[arg(long)]
        no_mdns: bool,
        /// A self-hosted iroh relay, for members on different networks.
        #[arg(long, value_name = "URL")]
        relay: Option<String>,
        /// Also keep a live sync with this serving device (repeatable).
        #[arg(long, value_name = "TICKET")]
        connect: Vec<String>,
        /// Also open the members' web page (its link is in the first line, as "url").
        #[arg(long)]
        web: bool,
        /// Port for --web on 127.0.0.1 (default: any free port).
        #[arg(long, requires = "web")]
        web_port: Option<u16>,
    },
    /// Sync once with a serving device (its ticket), or with every member's device nearby.
    Sync {
        #[arg(required_unless_present = "nearby")]
        ticket: Option<String>,
        /// No ticket: sync once with every member's device found on the local network (mDNS).
        #[arg(long, conflicts_with = "ticket")]
        nearby: bool,
        /// Give up after this many seconds (with --nearby: stop looking then).
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// A self-hosted iroh relay, for members on different networks (the one the other
        /// device serves with).
        #[arg(long, value_name = "URL")]
        relay: Option<String>,
    },
    /// Make a one-time invitation for a new member's device.
    Invite {
        /// How long the invitation works, in minutes.
        #[arg(long, default_value_t = 60)]
        expires: u64,
    },
    /// Join a group with an invitation, on a new device.
    Join {
        ticket: String,
        #[arg(long)]
        name: String,
        /// Your communication and access needs, in your words.
        #[arg(long, default_value = "")]
        needs: String,
    },
    /// Devices this one has synced with.
    Peers,
    /// Open the group in your web browser: a page on this device (with --lan also on phones and
    /// tablets let in). Prints {"url": ...} first.
    Web {
        /// Port on 127.0.0.1 (default: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Where the page's sync listens (repeatable), e.g. 127.0.0.1:0. Default: every
        /// interface, a random port.
        #[arg(long, value_name = "ADDR")]
        listen: Vec<std::net::SocketAddr>,
        /// Do not look for other devices on the local network.
        #[arg(long)]
        no_mdns: bool,
        /// A self-hosted iroh relay, for members on different networks.
        #[arg(long, value_name = "URL")]
        relay: Option<String>,
        /// Also open the page to phones and tablets on the local network, over HTTPS, each let
        /// in with a one-time code from the Devices page. Needs a device set up (init) first.
        #[arg(long)]
        lan: bool,
        /// Where the page listens on the local network, e.g. 192.168.1.5:8443 (default: every
        /// IPv4 address of this computer, the port of the last launch or any).
        #[arg(long, value_name = "ADDR", requires = "lan")]
        lan_listen: Option<std::net::SocketAddr>,
    },
}

#[derive(Subcommand)]
enum GroupCmd {
    /// Start a new group; you are its first member.
    Create {
        name: String,
        #[arg(long, value_parser = ["consent", "majority"], default_value = "consent")]
        rule: String,
        #[arg(long, default_value_t = 1)]
        quorum: u64,
    },
    /// The groups on this device.
    List,
    /// Remove a group from this device only (other devices keep theirs); needs --yes.
    Forget {
        group_id: String,
        /// Confirm: every entry of that group on this device is deleted.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum MemberCmd {
    /// Propose that someone joins (or comes back); they join when the group agrees.
    Add {
        member_id: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        needs: String,
    },
    /// Leave the group yourself.
    Leave,
    /// Say, in your own words, the name you go by and what helps you take part (everyone sees it).
    #[command(group(clap::ArgGroup::new("about").required(true).multiple(true)))]
    About {
        #[arg(long, group = "about")]
        name: Option<String>,
        /// Your communication and access needs, in your words ("" to say none).
        #[arg(long, group = "about")]
        needs: Option<String>,
    },
    /// Help a member who lost every device back onto a new one: a one-time link for their new
    /// device (`device join` there); the group is then asked to agree that it is theirs.
    Recover {
        member_id: String,
        /// How long the link works, in minutes (at most 60).
        #[arg(long, default_value_t = 10)]
        expires: u64,
        /// Address to answer on (repeatable; default: every interface, any free port).
        #[arg(long, value_name = "ADDR")]
        listen: Vec<std::net::SocketAddr>,
        /// A self-hosted iroh relay, when the new device is on another network.
        #[arg(long, value_name = "URL")]
        relay: Option<String>,
    },
    /// Propose that a member is removed; with --decision, close that proposal instead.
    Remove {
        member_id: String,
        #[arg(long, value_name = "PROPOSAL_ID")]
        decision: Option<String>,
    },
    List,
}

#[derive(Subcommand)]
enum DeviceCmd {
    /// On a device you use now: make a one-time link for another device of yours, and wait for it.
    Link {
        /// How long the link works, in minutes (at most 60).
        #[arg(long, default_value_t = 10)]
        expires: u64,
        /// Address to answer on (repeatable; default: every interface, any free port).
        #[arg(long, value_name = "ADDR")]
        listen: Vec<std::net::SocketAddr>,
        /// A self-hosted iroh relay, when the new device is on another network.
        #[arg(long, value_name = "URL")]
        relay: Option<String>,
    },
    /// On the new device: take the link your other device shows (makes this device's home).
    Join {
        ticket: String,
        /// What you call this device ("Ben's phone").
        #[arg(long)]
        name: String,
        /// A self-hosted iroh relay (the one your other device links with).
        #[arg(long, value_name = "URL")]
        relay: Option<String>,
    },
    /// Your devices in the group.
    List,
    /// Stop one of your devices (a lost or broken one), from another of yours.
    Revoke { device_id: String },
}

#[derive(Subcommand)]
enum ThreadCmd {
    /// Start a thread; with --sealed, only its readers can read what is written in it.
    New {
        title: String,
        /// Only the readers can read it; everyone sees its title, readers and reason.
        #[arg(long, requires = "reason")]
        sealed: bool,
        /// A member who may read it (repeatable). You are always a reader.
        #[arg(long = "reader", value_name = "MEMBER_ID", requires = "sealed")]
        readers: Vec<String>,
        /// Why it is sealed, in plain words. Everyone in the group sees this.
        #[arg(long, requires = "sealed")]
        reason: Option<String>,
    },
    /// Agree that a member may read a sealed thread, from its start (they read once every reader agrees).
    AddReader {
        thread_id: String,
        member_id: String,
    },
    /// Stop a member reading a sealed thread: nothing written after can be read by them.
    RemoveReader {
        thread_id: String,
        member_id: String,
    },
    /// Ask to read a sealed thread.
    Ask {
        thread_id: String,
        /// Why you ask.
        #[arg(long)]
        why: String,
    },
    /// Say no to a member's request to read a sealed thread, with a reason they will see.
    Decline {
        thread_id: String,
        member_id: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum AuditorCmd {
    /// Let this device (an auditor's) sync the public record and sealed ciphertext, never keys.
    Add {
        device_id: String,
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum KeeperCmd {
    /// Ask the group to name this device (an always-on computer) a keeper: it stores and passes on
    /// every entry, sealed ones as ciphertext only, and can never write.
    Add {
        device_id: String,
        #[arg(long)]
        name: String,
    },
    /// Ask the group to stop a keeper: it can no longer sync with the group's devices.
    Remove { device_id: String },
}

#[derive(Subcommand)]
enum ActionCmd {
    Add {
        thread_id: String,
        text: String,
        #[arg(long, value_name = "MEMBER_ID")]
        owner: String,
        #[arg(long, value_name = "YYYY-MM-DD")]
        due: Option<String>,
    },
    /// Say an action is done (only its owner's word makes it done; anyone else's is a suggestion).
    Done { action_id: String },
    /// Take back your own "done" (the entry id `action done` printed), within a day of it.
    Undo { done_id: String },
}

/// A refusal: the command was understood but the rules or a check said no (exit 1).
#[derive(Debug)]
struct Refusal(String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Refusal {}

fn refuse(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Refusal(msg.into()))
}

fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.is::<Refusal>() || cause.is::<BundleError>() {
            return 1;
        }
        if let Some(a) = cause.downcast_ref::<AppError>() {
            return if a.is_refusal() { 1 } else { 2 };
        }
        if matches!(
            key_error(cause),
            Some(
                KeyError::WrongPassphrase
                    | KeyError::PassphraseNeeded
                    | KeyError::PassphraseTooShort { .. }
            )
        ) || matches!(open_error(cause), Some(OpenError::NotPrivate { .. }))
        {
            return 1;
        }
        if let Some(s) = cause.downcast_ref::<StoreError>() {
            return match s {
                StoreError::Refused(_) | StoreError::NoGenesis(_) => 1,
                _ => 2,
            };
        }
        if cause.is::<KeyError>() || cause.is::<OpenError>() {
            return 2;
        }
    }
    2
}

/// The key's error in `cause`, whichever of the store's errors (or the application's) carries it.
pub(crate) fn key_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a KeyError> {
    if let Some(k) = cause.downcast_ref::<KeyError>() {
        return Some(k);
    }
    match cause.downcast_ref::<OpenError>() {
        Some(OpenError::Key(k)) => return Some(k),
        Some(OpenError::Store(s)) => return s.as_key(),
        _ => {}
    }
    match cause.downcast_ref::<AppError>() {
        Some(AppError::Store(s)) => s.as_key(),
        _ => cause
            .downcast_ref::<StoreError>()
            .and_then(StoreError::as_key),
    }
}

/// The opening error in `cause`, whichever of the store's errors (or the application's) carries it.
fn open_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a OpenError> {
    if let Some(o) = cause.downcast_ref::<OpenError>() {
        return Some(o);
    }
    match cause.downcast_ref::<AppError>() {
        Some(AppError::Store(s)) => s.as_open(),
        _ => cause
            .downcast_ref::<StoreError>()
            .and_then(StoreError::as_open),
    }
}

/// What to type next, for the errors whose remedy is a command or a flag (the libraries' messages
/// never name one: the web page shows them too).
fn hint(e: &anyhow::Error) -> &'static str {
    for cause in e.chain() {
        match cause.downcast_ref::<AppError>() {
            Some(AppError::ReasonNeeded { .. }) => return " (add --reason \"...\")",
            Some(AppError::SealedLocked) => return " (with --passphrase-env VAR)",
            _ => {}
        }
        if cause.is::<roundtable_core::ParseIdError>() {
            return " (copy it from `roundtable show` or `roundtable id`)";
        }
        if let Some(OpenError::NoHome(_)) = open_error(cause) {
            return " (run `roundtable init --name NAME`)";
        }
        if let Some(KeyError::PassphraseNeeded) = key_error(cause) {
            return " (with --passphrase-env VAR)";
        }
    }
    ""
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    if let Cmd::Audit {
        bundle,
        report,
        threads,
    } = &cli.cmd
    {
        return audit::run(bundle, report.as_deref(), *threads, json);
    }
    match run(cli) {
        Ok(v) => match print_out(&v, json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("roundtable: could not write to standard output: {e}");
                ExitCode::from(2)
            }
        },
        Err(e) => {
            let code = exit_code(&e);
            eprintln!("roundtable: {e:#}{}", hint(&e));
            ExitCode::from(code)
        }
    }
}

/// What a command says: a JSON value, and the same in plain words.
struct Out {
    json: Value,
    words: String,
}

fn print_out(o: &Out, json: bool) -> std::io::Result<()> {
    if o.json.is_null() && o.words.is_empty() {
        return Ok(());
    }
    if json {
        write_stdout(&o.json.to_string())
    } else {
        write_stdout(o.words.trim_end())
    }
}

/// Writes `text` and a newline to stdout, and flushes. A reader that closed the pipe early
/// (`| head`) has had all it wanted: that is success, never a panic (`println!` panics).
pub(crate) fn write_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        done => done,
    }
}

fn home_dir(cli: &Cli) -> anyhow::Result<PathBuf> {
    if let Some(h) = &cli.home {
        return Ok(h.clone());
    }
    let dirs =
        directories::ProjectDirs::from("org", "Roundtable", "roundtable").ok_or_else(|| {
            anyhow!("could not find a data folder for this user: give one with --home DIR")
        })?;
    Ok(dirs.data_dir().to_path_buf())
}

fn passphrase(cli: &Cli) -> anyhow::Result<Option<String>> {
    match &cli.passphrase_env {
        None => Ok(None),
        Some(var) => std::env::var(var).map(Some).map_err(|_| {
            anyhow!("the environment variable {var} (from --passphrase-env) is not set")
        }),
    }
}

fn parse_id<T: std::str::FromStr<Err = roundtable_core::ParseIdError>>(
    s: &str,
) -> anyhow::Result<T> {
    s.parse::<T>().map_err(anyhow::Error::new)
}

struct Ctx {
    home: Home,
}

impl Ctx {
    fn key(&self, cli: &Cli) -> anyhow::Result<DeviceKey> {
        Ok(self.home.device_key(passphrase(cli)?.as_deref())?)
    }

    fn group(&self, cli: &Cli) -> anyhow::Result<Group> {
        let id = self.group_id(cli)?;
        Ok(self.home.open_group(&id)?)
    }

    fn group_id(&self, cli: &Cli) -> anyhow::Result<GroupId> {
        if let Some(g) = &cli.group {
            return parse_id(g);
        }
        let groups = self.home.groups()?;
        match groups.as_slice() {
            [] => Err(refuse(
                "this device holds no group yet: start one with `roundtable group create NAME`, or import a bundle",
            )),
            [(id, _)] => Ok(*id),
            many => Err(anyhow!(
                "this device holds {} groups; choose one with --group ID:\n{}",
                many.len(),
                many.iter()
                    .map(|(id, n)| format!("  {id}  {n}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )),
        }
    }

    /// Runs one member action through the application layer, with this device's keys unlocked.
    fn act<T>(
        &self,
        cli: &Cli,
        f: impl FnOnce(&Seat, &mut Group) -> Result<T, AppError>,
    ) -> anyhow::Result<T> {
        let (key, enc) = roundtable_app::unlock(&self.home, passphrase(cli)?.as_deref())?;
        let seat = Seat::new(&self.home, &key, Some(&enc));
        let mut g = self.group(cli)?;
        Ok(f(&seat, &mut g)?)
    }
}

fn entry_out(key: &str, id: EntryId, words: String) -> Out {
    Out {
        json: json!({ key: id.to_string() }),
        words: format!("{words}\nIts id is {id}"),
    }
}

/// `device list`: this member's devices, the first one first.
fn device_list(list: &[roundtable_app::DeviceInfo], member: &DeviceId) -> anyhow::Result<Out> {
    let json: Vec<_> = list
        .iter()
        .map(|d| {
            json!({
                "device_id": d.id.to_string(),
                "name": d.name.clone().unwrap_or_else(|| "first device".into()),
                "stopped": d.stopped,
                "this_device": d.this,
            })
        })
        .collect();
    let words = list
        .iter()
        .map(|d| {
            format!(
                "{}  {}{}{}",
                d.id,
                d.name.as_deref().unwrap_or("first device"),
                if d.this { " (this device)" } else { "" },
                if d.stopped { " (stopped)" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Out {
        json: json!({ "member_id": member.to_string(), "devices": json }),
        words: format!("Your devices:\n{words}"),
    })
}

fn run(cli: Cli) -> anyhow::Result<Out> {
    let dir = home_dir(&cli)?;
    // A new key's passphrase is checked before anything else is done.
    if matches!(
        cli.cmd,
        Cmd::Init { .. }
            | Cmd::Join { .. }
            | Cmd::Device {
                cmd: DeviceCmd::Join { .. }
            }
    ) && let Some(p) = passphrase(&cli)?
    {
        roundtable_store::keyfile::check_new_passphrase(&p)?;
    }
    if let Cmd::Init { name, needs } = &cli.cmd {
        return init(&cli, &dir, name, needs);
    }
    if let Cmd::Join {
        ticket,
        name,
        needs,
    } = &cli.cmd
    {
        return net::join(&dir, passphrase(&cli)?.as_deref(), ticket, name, needs);
    }
    if let Cmd::Device {
        cmd: DeviceCmd::Join {
            ticket,
            name,
            relay,
        },
    } = &cli.cmd
    {
        return net::device_join(&dir, passphrase(&cli)?.as_deref(), ticket, name, relay);
    }
    // The page works on a device not set up yet (its welcome page) or locked (its passphrase page).
    if let Cmd::Web {
        port,
        listen,
        no_mdns,
        relay,
        lan,
        lan_listen,
    } = &cli.cmd
    {
        return net::web(net::WebArgs {
            dir: &dir,
            pass: passphrase(&cli)?,
            port: *port,
            listen,
            relay,
            mdns: !no_mdns,
            lan: *lan,
            lan_listen: *lan_listen,
        });
    }
    let home = Home::open(&dir)?;
    let ctx = Ctx { home };
    match &cli.cmd {
        Cmd::Init { .. }
        | Cmd::Join { .. }
        | Cmd::Web { .. }
        | Cmd::Device {
            cmd: DeviceCmd::Join { .. },
        } => unreachable!("handled above"),
        Cmd::Device {
            cmd:
                DeviceCmd::Link {
                    expires,
                    listen,
                    relay,
                },
        } => {
            let key = ctx.key(&cli)?;
            let group = ctx.group_id(&cli)?;
            drop(ctx);
            let net = net::LinkNet { listen, relay };
            net::device_link(
                &dir,
                key,
                passphrase(&cli)?,
                group,
                *expires,
                &net,
                cli.json,
            )
        }
        Cmd::Member {
            cmd:
                MemberCmd::Recover {
                    member_id,
                    expires,
                    listen,
                    relay,
                },
        } => {
            let member: DeviceId = parse_id(member_id)?;
            let key = ctx.key(&cli)?;
            let group = ctx.group_id(&cli)?;
            drop(ctx);
            let net = net::LinkNet { listen, relay };
            net::member_recover(&dir, key, group, member, *expires, &net, cli.json)
        }
        Cmd::Device {
            cmd: DeviceCmd::List,
        } => {
            let (list, member) = ctx.act(&cli, |seat, g| Ok((seat.devices(g), seat.member())))?;
            device_list(&list, &member)
        }
        Cmd::Device {
            cmd: DeviceCmd::Revoke { device_id },
        } => {
            let device: DeviceId = parse_id(device_id)?;
            let pass = passphrase(&cli)?;
            let key = ctx.key(&cli)?;
            let group = ctx.group_id(&cli)?;
            let stopped =
                roundtable_app::stop_device(&ctx.home, &key, pass.as_deref(), group, device)?;
            let mut out = entry_out(
                "entry_id",
                stopped.entry,
                format!(
                    "Stopped device {device}: what it writes from now on is refused, and it cannot sync.\n\
                     Your key for sealed threads is changed, so it cannot read what is sealed from now on; \
                     your other devices get the new key when they next sync with this one."
                ),
            );
            out.json["key_changed"] = json!(true);
            out.json["also_stopped_in"] = json!(
                stopped
                    .also
                    .iter()
                    .map(|g| g.to_string())
                    .collect::<Vec<_>>()
            );
            Ok(out)
        }
        Cmd::Serve {
            listen,
            no_mdns,
            relay,
            connect,
            web,
            web_port,
        } => {
            let key = ctx.key(&cli)?;
            let group = ctx.group_id(&cli)?;
            drop(ctx);
            net::serve(net::ServeArgs {
                dir: &dir,
                key,
                pass: passphrase(&cli)?,
                group,
                listen,
                relay,
                connect,
                mdns: !no_mdns,
                web: web.then_some(web_port.unwrap_or(0)),
            })
        }

        Cmd::Keep {
            listen,
            relay,
            peer,
            health,
            interval,
            rounds,
        } => {
            let key = ctx.key(&cli)?;
            drop(ctx);
            net::keep(net::KeepArgs {
                dir: &dir,
                key,
                listen,
                relay,
                peers: peer,
                health: *health,
                interval: std::time::Duration::from_secs((*interval).max(1)),
                rounds: *rounds,
            })
        }
        Cmd::Sync {
            ticket,
            nearby,
            timeout,
            relay,
        } => {
            let key = ctx.key(&cli)?;
            match ticket {
                Some(ticket) if !nearby => {
                    drop(ctx);
                    net::sync(
                        &dir,
                        key,
                        passphrase(&cli)?.as_deref(),
                        ticket,
                        *timeout,
                        relay,
                    )
                }
                _ => {
                    let group = ctx.group_id(&cli)?;
                    drop(ctx);
                    net::sync_nearby(
                        &dir,
                        key,
                        passphrase(&cli)?.as_deref(),
                        group,
                        *timeout,
                        relay,
                    )
                }
            }
        }
        Cmd::Invite { expires } => {
            let key = ctx.key(&cli)?;
            let group = ctx.group_id(&cli)?;
            drop(ctx);
            net::invite(&dir, key, group, *expires, cli.json)
        }
        Cmd::Peers => net::peers(&ctx.home),
        Cmd::Id => {
            let key = ctx.key(&cli)?;
            let id = key.device_id();
            let member = roundtable_app::home_member(&ctx.home, &key);
            Ok(Out {
                json: json!({ "member_id": member.to_string(), "device_id": id.to_string() }),
                words: format!("Your member id: {member}\nThis device's id: {id}"),
            })
        }
        Cmd::Group {
            cmd: GroupCmd::Create { name, rule, quorum },
        } => {
            let rule = Rule::parse(rule).ok_or_else(|| anyhow!("unknown rule {rule}"))?;
            let (key, enc) = roundtable_app::unlock(&ctx.home, passphrase(&cli)?.as_deref())?;
            let id = Seat::new(&ctx.home, &key, Some(&enc))
                .create_group(name, rule, *quorum)?
                .id();
            Ok(Out {
                json: json!({ "group_id": id.to_string() }),
                words: format!(
                    "The group \"{name}\" is started, with you as its first member.\nIts id is {id}"
                ),
            })
        }
        Cmd::Group {
            cmd: GroupCmd::List,
        } => {
            let groups = ctx.home.groups()?;
            Ok(Out {
                json: json!({ "groups": groups.iter().map(|(id, n)| json!({"group_id": id.to_string(), "name": n})).collect::<Vec<_>>() }),
                words: if groups.is_empty() {
                    "This device holds no group yet.".into()
                } else {
                    groups
                        .iter()
                        .map(|(id, n)| format!("{n}  ({id})"))
                        .collect::<Vec<_>>()
                        .join("\n")
                },
            })
        }
        Cmd::Group {
            cmd: GroupCmd::Forget { group_id, yes },
        } => {
            let id: GroupId = parse_id(group_id)?;
            let name = ctx
                .home
                .groups()?
                .into_iter()
                .find(|(g, _)| *g == id)
                .map(|(_, n)| n)
                .ok_or(AppError::NoSuchGroup(id))?;
            let shown = if name.is_empty() {
                "(no name)".to_string()
            } else {
                format!("\"{name}\"")
            };
            if !*yes {
                return Err(refuse(format!(
                    "this would delete the group {shown} ({id}) from this device: every entry of it \
                     here. Other devices keep their copies. To go ahead, run the same command with --yes"
                )));
            }
            let (_, removed) = roundtable_app::forget_group(&ctx.home, &id)?;
            Ok(Out {
                json: json!({ "forgotten": id.to_string(), "entries_removed": removed }),
                words: format!(
                    "The group {shown} ({id}) is no longer on this device ({removed} entries removed). Other devices keep theirs."
                ),
            })
        }
        Cmd::Member { cmd } => member(&ctx, &cli, cmd),
        Cmd::Thread { cmd } => thread_cmd(&ctx, &cli, cmd),
        Cmd::Post { thread_id, text } => {
            let t: EntryId = parse_id(thread_id)?;
            let (id, words) = ctx.act(&cli, |seat, g| {
                let id = seat.post(g, t, text)?;
                Ok((id, match g.record.sealed_thread(&t) {
                    Some(_) => sealed::posted_words(&g.record, &t, &id),
                    None => "Your message is shared with the group. It cannot be deleted, only corrected.".into(),
                }))
            })?;
            Ok(entry_out("entry_id", id, words))
        }
        Cmd::Propose {
            thread_id,
            title,
            easy_read,
            text,
            rule,
            quorum,
            removes,
            sets_rule,
            sets_quorum,
            closes,
        } => {
            let rule = rule
                .as_deref()
                .map(|r| Rule::parse(r).ok_or_else(|| anyhow!("unknown rule {r}")))
                .transpose()?;
            let effect = match (removes, sets_rule, sets_quorum) {
                (Some(m), _, _) => Some(Effect::Remove {
                    member: parse_id::<MemberId>(m)?,
                }),
                (None, Some(r), Some(q)) => Some(Effect::Policy {
                    rule: Rule::parse(r).ok_or_else(|| anyhow!("unknown rule {r}"))?,
                    quorum: *q,
                }),
                _ => None,
            };
            let draft = Draft {
                thread: parse_id(thread_id)?,
                title: title.clone(),
                text: text.clone(),
                easy_read: easy_read.clone(),
                rule,
                quorum: *quorum,
                effect,
                closes: closes.clone(),
            };
            let id = ctx.act(&cli, |seat, g| seat.propose(g, draft))?;
            Ok(entry_out(
                "proposal_id",
                id,
                format!("Proposal \"{title}\" shared. Members can now give their stance."),
            ))
        }
        Cmd::Stance {
            proposal_id,
            stance,
            reason,
            for_member,
        } => {
            let s = StanceKind::parse(stance).ok_or_else(|| anyhow!("unknown stance {stance}"))?;
            let on_behalf = for_member
                .as_deref()
                .map(parse_id::<MemberId>)
                .transpose()?;
            let proposal = parse_id(proposal_id)?;
            let id = ctx.act(&cli, |seat, g| {
                seat.stance(g, proposal, s, reason, on_behalf)
            })?;
            let words = match on_behalf {
                Some(m) => {
                    format!("Stance \"{stance}\" recorded for {m}. It counts once they confirm it.")
                }
                None => format!("Your stance \"{stance}\" is recorded."),
            };
            Ok(entry_out("entry_id", id, words))
        }
        Cmd::Understand { entry_id, as_text } => {
            let target = parse_id(entry_id)?;
            let id = ctx.act(&cli, |seat, g| seat.understand(g, target, as_text))?;
            Ok(entry_out(
                "entry_id",
                id,
                "Your understanding is shared. The author can confirm or correct it.".into(),
            ))
        }
        Cmd::Confirm { entry_id } => {
            let target = parse_id(entry_id)?;
            let id = ctx.act(&cli, |seat, g| seat.confirm(g, target))?;
            Ok(entry_out("entry_id", id, "Confirmed.".into()))
        }
        Cmd::Correct { entry_id, text } => {
            let target = parse_id(entry_id)?;
            let id = ctx.act(&cli, |seat, g| seat.correct(g, target, text))?;
            Ok(entry_out(
                "entry_id",
                id,
                "Correction shared. The original is hidden from the usual view but keeps its id."
                    .into(),
            ))
        }
        Cmd::Close {
            proposal_id,
            outcome,
        } => {
            let proposal: EntryId = parse_id(proposal_id)?;
            let (_, t) = ctx.act(&cli, |seat, g| seat.close(g, proposal, outcome))?;
            let (decision, counts) = (t.decision, t.counts);
            Ok(Out {
                json: json!({
                    "decision": decision.as_str(),
                    "counts": {"agree": counts.agree, "abstain": counts.abstain, "disagree": counts.disagree, "block": counts.block},
                }),
                words: format!(
                    "The proposal is closed: it {}.\n{} agree, {} not sure, {} disagree, {} block.",
                    if decision == roundtable_core::Decision::Passed {
                        "passed"
                    } else {
                        "did not pass"
                    },
                    counts.agree,
                    counts.abstain,
                    counts.disagree,
                    counts.block
                ),
            })
        }
        Cmd::Action {
            cmd:
                ActionCmd::Add {
                    thread_id,
                    text,
                    owner,
                    due,
                },
        } => {
            let (thread, owner) = (parse_id(thread_id)?, parse_id(owner)?);
            let id = ctx.act(&cli, |seat, g| {
                seat.action(g, thread, text, owner, due.clone())
            })?;
            Ok(entry_out("action_id", id, "Action added.".into()))
        }
        Cmd::Action {
            cmd: ActionCmd::Undo { done_id },
        } => {
            let done = parse_id(done_id)?;
            let id = ctx.act(&cli, |seat, g| seat.action_undo(g, done))?;
            Ok(entry_out(
                "entry_id",
                id,
                "Taken back: the action is not marked done by you any more.".into(),
            ))
        }
        Cmd::Action {
            cmd: ActionCmd::Done { action_id },
        } => {
            let action = parse_id(action_id)?;
            let (id, counts) = ctx.act(&cli, |seat, g| {
                let id = seat.action_done(g, action)?;
                // Only the owner's word makes it done; anyone else's is a suggestion.
                let state = g.record.action_state(&action).unwrap_or_default();
                Ok((id, state.done.is_some_and(|d| d.member == seat.member())))
            })?;
            let words = if counts {
                "Marked as done.".to_string()
            } else {
                "You said it looks done. It counts as done when its owner says so too.".to_string()
            };
            Ok(entry_out("entry_id", id, words))
        }
        Cmd::Show { thread_id, all } => {
            let g = ctx.group(&cli)?;
            let only = thread_id.as_deref().map(parse_id::<EntryId>).transpose()?;
            if let Some(t) = only
                && !g.record.threads().contains(&t)
            {
                return Err(refuse(format!("there is no thread {t} in this group")));
            }
            let stored = ctx.home.entries(&g.id())?;
            let (me, secret) = sealed::show_keys(&ctx, &cli, &g.record)?;
            Ok(show::show(&g.record, only, *all, &stored, me, secret))
        }
        Cmd::Heads => {
            let g = ctx.group(&cli)?;
            let heads: Vec<String> = g.record.heads().iter().map(|h| h.to_string()).collect();
            Ok(Out {
                words: heads.join("\n"),
                json: json!({ "heads": heads }),
            })
        }
        Cmd::Export {
            bundle: None,
            automerge: Some(dir),
        } => audit::export_automerge(&mut ctx.group(&cli)?, dir),
        Cmd::Export {
            bundle: Some(path),
            automerge,
        } => {
            if let Some(dir) = automerge {
                audit::export_automerge(&mut ctx.group(&cli)?, dir)?;
            }
            let id = ctx.group_id(&cli)?;
            let (bytes, entries) = roundtable_app::export_bundle(&ctx.home, &id)?;
            write_atomically(path, &bytes)?;
            Ok(Out {
                json: json!({ "entries": entries, "bytes": bytes.len(), "file": path.display().to_string() }),
                words: format!("Wrote {} entries to {}.", entries, path.display()),
            })
        }
        Cmd::Import { file } => import(&ctx, &cli, file),
        Cmd::Export {
            bundle: None,
            automerge: None,
        } => Err(anyhow!(
            "say where to export: --bundle FILE or --automerge DIR"
        )),
        Cmd::Audit { .. } => unreachable!("handled in main"),
        Cmd::Keeper {
            cmd: KeeperCmd::Add { device_id, name },
        } => {
            let device: DeviceId = parse_id(device_id)?;
            let effect = Effect::Keeper {
                device,
                name: name.clone(),
            };
            change(&ctx, &cli, effect, name, |passed| {
                if passed {
                    format!(
                        "{name} is now a keeper of this group's record: it stores and passes on every entry, sealed ones as ciphertext only. It can never write."
                    )
                } else {
                    format!(
                        "You asked the group to name {name} a keeper. When enough members agree and someone closes the proposal, {name} can keep the record (never write)."
                    )
                }
            })
        }
        Cmd::Keeper {
            cmd: KeeperCmd::Remove { device_id },
        } => {
            let device: DeviceId = parse_id(device_id)?;
            let g = ctx.group(&cli)?;
            let name = g
                .record
                .governance()
                .keepers
                .get(&device)
                .map(|k| k.name.clone())
                .unwrap_or_else(|| format!("keeper {device}"));
            drop(g);
            let effect = Effect::KeeperRemove { device };
            change(&ctx, &cli, effect, &name, |passed| {
                if passed {
                    format!(
                        "{name} is no longer a keeper: it cannot sync with the group's devices."
                    )
                } else {
                    format!(
                        "You asked the group to stop {name} keeping the record. When enough members agree and someone closes the proposal, it stops."
                    )
                }
            })
        }
        Cmd::Auditor {
            cmd: AuditorCmd::Add { device_id, name },
        } => {
            let device: roundtable_core::DeviceId = parse_id(device_id)?;
            let effect = Effect::Auditor {
                device,
                name: name.clone(),
            };
            change(&ctx, &cli, effect, name, |passed| {
                if passed {
                    format!(
                        "{name} can now sync this group's record to check it: every public entry, and sealed entries as ciphertext only. They can never write in it."
                    )
                } else {
                    format!(
                        "You asked the group to let {name} check the record. When enough members agree and someone closes the proposal, {name} can sync it (never write)."
                    )
                }
            })
        }
    }
}

fn init(cli: &Cli, dir: &Path, name: &str, needs: &str) -> anyhow::Result<Out> {
    let pass = passphrase(cli)?;
    let (_, key) = roundtable_app::init(dir, name, needs, pass.as_deref())?;
    if pass.is_none() {
        eprintln!(
            "roundtable: warning: your device key is stored without a passphrase (readable only by you). \
             To protect it, use --passphrase-env VAR when you set up."
        );
    }
    let id = key.device_id();
    Ok(Out {
        json: json!({ "member_id": id.to_string(), "device_id": id.to_string() }),
        words: format!(
            "Welcome, {name}. This device is ready.\nYour member id: {id}\nGive this id to a member so they can add you to the group."
        ),
    })
}

fn thread_cmd(ctx: &Ctx, cli: &Cli, cmd: &ThreadCmd) -> anyhow::Result<Out> {
    let action = match cmd {
        ThreadCmd::New {
            title,
            sealed: false,
            ..
        } => {
            let id = ctx.act(cli, |seat, g| seat.new_thread(g, title))?;
            return Ok(entry_out(
                "thread_id",
                id,
                format!("Thread \"{title}\" started."),
            ));
        }
        ThreadCmd::New {
            title,
            readers,
            reason,
            ..
        } => sealed::Action::New {
            title,
            readers,
            reason: reason.as_deref().unwrap_or_default(),
        },
        ThreadCmd::AddReader {
            thread_id,
            member_id,
        } => sealed::Action::AddReader {
            thread: thread_id,
            member: member_id,
        },
        ThreadCmd::RemoveReader {
            thread_id,
            member_id,
        } => sealed::Action::RemoveReader {
            thread: thread_id,
            member: member_id,
        },
        ThreadCmd::Ask { thread_id, why } => sealed::Action::Ask {
            thread: thread_id,
            why,
        },
        ThreadCmd::Decline {
            thread_id,
            member_id,
            reason,
        } => sealed::Action::Decline {
            thread: thread_id,
            member: member_id,
            reason,
        },
    };
    sealed::run(ctx, cli, action)
}

fn member(ctx: &Ctx, cli: &Cli, cmd: &MemberCmd) -> anyhow::Result<Out> {
    match cmd {
        // It answers over the network with the home closed, so `run` takes it before this.
        MemberCmd::Recover { .. } => Err(anyhow!("member recover is run on its own")),
        MemberCmd::Add {
            member_id,
            name,
            needs,
        } => {
            let effect = Effect::Add {
                member: parse_id(member_id)?,
                name: name.clone(),
                needs: needs.clone(),
            };
            change(ctx, cli, effect, name, |passed| {
                if passed {
                    format!("{name} is now a member.")
                } else {
                    format!(
                        "You asked the group whether {name} should join, and said you agree. {name} joins when enough members agree and someone closes the proposal."
                    )
                }
            })
        }
        MemberCmd::About { name, needs } => {
            let (id, now) = ctx.act(cli, |seat, g| {
                let me = g.record.governance().members.get(&seat.member()).cloned();
                let (old_name, old_needs) = me.map(|m| (m.name, m.needs)).unwrap_or_default();
                let name = name.clone().unwrap_or(old_name);
                let needs = needs.clone().unwrap_or(old_needs);
                Ok((seat.set_about(g, &name, &needs)?, (name, needs)))
            })?;
            let needs = match now.1.is_empty() {
                true => "You have not said what helps you take part.".to_string(),
                false => format!("What helps you take part: {}", now.1),
            };
            Ok(entry_out(
                "entry_id",
                id,
                format!("Everyone in the group now sees you as {}.\n{needs}", now.0),
            ))
        }
        MemberCmd::Leave => {
            let id = ctx.act(cli, |seat, g| seat.leave(g))?;
            Ok(entry_out(
                "entry_id",
                id,
                "You have left the group. What you wrote stays in the record.".into(),
            ))
        }
        MemberCmd::Remove {
            member_id,
            decision: Some(decision),
        } => {
            let member: MemberId = parse_id(member_id)?;
            let proposal: EntryId = parse_id(decision)?;
            let (id, t) = ctx.act(cli, |seat, g| seat.close_removal(g, member, proposal))?;
            let decision = t.decision;
            Ok(entry_out(
                "entry_id",
                id,
                if decision == roundtable_core::Decision::Passed {
                    "The member is removed, as the group decided.".into()
                } else {
                    "The group did not agree to remove them: they stay a member.".into()
                },
            ))
        }
        MemberCmd::Remove {
            member_id,
            decision: None,
        } => {
            let member: MemberId = parse_id(member_id)?;
            let name = member_name(&ctx.group(cli)?.record, &member);
            change(ctx, cli, Effect::Remove { member }, &name, |_| {
                format!(
                    "You asked the group whether {name} should stop being a member, and said you agree. It needs two in three of the other members to agree and no block except from {name}."
                )
            })
        }
        MemberCmd::List => {
            let g = ctx.group(cli)?;
            let members = g.record.members();
            Ok(Out {
                json: json!({ "members": members.iter().map(|m| json!({
                    "member_id": m.id.to_string(), "name": m.name, "status": m.status.as_str(), "needs": m.needs,
                })).collect::<Vec<_>>() }),
                words: members
                    .iter()
                    .map(|m| {
                        let needs = if m.needs.is_empty() {
                            String::new()
                        } else {
                            format!(" — needs: {}", m.needs)
                        };
                        format!("{} ({}){}\n  {}", m.name, m.status.as_str(), needs, m.id)
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            })
        }
    }
}

fn member_name(record: &roundtable_core::Record, m: &MemberId) -> String {
    record
        .governance()
        .members
        .get(m)
        .map(|x| x.name.clone())
        .unwrap_or_else(|| m.to_string())
}

/// Asks the group for a change to itself; prints `{"proposal_id"}` (and the outcome when the
/// proposer is the only member, who decides alone: how a group is founded).
fn change(
    ctx: &Ctx,
    cli: &Cli,
    effect: Effect,
    name: &str,
    words: impl FnOnce(bool) -> String,
) -> anyhow::Result<Out> {
    let roundtable_store::Proposed {
        proposal, outcome, ..
    } = ctx.act(cli, |seat, g| seat.ask_group(g, effect, name))?;
    let passed = outcome.is_some();
    let mut json = json!({ "proposal_id": proposal.to_string() });
    if let Some(o) = outcome {
        json["outcome_id"] = json!(o.to_string());
    }
    Ok(Out {
        json,
        words: format!(
            "{}
The proposal's id is {proposal}",
            words(passed)
        ),
    })
}

/// Opens a bundle file to read as a stream, after refusing (exit 1) one larger than the largest
/// bundle, before a byte of it is read.
pub(crate) fn open_bundle(path: &Path) -> anyhow::Result<std::fs::File> {
    let file =
        std::fs::File::open(path).with_context(|| format!("could not read {}", path.display()))?;
    let size = file
        .metadata()
        .with_context(|| format!("could not read {}", path.display()))?
        .len();
    if size > roundtable_core::bundle::MAX_BUNDLE_BYTES {
        return Err(refuse(format!(
            "{} is {size} bytes, more than the largest bundle this program reads ({} bytes, 2 GiB); it was not read. It is not a whole bundle, or the record must be carried in smaller files",
            path.display(),
            roundtable_core::bundle::MAX_BUNDLE_BYTES
        )));
    }
    Ok(file)
}

fn import(ctx: &Ctx, cli: &Cli, file: &Path) -> anyhow::Result<Out> {
    let want = cli.group.as_deref().map(parse_id::<GroupId>).transpose()?;
    // Checked once here; each read of the file below is a stream, never the whole file at once.
    drop(open_bundle(file)?);
    let taken = roundtable_app::import_bundle_from(&ctx.home, || std::fs::File::open(file), want);
    let rejected = match &taken {
        Ok(t) => (&t.ingested.rejected[..], t.group.evidence_not_kept),
        Err(AppError::NothingTaken {
            rejections,
            not_kept,
            ..
        }) => (&rejections[..], *not_kept),
        Err(_) => (&[][..], 0),
    };
    for r in rejected.0.iter().take(20) {
        eprintln!("roundtable: rejected {}: {}", r.id, r.reason);
    }
    if rejected.1 > 0 {
        eprintln!(
            "roundtable: {} rejected entries were not kept: this device keeps at most {} rejected entries per author and {} per group as evidence",
            rejected.1,
            roundtable_store::EVIDENCE_PER_AUTHOR,
            roundtable_store::EVIDENCE_TOTAL
        );
    }
    let roundtable_app::Imported {
        group: mut g,
        ingested: out,
    } = taken.with_context(|| format!("{} was not imported", file.display()))?;
    // The first time this device holds a group it was added to, it publishes its encryption key.
    if let Ok(key) = ctx.key(cli)
        && let Err(e) =
            sealed::publish_profile(&ctx.home, &key, passphrase(cli)?.as_deref(), &mut g)
    {
        eprintln!("roundtable: note: could not publish this device's encryption key yet ({e:#})");
    }
    Ok(Out {
        json: json!({
            "imported": out.accepted.len(),
            "rejected": out.rejected.len(),
            "pending": out.pending.len(),
            "already_had": out.duplicates,
            "group_id": g.id().to_string(),
        }),
        words: format!(
            "Imported {} new entries. {} were rejected (kept aside with the reason). {} wait for entries not seen yet. {} were already here.",
            out.accepted.len(),
            out.rejected.len(),
            out.pending.len(),
            out.duplicates
        ),
    })
}

pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp-roundtable");
    let mut f = std::fs::File::create(&tmp)
        .with_context(|| format!("could not create {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("could not write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("could not write {}", path.display()))?;
    Ok(())
}
