//! Plans rendered as they are made: every format is a [`PlanSink`], handed the header, then
//! each account as soon as it is planned, then the summary, so that a plan of millions of
//! subscribers is written without being held.

use std::io;

use crate::plan::{AccountPlan, Plan, PlanHeader, PlanSummary};

pub trait PlanSink {
    fn header(&mut self, header: &PlanHeader) -> io::Result<()>;
    fn account(&mut self, account: &AccountPlan) -> io::Result<()>;
    fn end(&mut self, summary: &PlanSummary) -> io::Result<()>;
}

/// Renders a plan held in memory through `sink` (tests, small uses).
pub fn render(plan: &Plan, sink: &mut dyn PlanSink) -> io::Result<()> {
    sink.header(&plan.header())?;
    for account in &plan.accounts {
        sink.account(account)?;
    }
    sink.end(&plan.summary)
}
