//! The integration tests: one binary (one link on two cores) that starts the real `nimbus`
//! server and drives its APIs; each module covers one area.

mod common;

mod async_invoke;
mod concurrency;
mod control_plane;
mod function_urls;
mod hardening;
mod http_apis;
mod invoke;
mod layering;
mod lifecycle;
mod queues;
mod rest_apis;
mod runtimes;
mod sandbox;
mod versions;
