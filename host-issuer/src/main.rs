//! `host-issuer`: generate host keys, publish the JWKS, mint host tokens, rotate keys,
//! serve the JWKS over HTTP and inspect tokens.

mod key_file;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use handoff_issuer::encrypted::Passphrase;
use handoff_issuer::server::{
    self, DevKeySource, DevTokenConfig, KeyFileAccess, ServerConfig, ServerLimits,
    write_private_file,
};
use handoff_issuer::{Algorithm, Error, HostClaims, HostIssuerKeys, Keyring};
use rand_core::UnwrapErr;
use serde_json::Value;

const DEFAULT_KEYS: &str = "./.dev/host-keys.json";

/// Host side of the host-handoff identity flow: keys, JWKS, host tokens.
#[derive(Parser, Debug)]
#[command(name = "host-issuer", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the keyring is and how strictly its file is checked.
#[derive(Args, Debug)]
struct KeyArgs {
    /// The keyring file.
    #[arg(long, default_value = DEFAULT_KEYS)]
    keys: PathBuf,
    /// Use a keyring file that group or others may read (refused by default: fix it with
    /// `chmod 600 FILE`).
    #[arg(long)]
    allow_insecure_key_file: bool,
    /// Read an encrypted keyring's passphrase from this file (mode 0600; one trailing
    /// newline is dropped) instead of HOST_ISSUER_PASSPHRASE or a prompt: for services
    /// (systemd credentials, mounted secrets).
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
}

