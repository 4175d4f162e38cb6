//! Jobs, menus and batches put in a given state behind the API's back (as a worker or the
//! scheduler would, with no worker running), and what the API's stores hold read back, for
//! tests of what the API shows and does with them.

use std::time::Duration;

use domain::menu::{Day, Ingredient, Meal, MenuPlan, Nutrition, Unit};
use domain::vocabulary::{Complexity, MealTime};
use shared::batch::BatchRun;
use shared::batch::enqueue::{self, EnqueueConfig};
use shared::config::AttemptsConfig;
use shared::db::jobs::{self, Claim, ClaimRequest, Fence};
use shared::job::{JobError, Usage};
use shared::lifecycle::Lifecycle;
use uuid::Uuid;

use crate::TestApi;

impl TestApi {
    /// How many jobs the database holds.
    pub async fn job_rows(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM generation_jobs")
            .fetch_one(&self.db.pool)
            .await
            .expect("count the jobs")
    }

    /// Job ids waiting in the interactive ready list, oldest first.
    pub async fn ready_ids(&self) -> Vec<String> {
        let mut conn = self.queue.redis().connection();
        redis::cmd("LRANGE")
            .arg(self.queue.redis().keys().ready())
            .arg(0)
            .arg(-1)
            .query_async::<Vec<String>>(&mut conn)
            .await
            .expect("read the ready list")
            .into_iter()
            .rev()
            .collect()
    }

    /// A queued 7-day job for `owner`, written straight to the database (nothing is pushed).
    pub async fn queued_job(&self, owner: Uuid) -> Uuid {
        crate::rows::queued_job(&self.db.pool, owner, 7).await
    }

    /// Claims a job as a worker (`test-worker`) would: it is running afterwards, under the
    /// fence returned. Panics if it cannot be claimed.
    pub async fn claim(&self, job: Uuid) -> Fence {
        let mut conn = self.db.pool.acquire().await.expect("a connection");
        let request = ClaimRequest {
            id: job,
            worker_id: "test-worker".into(),
            lease: Duration::from_secs(60),
            deadline: Duration::from_secs(600),
            owner_cap: 0,
        };
        let claim = jobs::claim(&mut conn, &request).await.expect("claim");
        match claim {
            Claim::Claimed(claimed) => claimed.fence,
            _ => panic!("job {job} not claimable"),
        }
    }

    /// Tells whoever watches `job` (an event stream, a long poll) that it changed, as a worker
    /// does after each transition.
    pub async fn announce(&self, job: Uuid) {
        shared::events::jobs_changed(self.queue.redis(), &[job])
            .await
            .expect("announce the change");
    }

    /// A finished job of `owner` with its menu (the one-day [`plan`]); returns the menu id.
    pub async fn finished_menu(&self, owner: Uuid) -> Uuid {
        let job = self.queued_job(owner).await;
        let fence = self.claim(job).await;
        let mut conn = self.db.pool.acquire().await.expect("a connection");
        jobs::complete(&mut conn, fence, 1, &plan(), Usage::default())
            .await
            .expect("complete the job")
            .expect("the claimed attempt completes")
    }

    /// A job of `owner` that failed its one attempt with `code` (after 2 calls, 1,500 prompt
    /// and 900 completion tokens, costing 1,800 micro-dollars).
    pub async fn failed_job(&self, owner: Uuid, code: &str) -> Uuid {
        let job = self.queued_job(owner).await;
        let fence = self.claim(job).await;
        let mut conn = self.db.pool.acquire().await.expect("a connection");
        let usage = Usage {
            calls: 2,
            prompt_tokens: 1_500,
            completion_tokens: 900,
            snoozes: 0,
            cost_micros: 1_800,
            batch_saved_micros: 0,
        };
        jobs::fail_attempt(
            &mut conn,
            fence,
            &JobError::new(code, "it broke"),
            None,
            usage,
        )
        .await
        .expect("fail the attempt");
        job
    }

    /// A job's status, attempts and attempt limit, read from the database.
    pub async fn status_of(&self, job: Uuid) -> (String, i32, i32) {
        sqlx::query_as(
            "SELECT status::text, attempts, max_attempts FROM generation_jobs WHERE id = $1",
        )
        .bind(job)
        .fetch_one(&self.db.pool)
        .await
        .expect("read the job")
    }

