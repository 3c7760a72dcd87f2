//! `chatbox token`: prints a signed JWT for the configured secret.

use anyhow::bail;
use chatbox_shared::auth::TokenMinter;
use chatbox_shared::config::Config;

use crate::cli::TokenArgs;

/// Mints and prints a token.
pub fn run(config: &Config, args: &TokenArgs) -> anyhow::Result<()> {
    let secret = config.chatbox.jwt_secret.expose();
    if secret.is_empty() {
        bail!("no JWT secret configured: set JWT_SECRET (or chatbox.jwt_secret in the configuration file)");
    }
    if !chatbox_shared::ids::is_valid_user_id(&args.sub) {
        bail!(
            "--sub {:?} is not a usable user id (no spaces, braces or control characters)",
            args.sub
        );
    }
    let token = TokenMinter::new(secret)
        .mint(&args.sub, args.name.as_deref(), &args.roles, args.ttl)
        .map_err(anyhow::Error::msg)?;
    println!("{token}");
    Ok(())
}