impl KeyArgs {
    fn access(&self) -> KeyFileAccess {
        KeyFileAccess {
            allow_insecure_permissions: self.allow_insecure_key_file,
        }
    }
    fn passphrase_from(&self) -> key_file::PassphraseArgs<'_> {
        key_file::PassphraseArgs {
            file: self.passphrase_file.as_deref(),
            access: self.access(),
        }
    }
    /// Every command loads its keyring here: plain or passphrase-encrypted; returns the
    /// passphrase used, if any, so that a rewrite keeps the file encrypted under it.
    fn load(&self) -> Result<(Keyring, Option<Passphrase>), Error> {
        let mut used = None;
        let (ring, _) = server::load_any_key_file(&self.keys, self.access(), || {
            let p = key_file::passphrase(
                &self.keys.display().to_string(),
                false,
                self.passphrase_from(),
            )?;
            used = Some(p.clone());
            Ok(p)
        })?;
        Ok((ring, used))
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate a keyring file with one signing key (mode 0600); prints the kid.
    GenerateKeys {
        /// Signature algorithm: EdDSA (default), ES256 or RS256.
        #[arg(long, default_value = "EdDSA", value_parser = parse_alg)]
        alg: Algorithm,
        /// Key id (default: the key's RFC 7638 thumbprint).
        #[arg(long)]
        kid: Option<String>,
        /// Where to write the keyring.
        #[arg(long, default_value = DEFAULT_KEYS)]
        out: PathBuf,
        /// Overwrite an existing file (its keys are lost).
        #[arg(long)]
        force: bool,
        /// Longest lifetime of the tokens minted with this keyring, in seconds (1 to 3600).
        #[arg(long, default_value_t = 3600)]
        max_token_lifetime: u64,
        /// Encrypt the private keys (PKCS#8, PBES2 with scrypt and AES-256-CBC, which
        /// OpenSSL reads) under a passphrase taken from HOST_ISSUER_PASSPHRASE or asked on
        /// the terminal (never an argument).
        #[arg(long)]
        encrypt: bool,
        /// With --encrypt: read the passphrase from this file (mode 0600; one trailing
        /// newline is dropped) instead of HOST_ISSUER_PASSPHRASE or a prompt.
        #[arg(long, requires = "encrypt")]
        passphrase_file: Option<PathBuf>,
        /// Upper bound of the JWKS `Cache-Control: max-age`, in seconds (1 to 86400): how
        /// long verifiers may cache the key set, hence the wait between
        /// `rotate --publish-next` and `rotate --activate`.
        #[arg(long, default_value_t = 300)]
        max_cache_age: u64,
    },
    /// Print the public JWKS of a keyring on stdout.
    Jwks {
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Print one compact host JWT signed by the active key.
    Mint {
        #[command(flatten)]
        keys: KeyArgs,
        /// Issuer (`iss`): this host's identifier.
        #[arg(long)]
        iss: String,
        /// Audience (`aud`): the service the token is for.
        #[arg(long)]
        aud: String,
        /// Subject (`sub`): the logged-in user.
        #[arg(long)]
        sub: String,
        /// Host tenant id (`host_tenant_id`; default: the issuer).
        #[arg(long)]
        tenant: Option<String>,
        /// Lifetime in seconds (1 to 3600).
        #[arg(long, default_value_t = handoff_issuer::DEFAULT_TTL_SECS)]
        ttl: u64,
        /// Extra claim NAME=VALUE; VALUE is parsed as JSON when it is valid JSON
        /// (numbers, booleans, arrays, objects, "quoted strings"), else taken as a string.
        /// Repeatable.
        #[arg(long = "claim", value_name = "NAME=VALUE", value_parser = parse_claim)]
        claims: Vec<(String, Value)>,
    },
    /// Rotate keys. Without a flag, one step: a new key signs at once, and verifiers that
    /// cached the JWKS moments before refuse its tokens until they refetch. Without a
    /// window of refusals, in two phases: `rotate --publish-next`, wait the JWKS max-age
    /// (every verifier's cache then holds the new key), `rotate --activate`.
    #[command(after_help = ROTATE_HELP)]
    Rotate {
        #[command(flatten)]
        keys: KeyArgs,
        /// Phase 1: publish a new key in the JWKS without signing with it yet.
        #[arg(long, conflicts_with = "activate")]
        publish_next: bool,
        /// Phase 2: the published next key starts signing (refused until the JWKS max-age
        /// has passed since phase 1).
        #[arg(long, conflicts_with_all = ["alg", "kid"])]
        activate: bool,
        /// Algorithm of the new key (default: that of the current active key).
        #[arg(long, value_parser = parse_alg)]
        alg: Option<Algorithm>,
        /// Key id of the new key (default: its thumbprint).
        #[arg(long)]
        kid: Option<String>,
        /// How long the previous key stays published, in seconds (default and minimum:
        /// the longest token lifetime plus the leeway). One-step rotation only.
        #[arg(long, conflicts_with_all = ["publish_next", "activate"])]
        retire_after: Option<u64>,
        /// Encrypt the keyring from now on (an encrypted keyring stays encrypted under its
        /// passphrase); the passphrase as for `generate-keys --encrypt`.
        #[arg(long)]
        encrypt: bool,
    },
    /// Serve the JWKS over HTTP (GET/HEAD /.well-known/jwks.json, /certs, /healthz), picking
    /// up changes to the key file without a restart, until SIGINT or SIGTERM. An encrypted
    /// keyring's passphrase comes from --passphrase-file, HOST_ISSUER_PASSPHRASE or a
    /// prompt, once; it stays in memory to re-read the file after a rotation.
    Serve {
        #[command(flatten)]
        keys: KeyArgs,
        /// TCP port (0 picks a free one).
        #[arg(long, default_value_t = 3001)]
        port: u16,
        /// Address to bind.
        #[arg(long, default_value = "127.0.0.1", value_parser = parse_ip)]
        bind: IpAddr,
        /// DEVELOPMENT ONLY: also serve POST /token, which mints a host token for any `sub`
        /// (JSON body or query string: sub, optional aud, iss, ttl, tenant; loopback Host
        /// and Origin only). Refused when HANDOFF_ENV or NODE_ENV is `production`.
        #[arg(long)]
        dev_token_endpoint: bool,
        /// Allow the dev token endpoint on a non-loopback address.
        #[arg(long, requires = "dev_token_endpoint")]
        allow_non_loopback_dev: bool,
        /// Default `iss` of dev tokens (default: the server's base URL).
        #[arg(long, requires = "dev_token_endpoint")]
        dev_iss: Option<String>,
        /// Default `aud` of dev tokens.
        #[arg(long, default_value = "dev-service", requires = "dev_token_endpoint")]
        dev_aud: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// DEVELOPMENT ONLY: the simulator's dev issuer. An RSA-2048 key (`kid` dev-key), made
    /// in memory at start, or kept in a directory across restarts (`private.pem` 0600,
    /// `public.pem`); `POST /token` (sub from the query string or a JSON body) returns an
    /// RS256 JWT, `typ` JWT, 15 minutes; the JWKS at /.well-known/jwks.json and /certs.
    /// Loopback only; refused when HANDOFF_ENV or NODE_ENV is `production`.
    DevIssuer {
        /// TCP port (0 picks a free one).
        #[arg(long, default_value_t = 3001)]
        port: u16,
        /// Loopback address to bind (127.0.0.1 or ::1; anything else is refused).
        #[arg(long, default_value = "127.0.0.1", value_parser = parse_ip)]
        bind: IpAddr,
        /// `iss` of the tokens.
        #[arg(long, default_value = handoff_issuer::dev::DEV_ISSUER)]
        iss: String,
        /// Default `aud` of the tokens (a request may name another).
        #[arg(long, default_value = handoff_issuer::dev::DEV_AUDIENCE)]
        aud: String,
        /// Keep the key in this directory (`private.pem` mode 0600, `public.pem`), written
        /// once and reused on restart. Without it, the key lives in memory only.
        #[arg(long, env = "PERSIST_KEYS_DIR")]
        persist_keys_dir: Option<PathBuf>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Decode a token's header and claims WITHOUT verifying it ("-" reads stdin).
    Inspect {
        /// The compact JWT, or "-" to read it from stdin.
        token: String,
    },
}

/// Timeouts and caps of `serve` and `dev-issuer`.
#[derive(Args, Debug)]
struct ServerArgs {
    /// Seconds a client has to send its request headers, and to send each piece of a
    /// body; idle keep-alive connections are closed after it too.
    #[arg(long, default_value_t = 10)]
    read_timeout: u64,
    /// Most connections open at once.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// How often the key file is checked for changes, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    reload_interval_ms: u64,
}

impl ServerArgs {
    fn limits(&self) -> ServerLimits {
        ServerLimits::default()
            .read_timeout(Duration::from_secs(self.read_timeout.max(1)))
            .max_connections(self.max_connections)
            .reload_interval(Duration::from_millis(self.reload_interval_ms.max(10)))
    }
}

const ROTATE_HELP: &str = "\
Two-phase rotation (no window of refusals):
  host-issuer rotate --publish-next     # the new key joins the JWKS, does not sign yet
  # wait max_cache_age (300 s by default): every verifier's cached JWKS now has it
  host-issuer rotate --activate         # the new key signs; the old one stays published
                                        # until its last token expired
One-step rotation (`host-issuer rotate`) switches at once: a verifier that fetched the JWKS
moments before refuses the new key's tokens until it refetches (on an unknown kid, after its
cooldown; panva's jose waits 30 s by default; at the latest after max-age).";

fn parse_alg(s: &str) -> Result<Algorithm, String> {
    match Algorithm::from_name(s) {
        Some(a @ (Algorithm::EdDSA | Algorithm::ES256 | Algorithm::RS256)) => Ok(a),
        _ => Err(format!(
            "{s:?} is not a host-token algorithm; use EdDSA, ES256 or RS256 (case-sensitive)"
        )),
    }
}

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    if s.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    s.parse()
        .map_err(|_| format!("{s:?} is not an IP address; use for example 127.0.0.1 or ::1"))
}

fn parse_claim(s: &str) -> Result<(String, Value), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))?;
    if name.is_empty() {
        return Err("the claim name before '=' is empty".into());
    }
    let v = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((name.to_owned(), v))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`host-issuer jwks | head -c 10`): not an error.
        Err(Failure::BrokenPipe) => ExitCode::SUCCESS,
        Err(Failure::Error(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Error(Error),
    BrokenPipe,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self::Error(e)
    }
}

