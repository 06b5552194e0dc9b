//! `host-issuer`: generate host keys, publish the JWKS, mint host tokens, rotate keys,
//! serve the JWKS over HTTP and inspect tokens.

mod key_file;

use std::fs;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use handoff_issuer::server::{self, DevTokenConfig, ServerConfig};
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
    },
    /// Print the public JWKS of a keyring on stdout.
    Jwks {
        /// The keyring file.
        #[arg(long, default_value = DEFAULT_KEYS)]
        keys: PathBuf,
    },
    /// Print one compact host JWT signed by the active key.
    Mint {
        /// The keyring file.
        #[arg(long, default_value = DEFAULT_KEYS)]
        keys: PathBuf,
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
    /// Add a new active key; the previous one stays published until its tokens expire.
    Rotate {
        /// The keyring file.
        #[arg(long, default_value = DEFAULT_KEYS)]
        keys: PathBuf,
        /// Algorithm of the new key (default: that of the current active key).
        #[arg(long, value_parser = parse_alg)]
        alg: Option<Algorithm>,
        /// Key id of the new key (default: its thumbprint).
        #[arg(long)]
        kid: Option<String>,
        /// How long the previous key stays published, in seconds (default and minimum:
        /// the longest token lifetime plus the leeway).
        #[arg(long)]
        retire_after: Option<u64>,
        /// Encrypt the keyring from now on (an encrypted keyring stays encrypted under its
        /// passphrase); the passphrase as for `generate-keys --encrypt`.
        #[arg(long)]
        encrypt: bool,
    },
    /// Serve the JWKS over HTTP (GET /.well-known/jwks.json, /certs, /healthz), picking up
    /// changes to the key file without a restart.
    Serve {
        /// The keyring file.
        #[arg(long, default_value = DEFAULT_KEYS)]
        keys: PathBuf,
        /// TCP port (0 picks a free one).
        #[arg(long, default_value_t = 3001)]
        port: u16,
        /// Address to bind.
        #[arg(long, default_value = "127.0.0.1", value_parser = parse_ip)]
        bind: IpAddr,
        /// DEVELOPMENT ONLY: also serve POST /token, which mints a token for any `sub`
        /// (JSON or form body: sub, optional aud, iss, ttl, tenant).
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
    },
    /// Decode a token's header and claims WITHOUT verifying it ("-" reads stdin).
    Inspect {
        /// The compact JWT, or "-" to read it from stdin.
        token: String,
    },
}

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
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn now() -> Result<handoff_issuer::UnixTime, Error> {
    server::system_now()
}

