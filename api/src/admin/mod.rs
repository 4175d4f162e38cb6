//! Operating the service, in one wing: what admins see and do, and the three ways they reach it.
//!
//! [`ops`] does each action once, on the stores alone, and fails with its own [`AdminError`];
//! [`filter`] reads the job filter an action names, from a query string, a form or the command
//! line's flags, and [`audit_page`] the audit log's page. Over them: [`routes`], the JSON admin API (role `admin`), where an
//! `AdminError` becomes an `ApiError`; [`pages`], the HTML dashboard at `/admin`; and [`cli`],
//! the `api admin` command, which needs no running API. What they read and write in PostgreSQL
//! is `shared::db::admin`, beside the rest of the data layer.

pub mod audit_page;
pub mod cli;
mod error;
pub mod filter;
pub mod ops;
pub mod pages;
pub mod routes;

pub use error::AdminError;
