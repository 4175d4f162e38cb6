//! End to end: a client submits through the API, the worker generates through the stand-in
//! LLM over HTTP, and the client reads the result back through the API.

use std::collections::HashSet;
use std::time::Duration;

use domain::foods;
use domain::menu::{MenuPlan, Unit, UnitKind};
use reqwest::StatusCode;
use serde_json::{Value, json};
use standin::{BrokenRule, Fault, Latency, Step};
use testkit::{SystemOptions, TestSystem, spawn_system};
use uuid::Uuid;

fn plan_of(menu: &Value) -> MenuPlan {
    serde_json::from_value(json!({"days": menu["days"]})).expect("menu days are a plan")
}

async fn menus_of_job(system: &TestSystem, job: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM menus WHERE job_id = $1")
        .bind(job)
        .fetch_one(&system.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_submitted_request_becomes_the_menu_it_asked_for_with_its_grocery_list() {
    let system = spawn_system(SystemOptions::default()).await;
    let cook = system.api.user().await;
    let job = system
        .submit_job(
            &cook,
            json!({"days": 3, "meal_times": ["breakfast", "dinner"], "snacks_per_day": 1,
                   "servings": 2, "diet_type": "vegetarian", "calorie_goal": 2200}),
        )
        .await;

    let view = system
        .wait_until_finished(&cook, job, Duration::from_secs(30))
        .await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(view["progress"]["days_done"], 3);
    assert_eq!(view["attempts"], 1);
    assert!(
        view["usage"]["prompt_tokens"].as_i64().unwrap() > 0,
        "token usage recorded"
    );
    let menu_id = view["menu_id"].as_str().expect("menu id");

    let (status, menu) = system
        .get_json(&cook, &format!("/v1/menus/{menu_id}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let plan = plan_of(&menu);
    assert_eq!(plan.days.len(), 3);
    for (i, day) in plan.days.iter().enumerate() {
        assert_eq!(usize::from(day.day_number), i + 1);
        let times: Vec<&str> = day.meals.iter().map(|m| m.meal_time.as_str()).collect();
        assert_eq!(times, ["breakfast", "dinner"]);
        assert_eq!(day.snacks.len(), 1);
        assert!(day.dishes().all(|m| m.servings == 2));
        for dish in day.dishes() {
            for ing in &dish.ingredients {
                assert!(
                    foods::diet_conflict(domain::vocabulary::DietType::Vegetarian, &ing.name)
                        .is_none(),
                    "{} is not vegetarian",
                    ing.name
                );
            }
        }
    }

    let (status, list) = system
        .get_json(&cook, &format!("/v1/menus/{menu_id}/grocery-list"))
        .await;
    assert_eq!(status, StatusCode::OK);
    // Every gram in the menu is in the list, once.
    let menu_grams: f64 = plan
        .days
        .iter()
        .flat_map(|d| d.dishes())
        .flat_map(|m| m.ingredients.iter())
        .filter(|i| i.unit.kind() == UnitKind::Mass)
        .map(|i| i.quantity * i.unit.to_base())
        .sum();
    let list_grams: f64 = list["aisles"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["items"].as_array().unwrap().iter())
        .filter_map(|item| {
            let unit: Unit = serde_json::from_value(item["unit"].clone()).ok()?;
            (unit.kind() == UnitKind::Mass)
                .then(|| item["quantity"].as_f64().unwrap() * unit.to_base())
        })
        .sum();
    assert!(menu_grams > 0.0);
    assert!(
        (menu_grams - list_grams).abs() / menu_grams < 0.01,
        "grocery list has {list_grams} g, the menu {menu_grams} g"
    );
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_jobs_share_two_connections_because_none_is_held_across_an_llm_call() {
    let system = spawn_system(SystemOptions {
        pool_size: 2,
        // Below the LLM's 300 ms, so a connection held across a call makes others time out;
        // room above a statement's few ms for a loaded machine (100 ms failed once under a
        // parallel build).
        acquire_timeout: Duration::from_millis(250),
        standin: standin::Config {
            latency: Latency::fixed(Duration::from_millis(300)),
            ..Default::default()
        },
        ..SystemOptions::default()
    })
    .await;
    let cook = system.api.user().await;
    let mut jobs = Vec::new();
    for _ in 0..50 {
        jobs.push(system.submit_job(&cook, json!({"days": 2})).await);
    }

    // Poll every job's status while they run; every poll must be answered.
    let mut polls = 0;
    let mut failed_polls = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let mut finished = 0;
        for job in &jobs {
            let (status, view) = system.get_json(&cook, &format!("/v1/jobs/{job}")).await;
            polls += 1;
            if status != StatusCode::OK {
                failed_polls.push((status, view));
                continue;
            }
            if view["status"] == "succeeded" || view["status"] == "failed" {
                finished += 1;
            }
        }
        if finished == jobs.len() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "jobs still running after 90 s"
        );
    }
    assert!(
        failed_polls.is_empty(),
        "{} of {polls} polls failed: {:?}",
        failed_polls.len(),
        &failed_polls[..failed_polls.len().min(3)]
    );
    for job in &jobs {
        let (_, view) = system.get_json(&cook, &format!("/v1/jobs/{job}")).await;
        assert_eq!(view["status"], "succeeded", "{view}");
    }
    println!("{polls} status polls answered while 50 jobs ran on 2 connections");
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_day_that_breaks_the_rules_is_asked_again_with_the_problems() {
    let system = spawn_system(SystemOptions::default()).await;
    // The first answer uses a disliked food, the next one repeats a title.
    system.standin.script(vec![
        Step::once(Fault::BrokenRule {
            rule: BrokenRule::DislikedFood,
        }),
        Step::pass(1),
        Step::once(Fault::BrokenRule {
            rule: BrokenRule::RepeatedTitle,
        }),
    ]);
    let cook = system.api.user().await;
    let job = system
        .submit_job(
            &cook,
            json!({"days": 2, "disliked_foods": ["mushrooms", "feta"]}),
        )
        .await;
    let view = system
        .wait_until_finished(&cook, job, Duration::from_secs(30))
        .await;
    assert_eq!(view["status"], "succeeded", "{view}");

    let calls = system.standin.requests();
    assert_eq!(calls.len(), 4, "two days, each asked twice");
    assert!(
        calls
            .iter()
            .all(|c| c.response_format.as_deref() == Some("json_schema")),
        "Structured Outputs by default"
    );
    assert_eq!((calls[0].day, calls[0].problems), (Some(1), Some(0)));
    assert_eq!(calls[1].day, Some(1));
    assert!(
        calls[1].problems.unwrap_or(0) > 0,
        "the re-ask lists the problems"
    );
    assert_eq!(calls[3].day, Some(2));
    assert!(calls[3].problems.unwrap_or(0) > 0);

    let (_, menu) = system
        .get_json(
            &cook,
            &format!("/v1/menus/{}", view["menu_id"].as_str().unwrap()),
        )
        .await;
    let plan = plan_of(&menu);
    let mut titles = HashSet::new();
    for dish in plan.days.iter().flat_map(|d| d.dishes()) {
        assert!(
            titles.insert(foods::normalize(&dish.title)),
            "{} repeated",
            dish.title
        );
        for ing in &dish.ingredients {
            for disliked in ["mushrooms", "feta"] {
                assert!(
                    !foods::matches_food(&ing.name, disliked),
                    "{} is disliked",
                    ing.name
                );
            }
        }
    }
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_cancelled_while_running_ends_cancelled_and_stores_no_menu() {
    let system = spawn_system(SystemOptions {
        standin: standin::Config {
            latency: Latency::fixed(Duration::from_millis(400)),
            ..Default::default()
        },
        ..SystemOptions::default()
    })
    .await;
    let cook = system.api.user().await;
    let job = system.submit_job(&cook, json!({"days": 5})).await;
    system
        .wait_for(&cook, job, Duration::from_secs(20), |v| {
            v["progress"]["days_done"].as_i64() >= Some(1)
        })
        .await;

    assert_eq!(system.cancel(&cook, job).await, StatusCode::OK);
    // Let the worker reach its next write, which must be refused.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (_, view) = system.get_json(&cook, &format!("/v1/jobs/{job}")).await;
    assert_eq!(view["status"], "cancelled");
    assert!(view["menu_id"].is_null());
    assert_eq!(menus_of_job(&system, job).await, 0);
    let calls_after_cancel = system.standin.requests().len();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(
        system.standin.requests().len(),
        calls_after_cancel,
        "no call after the stop"
    );
    assert!(
        calls_after_cancel < 5,
        "generation stopped early ({calls_after_cancel} calls)"
    );
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_whose_llm_keeps_failing_fails_with_a_code_after_its_attempts() {
    let system = spawn_system(SystemOptions::default()).await;
    system.standin.script(vec![Step::always(Fault::ServerError {
        status: 500,
        body: standin::BodyStyle::Json,
    })]);
    let cook = system.api.user().await;
    let job = system.submit_job(&cook, json!({"days": 2})).await;
    let view = system
        .wait_until_finished(&cook, job, Duration::from_secs(30))
        .await;
    assert_eq!(view["status"], "failed", "{view}");
    assert_eq!(view["error"]["code"], "llm_server_error");
    assert_eq!(
        view["attempts"], 3,
        "attempts counted in PostgreSQL, bounded by the limit"
    );
    assert_eq!(view["max_attempts"], 3);
    let retries = SystemOptions::default().jobs.llm_max_retries as usize;
    assert_eq!(
        system.standin.requests().len(),
        3 * (1 + retries),
        "each attempt's call is retried before the attempt fails"
    );
    assert_eq!(menus_of_job(&system, job).await, 0);
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refusal_fails_the_job_at_once() {
    let system = spawn_system(SystemOptions::default()).await;
    system.standin.script(vec![Step::always(Fault::Refusal {
        message: "I can't help with that.".into(),
    })]);
    let cook = system.api.user().await;
    let job = system.submit_job(&cook, json!({"days": 1})).await;
    let view = system
        .wait_until_finished(&cook, job, Duration::from_secs(30))
        .await;
    assert_eq!(view["status"], "failed");
    assert_eq!(view["error"]["code"], "llm_refusal");
    assert_eq!(view["attempts"], 1, "a permanent error is not retried");
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_job_delivered_twice_produces_one_menu() {
    let system = spawn_system(SystemOptions {
        standin: standin::Config {
            latency: Latency::fixed(Duration::from_millis(100)),
            ..Default::default()
        },
        ..SystemOptions::default()
    })
    .await;
    let cook = system.api.user().await;
    let job = system.submit_job(&cook, json!({"days": 2})).await;
    system.deliver_again(job).await;
    let view = system
        .wait_until_finished(&cook, job, Duration::from_secs(30))
        .await;
    assert_eq!(view["status"], "succeeded");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(menus_of_job(&system, job).await, 1);
    assert_eq!(
        view["attempts"], 1,
        "the duplicate did not start an attempt"
    );
    assert_eq!(system.standin.requests().len(), 2, "each day paid once");
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn json_object_mode_works_for_servers_without_structured_outputs() {
    let system = spawn_system(SystemOptions {
        json_mode: shared::config::JsonMode::JsonObject,
        ..SystemOptions::default()
    })
    .await;
    let cook = system.api.user().await;
    let job = system.submit_job(&cook, json!({"days": 1})).await;
    let view = system
        .wait_until_finished(&cook, job, Duration::from_secs(30))
        .await;
    assert_eq!(view["status"], "succeeded", "{view}");
    let calls = system.standin.requests();
    assert_eq!(calls[0].response_format.as_deref(), Some("json_object"));
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_stopping_hands_back_its_unfinished_job_keeping_the_finished_days() {
    let mut options = SystemOptions {
        standin: standin::Config {
            latency: Latency::fixed(Duration::from_millis(1_500)),
            ..Default::default()
        },
        ..SystemOptions::default()
    };
    options.jobs.shutdown_grace_secs = 1;
    let mut system = spawn_system(options).await;
    let cook = system.api.user().await;
    let job = system.submit_job(&cook, json!({"days": 4})).await;
    system
        .wait_for(&cook, job, Duration::from_secs(20), |v| {
            v["progress"]["days_done"].as_i64() >= Some(1)
        })
        .await;

    let stopping = std::time::Instant::now();
    system.stop_worker().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "the grace period bounds shutdown"
    );
    let (_, view) = system.get_json(&cook, &format!("/v1/jobs/{job}")).await;
    assert_eq!(
        view["status"], "queued",
        "handed back, ready for another worker: {view}"
    );
    assert_eq!(view["attempts"], 0, "an interrupted attempt is not counted");
    assert!(
        view["progress"]["days_done"].as_i64() >= Some(1),
        "finished days are kept"
    );
    let ready: Vec<String> = redis::AsyncCommands::lrange(
        &mut system.api.queue.redis().connection(),
        system.api.queue.redis().keys().ready(),
        0,
        -1,
    )
    .await
    .unwrap();
    assert_eq!(
        ready,
        vec![job.to_string()],
        "the id is back in the queue, once"
    );
    system.stop().await;
}
