//! The command line of the examples that run a server (`host_app`, `token_issuer`):
//! `[--port N] [--serve] [--help]`.

use crate::ExampleError;

/// What `--port N`, `--serve` and `--help` asked for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ServeArgs {
    /// `--port N`: listen on `127.0.0.1:N` (0: any free port).
    pub port: u16,
    /// `--serve`: keep serving after the self-check.
    pub serve: bool,
    /// `--help` or `-h`.
    pub help: bool,
}

impl ServeArgs {
    /// Parses the arguments after the program name.
    ///
    /// # Errors
    /// [`ExampleError::Usage`] for a missing or bad port, or an unknown argument.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, ExampleError> {
        let mut parsed = Self::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--serve" => parsed.serve = true,
                "--help" | "-h" => parsed.help = true,
                "--port" => {
                    let value = args
                        .next()
                        .ok_or_else(|| ExampleError::Usage("--port needs a value".into()))?;
                    parsed.port = value.parse().map_err(|_| {
                        ExampleError::Usage(format!(
                            "--port {value:?} is not a port number (0 to 65535)"
                        ))
                    })?;
                }
                other => {
                    let shown: String = other.chars().take(64).collect();
                    return Err(ExampleError::Usage(format!("unknown argument {shown:?}")));
                }
            }
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<ServeArgs, ExampleError> {
        ServeArgs::parse(list.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn parses_arguments() {
        assert_eq!(args(&[]).unwrap(), ServeArgs::default());
        let a = args(&["--port", "3001", "--serve"]).unwrap();
        assert_eq!((a.port, a.serve, a.help), (3001, true, false));
        assert!(args(&["--help"]).unwrap().help);
        assert!(args(&["-h"]).unwrap().help);
        assert!(args(&["--port"]).is_err());
        assert!(args(&["--port", "70000"]).is_err());
        let e = args(&["--bind", "0.0.0.0"]).unwrap_err();
        assert!(e.to_string().contains("unknown argument \"--bind\""), "{e}");
    }
}
