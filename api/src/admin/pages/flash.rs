//! The one-line message a page shows after an action redirected to it. It travels in the query
//! string as a code (and a count), never as free text, so a crafted link cannot put words of
//! its own on a dashboard page.

use crate::admin::AdminError;
use crate::extract::QueryParams;

/// What an action did, or why it did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flash {
    Requeued,
    RequeuedMatching(usize),
    Cancelled,
    NotRequeueable,
    AlreadyFinished,
    NoSuchJob,
}

impl Flash {
    /// The operation's refusal as a flash; any other failure (the database away…) stays an
    /// error and is shown as an error page.
    pub fn refusal(error: AdminError) -> Result<Flash, AdminError> {
        match error {
            AdminError::NotRequeueable(_) => Ok(Flash::NotRequeueable),
            AdminError::JobFinished => Ok(Flash::AlreadyFinished),
            AdminError::NotFound(_) => Ok(Flash::NoSuchJob),
            other => Err(other),
        }
    }

    /// The query string parameters that carry it.
    pub fn query(self) -> String {
        match self {
            Flash::RequeuedMatching(count) => format!("flash=requeued_matching&count={count}"),
            other => format!("flash={}", other.code()),
        }
    }

    /// The flash a page was redirected with, if any it knows.
    pub fn read(params: &QueryParams) -> Option<Flash> {
        Some(match params.text("flash")? {
            "requeued" => Flash::Requeued,
            "requeued_matching" => Flash::RequeuedMatching(params.text("count")?.parse().ok()?),
            "cancelled" => Flash::Cancelled,
            "not_requeueable" => Flash::NotRequeueable,
            "job_finished" => Flash::AlreadyFinished,
            "not_found" => Flash::NoSuchJob,
            _ => return None,
        })
    }

    fn code(self) -> &'static str {
        match self {
            Flash::Requeued => "requeued",
            Flash::RequeuedMatching(_) => "requeued_matching",
            Flash::Cancelled => "cancelled",
            Flash::NotRequeueable => "not_requeueable",
            Flash::AlreadyFinished => "job_finished",
            Flash::NoSuchJob => "not_found",
        }
    }

    /// Whether it tells of something that was not done.
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            Flash::NotRequeueable | Flash::AlreadyFinished | Flash::NoSuchJob
        )
    }

    pub fn message(self) -> String {
        match self {
            Flash::Requeued => "Job requeued: it waits for a worker.".into(),
            Flash::RequeuedMatching(1) => "1 job requeued.".into(),
            Flash::RequeuedMatching(count) => format!("{count} jobs requeued."),
            Flash::Cancelled => "Job cancelled.".into(),
            Flash::NotRequeueable => {
                "Not requeued: a running or succeeded job cannot be requeued.".into()
            }
            Flash::AlreadyFinished => "Not cancelled: the job has already finished.".into(),
            Flash::NoSuchJob => "There is no such job.".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::extract::FromRequestParts;
    use axum::http::Request;

    use super::*;

    async fn read(query: &str) -> Option<Flash> {
        let (mut parts, ()) = Request::get(format!("/admin?{query}"))
            .body(())
            .unwrap()
            .into_parts();
        let params = QueryParams::from_request_parts(&mut parts, &())
            .await
            .unwrap();
        Flash::read(&params)
    }

    #[tokio::test]
    async fn every_flash_survives_the_query_string_and_free_text_is_ignored() {
        for flash in [
            Flash::Requeued,
            Flash::RequeuedMatching(12),
            Flash::Cancelled,
            Flash::NotRequeueable,
            Flash::AlreadyFinished,
            Flash::NoSuchJob,
        ] {
            assert_eq!(read(&flash.query()).await, Some(flash));
        }
        assert_eq!(read("flash=you+have+been+hacked").await, None);
        assert_eq!(read("flash=requeued_matching&count=x").await, None);
        assert_eq!(read("").await, None);
    }
}
