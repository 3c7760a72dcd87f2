//! `chatbox token`: prints a signed JWT for the configured secret, or
//! for the one the all-in-one keeps in its data folder.

use anyhow::bail;
use chatbox_shared::auth::TokenMinter;
use chatbox_shared::config::Config;

use crate::cli::TokenArgs;

/// Mints and prints a token.
pub(crate) fn run(config: &Config, args: &TokenArgs) -> anyhow::Result<()> {
    let kept;
    let mut secret = config.chatbox.jwt_secret.expose();
    if secret.is_empty() {
        let data_dir = args.data_dir.as_deref().unwrap_or(&config.chatbox.data_dir);
        if !std::path::Path::new(data_dir).is_dir() {
            bail!(
                "no JWT secret configured: set JWT_SECRET (or chatbox.jwt_secret in the configuration file), \
                 or pass the all-in-one's --data-dir to use the secret it keeps there"
            );
        }
        kept = super::all_in_one::kept_jwt_secret(data_dir)?;
        secret = kept.expose();
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
