//! salemap, the reference back-end: in this process and as the real
//! binary, on SQLite and on a throwaway PostgreSQL (`common::pg`, one
//! cluster for the whole binary), with the conformance kit, and with a lane
//! delivering to it end to end.

mod audit;
mod busy;
mod chains;
mod conformance;
mod end_to_end;
mod office;
mod posting;
mod salemap_kill;
mod salemap_pg;
