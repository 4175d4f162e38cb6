//! The demo's client: registers a person, submits a 3-day menu request, follows the job with
//! long polls (showing progress), and prints the menu and its grocery list as tables.
//! `scripts/demo.sh` starts the system and runs this against it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let api = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    tokio::runtime::Runtime::new()?.block_on(run(api.trim_end_matches('/')))
}

async fn run(api: &str) -> Result<(), Box<dyn std::error::Error>> {
    // reqwest is built without a bundled TLS provider (see the workspace manifest).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    wait_until_ready(&http, api).await?;
    let email = format!("demo-{}@example.com", std::process::id());
    let registered: Value = http
        .post(format!("{api}/v1/auth/register"))
        .json(&json!({"email": email, "password": "demo password 123"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = registered["token"].as_str().ok_or("no token")?.to_string();
    println!("registered {email}");

    let request = json!({
        "days": 3,
        "meal_times": ["breakfast", "lunch", "dinner"],
        "snacks_per_day": 1,
        "servings": 2,
        "calorie_goal": 2100,
        "diet_type": "vegetarian",
        "disliked_foods": ["mushrooms"],
        "cuisines": ["italian", "indian", "mexican"],
    });
    println!("submitting: {request}");
    let started = Instant::now();
    let submitted: Value = http
        .post(format!("{api}/v1/menus"))
        .bearer_auth(&token)
        .json(&request)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let status_url = submitted["status_url"].as_str().ok_or("no status url")?;
    println!(
        "job {} accepted; following {status_url}",
        submitted["job_id"]
    );

    let mut last = String::new();
    let job = loop {
        let job = get_json(&http, &token, &format!("{api}{status_url}?wait=10")).await?;
        let done = job["progress"]["days_done"].as_u64().unwrap_or(0);
        let total = job["progress"]["days_total"].as_u64().unwrap_or(0);
        let line = format!(
            "  [{:<width$}] {done}/{total} days  {}",
            "#".repeat(done as usize * 10),
            job["status"].as_str().unwrap_or("?"),
            width = total as usize * 10
        );
        if line != last {
            println!("{line}  ({:.1} s)", started.elapsed().as_secs_f64());
            last = line;
        }
        if matches!(
            job["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            break job;
        }
        if started.elapsed() > Duration::from_secs(300) {
            return Err("the job did not finish within 5 minutes".into());
        }
    };
    if job["status"] != "succeeded" {
        return Err(format!("the job ended {}: {}", job["status"], job["error"]).into());
    }
    let menu_url = job["menu_url"].as_str().ok_or("no menu url")?;
    print_menu(&get_json(&http, &token, &format!("{api}{menu_url}")).await?);
    print_grocery_list(&get_json(&http, &token, &format!("{api}{menu_url}/grocery-list")).await?);
    println!(
        "\ngenerated in {:.1} s with {} LLM calls, {} prompt + {} completion tokens",
        started.elapsed().as_secs_f64(),
        job["usage"]["llm_calls"],
        job["usage"]["prompt_tokens"],
        job["usage"]["completion_tokens"]
    );
    Ok(())
}

/// GETs `url` as the bearer of `token`; any error status is an error.
async fn get_json(
    http: &reqwest::Client,
    token: &str,
    url: &str,
) -> Result<Value, Box<dyn std::error::Error>> {
    Ok(http
        .get(url)
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// The API answers `/readyz` once it reaches PostgreSQL and Redis.
async fn wait_until_ready(
    http: &reqwest::Client,
    api: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = http.get(format!("{api}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{api} did not become ready within 30 s").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn clip(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let cut: String = s.chars().take(width - 1).collect();
        format!("{cut}…")
    }
}

fn print_menu(menu: &Value) {
    let empty = Vec::new();
    for day in menu["days"].as_array().unwrap_or(&empty) {
        let totals = &day["totals"];
        let servings = day["meals"][0]["servings"].as_f64().unwrap_or(1.0).max(1.0);
        let grams = |k: &str| totals[k].as_f64().unwrap_or(0.0);
        let energy = grams("protein_g") * 4.0 + grams("carbs_g") * 4.0 + grams("fat_g") * 9.0;
        let share = |k: &str, per_gram: f64| 100.0 * grams(k) * per_gram / energy.max(1.0);
        println!(
            "\nDay {} ({}): {:.0} kcal per person, protein {:.0}% carbs {:.0}% fat {:.0}%, {servings} servings",
            day["day_number"],
            text(&day["date"]),
            grams("kcal") / servings,
            share("protein_g", 4.0),
            share("carbs_g", 4.0),
            share("fat_g", 9.0),
        );
        println!(
            "  {:<10} {:<44} {:<14} {:>8} {:>6}  main ingredient",
            "meal", "dish", "cuisine", "kcal/srv", "min"
        );
        println!("  {}", "-".repeat(104));
        let dishes = day["meals"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .chain(day["snacks"].as_array().unwrap_or(&empty));
        for dish in dishes {
            let minutes = dish["prep_minutes"].as_u64().unwrap_or(0)
                + dish["cook_minutes"].as_u64().unwrap_or(0);
            println!(
                "  {:<10} {:<44} {:<14} {:>8.0} {:>6}  {}",
                text(&dish["meal_time"]),
                clip(text(&dish["title"]), 44),
                clip(text(&dish["cuisine"]), 14),
                dish["per_serving"]["kcal"].as_f64().unwrap_or(0.0),
                minutes,
                text(&dish["main_ingredient"]),
            );
        }
    }
}

fn print_grocery_list(list: &Value) {
    println!("\nGrocery list");
    let empty = Vec::new();
    for aisle in list["aisles"].as_array().unwrap_or(&empty) {
        let items: Vec<String> = aisle["items"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(|i| {
                let quantity = i["quantity"].as_f64().unwrap_or(0.0);
                let digits = usize::from(quantity.fract() != 0.0);
                format!(
                    "{} {quantity:.digits$} {}",
                    text(&i["name"]),
                    text(&i["unit"])
                )
            })
            .collect();
        println!(
            "  {:<26} {}",
            text(&aisle["aisle"]).replace('_', " "),
            items.join(", ")
        );
    }
}
