//! Reconnect storm: a fanout whose members drop their connection at a steady rate and come
//! back resuming with `since` (on Centrifugo: subscribing with recovery, which needs the
//! channel's history on). Nothing may be lost or doubled across the reconnects; the figures
//! are reconnects per second and the time from leaving to `joined` (or recovered) again.

use crate::cli::{Common, ReconnectArgs};
use crate::report::Summary;

pub async fn run(common: &Common, args: &ReconnectArgs) -> anyhow::Result<Summary> {
    anyhow::ensure!(
        matches!(
            common.protocol,
            crate::cli::Protocol::Banter | crate::cli::Protocol::Centrifugo
        ),
        "resuming needs banter's protocol (cursors and `join … since`) or Centrifugo's \
         (recovery from an offset)"
    );
    let extras = super::Extras {
        reconnect_rate: Some(args.reconnect_rate),
    };
    let (summary, _) = super::rooms(common, &args.fanout, extras, async {}).await?;
    Ok(summary)
}