/// Writes to stdout without panicking: a closed pipe ends the command quietly.
fn out(text: &str) -> Result<(), Failure> {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(Failure::BrokenPipe),
        Err(e) => Err(Failure::Error(Error::Server(format!(
            "cannot write to stdout: {e}"
        )))),
    }
}

fn now() -> Result<handoff_issuer::UnixTime, Error> {
    server::system_now()
}

fn run(cmd: Command) -> Result<(), Failure> {
    let mut rng = UnwrapErr(getrandom::SysRng);
    match cmd {
        Command::GenerateKeys {
            alg,
            kid,
            out,
            force,
            max_token_lifetime,
            encrypt,
            passphrase_file,
            max_cache_age,
        } => {
            let from = key_file::PassphraseArgs {
                file: passphrase_file.as_deref(),
                access: KeyFileAccess::default(),
            };
            let pass = encrypt
                .then(|| key_file::passphrase(&out.display().to_string(), true, from))
                .transpose()?;
            let key = HostIssuerKeys::generate(alg, kid.as_deref(), &mut rng)?;
            let kid = key.kid().to_owned();
            let ring = Keyring::new(key, now()?)
                .with_max_token_lifetime(max_token_lifetime)?
                .with_max_cache_age(max_cache_age)?;
            let text = key_file::keyring_text(&ring, pass.as_ref(), &mut rng)?;
            write_private_file(&out, text.as_bytes(), force)?;
            eprintln!(
                "wrote a keyring ({alg}) to {} (mode 0600); active kid:",
                out.display()
            );
            self::out(&format!("{kid}\n"))?;
        }
        Command::Jwks { keys } => {
            let (ring, _) = keys.load()?;
            let resp = ring.jwks_response(now()?);
            let v: Value = serde_json::from_slice(resp.body())
                .map_err(|e| Error::Server(format!("JWKS body is not JSON: {e}")))?;
            out(&format!("{}\n", pretty(&v)))?;
        }
        Command::Mint {
            keys,
            iss,
            aud,
            sub,
            tenant,
            ttl,
            claims,
        } => {
            let (ring, _) = keys.load()?;
            let mut c = HostClaims::new(iss, aud, sub).ttl(ttl);
            if let Some(t) = tenant {
                c = c.tenant(t);
            }
            for (name, value) in claims {
                if c.extra.insert(name.clone(), value).is_some() {
                    return Err(Error::InvalidInput {
                        field: "claim",
                        reason: format!("--claim {name} is given twice; give each claim once"),
                    }
                    .into());
                }
            }
            let t = ring.mint(&c, now()?, &mut rng)?;
            out(&format!("{}\n", t.token()))?;
        }
        Command::Rotate {
            keys,
            publish_next,
            activate,
            alg,
            kid,
            retire_after,
            encrypt,
        } => {
            let (mut ring, mut pass) = keys.load()?;
            if encrypt && pass.is_none() {
                pass = Some(key_file::passphrase(
                    &keys.keys.display().to_string(),
                    true,
                    keys.passphrase_from(),
                )?);
            }
            let now = now()?;
            let pruned = ring.prune(now);
            for d in pruned.dropped() {
                eprintln!("dropped expired key {d}");
            }
            let wait = ring.max_cache_age();
            let change = if activate {
                ring.activate_next(now)?
            } else {
                let alg = alg.unwrap_or_else(|| ring.active().algorithm());
                let key = HostIssuerKeys::generate(alg, kid.as_deref(), &mut rng)?;
                if publish_next {
                    ring.publish_next(key, now)?
                } else {
                    let retire_after = retire_after.unwrap_or_else(|| ring.retire_after());
                    ring.rotate_with_retire_after(key, now, retire_after)?
                }
            };
            let text = key_file::keyring_text(&ring, pass.as_ref(), &mut rng)?;
            write_private_file(&keys.keys, text.as_bytes(), true)?;
            if publish_next {
                let k = change.published().unwrap_or_default();
                eprintln!(
                    "phase 1 done: key {k} is published and does not sign yet. Verifiers cache the JWKS for up to {wait} s (its max-age), so run `host-issuer rotate --activate` at or after unix time {} ({wait} s from now); then no verifier refuses its tokens. Published kid:",
                    now.as_secs() + wait
                );
                out(&format!("{k}\n"))?;
                return Ok(());
            }
            if let Some((old, until)) = change.retired() {
                eprintln!(
                    "key {old} stopped signing and stays published until {until} (unix time)"
                );
            }
            if !activate {
                eprintln!(
                    "one-step rotation: the new key signs NOW. Verifiers that fetched the JWKS moments ago do not know it yet and refuse its tokens until they refetch (on an unknown kid, once their cooldown allows: 30 s for panva's jose; at the latest after the JWKS max-age, {wait} s, for verifiers that honour Cache-Control). To rotate without that window: `rotate --publish-next`, wait {wait} s, `rotate --activate`."
                );
            }
            eprintln!("new active kid:");
            if let Some(k) = change.activated() {
                out(&format!("{k}\n"))?;
            }
        }
        Command::Serve {
            keys,
            port,
            bind,
            dev_token_endpoint,
            allow_non_loopback_dev,
            dev_iss,
            dev_aud,
            server: server_args,
        } => {
            let what = keys.keys.display().to_string();
            let (file, access) = (keys.passphrase_file.clone(), keys.access());
            let mut config = ServerConfig::from_key_file(&keys.keys, SocketAddr::new(bind, port))
                .key_file_access(keys.access())
                .key_file_passphrase(move || {
                    let from = key_file::PassphraseArgs {
                        file: file.as_deref(),
                        access,
                    };
                    key_file::passphrase(&what, false, from)
                })
                .limits(server_args.limits());
            if dev_token_endpoint {
                config = config.dev_token_endpoint(DevTokenConfig {
                    default_iss: dev_iss,
                    default_aud: dev_aud,
                    allow_non_loopback: allow_non_loopback_dev,
                    ..DevTokenConfig::default()
                });
            }
            serve_blocking(config)?;
        }
        Command::DevIssuer {
            port,
            bind,
            iss,
            aud,
            persist_keys_dir,
            server: server_args,
        } => {
            // Checked before a key is made or written.
            server::check_not_production(|k| std::env::var(k).ok())?;
            let dev = DevTokenConfig {
                default_iss: Some(iss),
                default_aud: aud,
                ..DevTokenConfig::simulator()
            };
            let addr = SocketAddr::new(bind, port);
            if !bind.is_loopback() {
                return Err(Error::Server(format!(
                    "refusing to bind the dev issuer to {bind}: it mints tokens for anyone who can reach it, so it listens on loopback only; use --bind 127.0.0.1 or ::1"
                ))
                .into());
            }
            let (key, source) = server::load_or_create_dev_key(
                persist_keys_dir.as_deref(),
                KeyFileAccess::default(),
                &mut rng,
            )?;
            match source {
                DevKeySource::Created(d) => eprintln!(
                    "dev issuer: made a new RSA-2048 key (kid dev-key), saved to {}/private.pem (0600) and public.pem",
                    d.display()
                ),
                DevKeySource::Loaded(d) => eprintln!(
                    "dev issuer: reusing the key (kid dev-key) in {}/private.pem",
                    d.display()
                ),
                _ => eprintln!(
                    "dev issuer: made a new RSA-2048 key (kid dev-key) in memory; set PERSIST_KEYS_DIR or --persist-keys-dir to keep it across restarts"
                ),
            }
            let config = ServerConfig::with_keyring(Keyring::new(key, now()?), addr)
                .dev_token_endpoint(dev)
                .limits(server_args.limits());
            serve_blocking(config)?;
        }
        Command::Inspect { token } => {
            let token = if token == "-" {
                let mut s = String::new();
                io::stdin()
                    .take(64 * 1024)
                    .read_to_string(&mut s)
                    .map_err(|e| Error::InvalidInput {
                        field: "token",
                        reason: format!("cannot read stdin: {e}"),
                    })?;
                s.trim().to_owned()
            } else {
                token
            };
            out(&inspect(&token, now()?)?)?;
        }
    }
    Ok(())
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn inspect(token: &str, now: handoff_issuer::UnixTime) -> Result<String, Error> {
    let bad = |reason: &str| Error::InvalidInput {
        field: "token",
        reason: reason.to_owned(),
    };
    if token.len() > handoff_core::jws::DEFAULT_MAX_TOKEN_BYTES {
        return Err(bad("longer than 16 KiB; this is not a host token"));
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(bad(
            "a compact JWT has three base64url segments separated by '.'",
        ));
    }
    let mut out =
        String::from("UNVERIFIED: the signature was NOT checked; do not trust anything below\n");
    let mut exp = None;
    for (name, seg) in [("header", parts[0]), ("claims", parts[1])] {
        let bytes = handoff_core::b64::decode(seg)
            .map_err(|_| bad(&format!("the {name} segment is not unpadded base64url")))?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| bad(&format!("the {name} is not JSON: {e}")))?;
        if name == "claims" {
            exp = v.get("exp").and_then(Value::as_u64);
        }
        out.push_str(&format!("{name} (UNVERIFIED):\n{}\n", pretty(&v)));
    }
    if let Some(exp) = exp {
        let n = now.as_secs();
        if exp >= n {
            out.push_str(&format!("exp: {exp} (in {} s)\n", exp - n));
        } else {
            out.push_str(&format!("exp: {exp} (EXPIRED {} s ago)\n", n - exp));
        }
    }
    Ok(out)
}

/// Binds, prints the URL, serves until SIGINT/SIGTERM.
fn serve_blocking(config: ServerConfig) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Server(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async {
        let bound = config.bind().await?;
        // Tests and scripts read this first line to learn the port.
        println!(
            "serving the JWKS at http://{}/.well-known/jwks.json",
            bound.local_addr()
        );
        let _ = io::stdout().flush();
        bound.serve(server::shutdown_signal()).await?;
        eprintln!("host-issuer: stopped");
        Ok(())
    })
}