    /// Creates a batch's jobs here, to the end, as a worker's scheduler would (no worker runs
    /// in these tests); the run as it is left.
    pub async fn enqueue_batch(&self, id: Uuid) -> BatchRun {
        let life = Lifecycle::new(self.db.pool.clone(), self.queue.clone());
        let config = EnqueueConfig {
            chunk: 100,
            lease_secs: 30,
            attempts: AttemptsConfig { max_attempts: 3 },
        };
        enqueue::drive(&life, id, &config)
            .await
            .expect("enqueue the batch")
            .expect("nobody else enqueues the batch")
    }

    /// The ids of a batch's jobs, oldest first.
    pub async fn batch_jobs(&self, batch: Uuid) -> Vec<Uuid> {
        sqlx::query_scalar("SELECT id FROM generation_jobs WHERE batch_id = $1 ORDER BY id")
            .bind(batch)
            .fetch_all(&self.db.pool)
            .await
            .expect("read the batch's jobs")
    }

    /// Marks jobs failed (their one attempt spent, `llm_timeout`), straight in the database.
    pub async fn fail_in_sql(&self, jobs: &[Uuid]) {
        sqlx::query(
            "UPDATE generation_jobs
             SET status = 'failed', attempts = 1, last_error_code = 'llm_timeout',
                 last_error_message = 'it broke', finished_at = now()
             WHERE id = ANY($1)",
        )
        .bind(jobs)
        .execute(&self.db.pool)
        .await
        .expect("fail the jobs");
    }

    /// Puts batch run `run` on the provider lane and all its jobs into one collected provider
    /// batch (model `gpt-4o-mini`, provider id `batch_abc`, 2 requests answered) that cost
    /// `cost_micros` and saved as much, each job charged `cost_micros / jobs` and saving as
    /// much: what the batch lane leaves once it collected them. The provider batch's id.
    pub async fn collected_through_the_batch_api(&self, run: Uuid, cost_micros: i64) -> Uuid {
        let gathered = Uuid::now_v7();
        sqlx::query(
            "WITH run AS (UPDATE batch_runs SET lane = 'provider' WHERE id = $2)
             INSERT INTO provider_batches (id, endpoint, model, status, provider_status,
                 provider_batch_id, requests, bytes, prompt_tokens, completed, cost_micros,
                 saved_micros)
             VALUES ($1, 'default', 'gpt-4o-mini', 'collected', 'completed', 'batch_abc', 2,
                     4096, 3000, 2, $3, $3)",
        )
        .bind(gathered)
        .bind(run)
        .bind(cost_micros)
        .execute(&self.db.pool)
        .await
        .expect("record the provider batch");
        sqlx::query(
            "UPDATE generation_jobs
             SET provider_batch_id = $1,
                 cost_micros = $3 / (SELECT count(*) FROM generation_jobs WHERE batch_id = $2),
                 batch_saved_micros = $3 / (SELECT count(*) FROM generation_jobs WHERE batch_id = $2)
             WHERE batch_id = $2",
        )
        .bind(gathered)
        .bind(run)
        .bind(cost_micros)
        .execute(&self.db.pool)
        .await
        .expect("charge the jobs");
        gathered
    }

    /// The admin actions recorded, oldest first: what, on which job, how many.
    pub async fn audit(&self) -> Vec<(String, Option<Uuid>, i32)> {
        sqlx::query_as("SELECT action, job_id, affected FROM admin_actions ORDER BY id")
            .fetch_all(&self.db.pool)
            .await
            .expect("read the admin actions")
    }
}

/// A one-day plan with one dinner of 400 g of chickpeas (600 kcal).
pub fn plan() -> MenuPlan {
    let meal = Meal {
        meal_time: MealTime::Dinner,
        title: "Chickpea stew".into(),
        cuisine: "moroccan".into(),
        main_ingredient: "chickpeas".into(),
        servings: 1,
        prep_minutes: 10,
        cook_minutes: 20,
        complexity: Complexity::Easy,
        ingredients: vec![Ingredient {
            name: "chickpeas".into(),
            quantity: 400.0,
            unit: Unit::G,
        }],
        steps: vec!["Simmer.".into()],
        per_serving: Nutrition {
            kcal: 600.0,
            protein_g: 30.0,
            carbs_g: 80.0,
            fat_g: 15.0,
        },
    };
    let mut day = Day {
        day_number: 1,
        date: None,
        meals: vec![meal],
        snacks: vec![],
        totals: Nutrition::default(),
        source: None,
    };
    day.finish(1, None, 1);
    MenuPlan { days: vec![day] }
}
