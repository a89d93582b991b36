//! The end-to-end tests through HTTP and the `commerce` binary, as one test binary (the app is
//! linked once): one module per area, `support` (`TestApp`) and the chaos suite's `cluster` kit
//! shared. `tests/chaos.rs` and `tests/overload.rs` stay binaries of their own: they saturate or
//! restart the machine's services and run alone, after this suite (`scripts/test`).

#[path = "../chaos/cluster.rs"]
mod cluster;
mod support;

mod admin_cli;
mod api_admin;
mod api_answers;
mod api_auth;
mod api_bad_input;
mod api_cart;
mod api_catalog;
mod api_categories;
mod api_hostile;
mod api_http;
mod api_inventory;
mod api_matrix;
mod api_ops;
mod api_order_retry_after_crash;
mod api_orders;
mod api_own_writes;
mod api_payment_methods;
mod api_payments;
mod api_users;
mod audit_personal;
mod audit_secrets;
mod audit_verify;
mod browser;
mod chaos_standby;
mod cli;
mod cli_parity;
mod console_browser;
mod console_http;
mod e2e_journey;
mod first_start;
mod k8s_manifests;
mod observability;
mod partitions;
mod scale_redis;
mod serve;
mod store_outage;
mod tracing_otel;
