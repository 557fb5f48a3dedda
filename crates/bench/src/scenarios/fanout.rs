//! Fanout: R rooms of M members, one sender per room, P sends per second in total. The
//! figure that matters is deliveries per second with latency percentiles, and zero lost,
//! duplicated or out of order.

use crate::cli::{Common, FanoutArgs};
use crate::report::Summary;

pub async fn run(common: &Common, args: &FanoutArgs) -> anyhow::Result<Summary> {
    let (summary, _) = super::rooms(common, args, super::Extras::default(), async {}).await?;
    Ok(summary)
}
