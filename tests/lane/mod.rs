//! The lane in this process: lanes started through the `Daemon` seam on
//! port 0 (often with a `ManualClock` and the scripted back-end of
//! `common::backend`), the support commands run against them, and the
//! checks that keep the documents and the code's layers true to the code.

mod acks;
mod bad_input;
mod ceiling;
mod closing;
mod docs;
mod doctor;
mod drain;
mod drain_clock;
mod layers;
mod metrics;
mod openapi;
mod receipt_numbers;
mod report;
mod restored_lane;
mod settle;
mod status_page;
mod till_api_idempotency;