fn run(cmd: Command) -> Result<(), Error> {
    let mut rng = UnwrapErr(getrandom::SysRng);
    match cmd {
        Command::GenerateKeys {
            alg,
            kid,
            out,
            force,
            max_token_lifetime,
            encrypt,
        } => {
            if !force && out.exists() {
                return Err(exists_error(&out));
            }
            let pass = encrypt
                .then(|| key_file::passphrase(&out.display().to_string(), true))
                .transpose()?;
            let key = HostIssuerKeys::generate(alg, kid.as_deref(), &mut rng)?;
            let kid = key.kid().to_owned();
            let ring = Keyring::new(key, now()?).with_max_token_lifetime(max_token_lifetime)?;
            let text = key_file::keyring_text(&ring, pass.as_ref(), &mut rng)?;
            write_private_file(&out, text.as_bytes(), force)?;
            eprintln!(
                "wrote a keyring ({alg}) to {} (mode 0600); active kid:",
                out.display()
            );
            println!("{kid}");
        }
        Command::Jwks { keys } => {
            let (ring, _) = key_file::read_keyring(&keys)?;
            let resp = ring.jwks_response(now()?);
            let v: Value = serde_json::from_slice(resp.body())
                .map_err(|e| Error::Server(format!("JWKS body is not JSON: {e}")))?;
            println!("{}", pretty(&v));
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
            let (ring, _) = key_file::read_keyring(&keys)?;
            let mut c = HostClaims::new(iss, aud, sub).ttl(ttl);
            if let Some(t) = tenant {
                c = c.tenant(t);
            }
            for (name, value) in claims {
                if c.extra.insert(name.clone(), value).is_some() {
                    return Err(Error::InvalidInput {
                        field: "claim",
                        reason: format!("--claim {name} is given twice; give each claim once"),
                    });
                }
            }
            let t = ring.mint(&c, now()?, &mut rng)?;
            println!("{}", t.token());
        }
        Command::Rotate {
            keys,
            alg,
            kid,
            retire_after,
            encrypt,
        } => {
            let (mut ring, mut pass) = key_file::read_keyring(&keys)?;
            if encrypt && pass.is_none() {
                pass = Some(key_file::passphrase(&keys.display().to_string(), true)?);
            }
            let now = now()?;
            let pruned = ring.prune(now);
            for d in pruned.dropped() {
                eprintln!("dropped expired key {d}");
            }
            let alg = alg.unwrap_or_else(|| ring.active().algorithm());
            let key = HostIssuerKeys::generate(alg, kid.as_deref(), &mut rng)?;
            let retire_after = retire_after.unwrap_or_else(|| ring.retire_after());
            let change = ring.rotate_with_retire_after(key, now, retire_after)?;
            let text = key_file::keyring_text(&ring, pass.as_ref(), &mut rng)?;
            write_private_file(&keys, text.as_bytes(), true)?;
            if let Some((old, until)) = change.retired() {
                eprintln!(
                    "key {old} stopped signing and stays published until {until} (unix time); new active kid:"
                );
            }
            if let Some(k) = change.activated() {
                println!("{k}");
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
        } => {
            let mut config = ServerConfig::from_key_file(keys, SocketAddr::new(bind, port));
            if dev_token_endpoint {
                config = config.dev_token_endpoint(DevTokenConfig {
                    default_iss: dev_iss,
                    default_aud: dev_aud,
                    allow_non_loopback: allow_non_loopback_dev,
                });
            }
            let handle = server::spawn(config)?;
            println!(
                "serving the JWKS at {}/.well-known/jwks.json",
                handle.base_url()
            );
            let _ = io::stdout().flush();
            handle.join();
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
            print!("{}", inspect(&token, now()?)?);
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

fn exists_error(path: &Path) -> Error {
    Error::KeyFile(format!(
        "{} already exists; pass --force to overwrite it (its keys are lost: tokens they signed stop verifying), or use `host-issuer rotate`",
        path.display()
    ))
}

/// Writes `bytes` to `path` with owner-only permissions, atomically: a temporary file
/// (mode 0600) in the same directory, then a hard link (refuses to replace) or a rename
/// (with `overwrite`). A reader such as `serve` never sees a half-written file.
fn write_private_file(path: &Path, bytes: &[u8], overwrite: bool) -> Result<(), Error> {
    let io_err = |what: &str, e: io::Error| Error::KeyFile(format!("{what}: {e}"));
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        let mut b = fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(&dir)
            .map_err(|e| io_err(&format!("cannot create {}", dir.display()), e))?;
    }
    let name = path
        .file_name()
        .ok_or_else(|| Error::KeyFile(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let result = (|| {
        let mut f = opts
            .open(&tmp)
            .map_err(|e| io_err(&format!("cannot create {}", tmp.display()), e))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| io_err(&format!("cannot write {}", tmp.display()), e))?;
        if overwrite {
            fs::rename(&tmp, path)
                .map_err(|e| io_err(&format!("cannot replace {}", path.display()), e))
        } else {
            match fs::hard_link(&tmp, path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(exists_error(path)),
                Err(e) => Err(io_err(&format!("cannot create {}", path.display()), e)),
            }
        }
    })();
    let _ = fs::remove_file(&tmp);
    result
}
