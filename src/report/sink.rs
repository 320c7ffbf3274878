//! Plans rendered as they are made: every format is a [`PlanSink`], handed the header, then
//! each account as soon as it is planned, then the summary, so that a plan of millions of
//! subscribers is written without being held.

use std::io;

#[cfg(test)]
use crate::plan::Plan;
use crate::plan::{AccountPlan, PlanHeader, PlanSummary};

pub(crate) trait PlanSink {
    fn header(&mut self, header: &PlanHeader) -> io::Result<()>;
    fn account(&mut self, account: &AccountPlan) -> io::Result<()>;
    fn end(&mut self, summary: &PlanSummary) -> io::Result<()>;
}

/// Renders a plan held in memory through `sink`, for tests: what ships streams it.
#[cfg(test)]
pub(crate) fn render(plan: &Plan, sink: &mut dyn PlanSink) -> io::Result<()> {
    sink.header(&plan.header())?;
    for account in &plan.accounts {
        sink.account(account)?;
    }
    sink.end(&plan.summary)
}
