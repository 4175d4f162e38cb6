//! The admin dashboard in a real browser: headless Chromium with JavaScript switched off, driven
//! over WebDriver through chromedriver, logs in, finds a job that failed, requeues it with the
//! row's button and watches it succeed, against the whole system (API, worker, stand-in LLM).
//!
//! Chromium and chromedriver are Debian's `chromium` and `chromium-driver`, which
//! `scripts/test.sh` installs; without them this test fails, saying so.

use std::net::TcpListener;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use standin::{BodyStyle, Fault, Step};
use testkit::{Account, PASSWORD, SystemOptions, TestSystem, spawn_system};
use tokio::process::{Child, Command};
use uuid::Uuid;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Headless, in a container as root, and quiet: no calls home, no updates, no first-run pages.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
];

/// The longest a page may take to show what the test waits for.
const PAGE_WAIT: Duration = Duration::from_secs(10);

/// chromedriver on a free port with a fresh browser profile; the process is killed and the
/// profile removed when this is dropped, also when the test panics.
struct Driver {
    process: Child,
    url: String,
    profile: PathBuf,
}

impl Driver {
    async fn start() -> Driver {
        let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
            .into_iter()
            .filter(|path| !Path::new(path).exists())
            .collect();
        assert!(
            missing.is_empty(),
            "the browser test needs {missing:?}: install Debian's packages with \
             `apt-get install -y chromium chromium-driver` (scripts/test.sh does when it may)"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let process = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        // It listens once it is ready for sessions.
        let deadline = Instant::now() + PAGE_WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile =
            std::env::temp_dir().join(format!("menus-chromium-{}", Uuid::new_v4().simple()));
        Driver {
            process,
            url: format!("http://127.0.0.1:{port}"),
            profile,
        }
    }

    /// A headless Chromium session with JavaScript off, so every step below proves the page
    /// works without it.
    async fn browser(&self) -> Client {
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", self.profile.display()));
        let options = json!({
            "binary": CHROMIUM,
            "args": args,
            "prefs": {"profile.managed_default_content_settings.javascript": 2},
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.start_kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_requeues_a_failed_job_in_the_browser_and_watches_it_succeed() {
    let driver = Driver::start().await;
    let system = spawn_system(SystemOptions {
        max_attempts: 2,
        ..SystemOptions::default()
    })
    .await;
    system.standin.script(vec![Step::always(Fault::ServerError {
        status: 500,
        body: BodyStyle::Json,
    })]);
    let cook = system.api.user().await;
    let job = system.submit_job(&cook, json!({"days": 1})).await;
    let view = system
        .wait_until_finished(&cook, job, Duration::from_secs(30))
        .await;
    assert_eq!(view["status"], "failed", "{view}");
    let admin = system.api.admin().await;

    let browser = driver.browser().await;
    // The session is closed whatever happens, so no Chromium outlives the test.
    let outcome = AssertUnwindSafe(requeue_in_the_browser(&browser, &system, &admin, job))
        .catch_unwind()
        .await;
    let _ = browser.close().await;
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }

    let actions: Vec<(String, Option<Uuid>)> =
        sqlx::query_as("SELECT action, job_id FROM admin_actions")
            .fetch_all(&system.pool)
            .await
            .unwrap();
    assert_eq!(actions, vec![("requeue".to_string(), Some(job))]);
    system.stop().await;
}

async fn requeue_in_the_browser(browser: &Client, system: &TestSystem, admin: &Account, job: Uuid) {
    // A page whose script would change its text: this browser runs none.
    browser
        .goto("data:text/html,<p>off</p><script>document.querySelector('p').textContent='on'</script>")
        .await
        .unwrap();
    assert_eq!(text_of(browser, "p").await, "off", "JavaScript is off");

    // Any dashboard page sends a stranger to the login form.
    browser.goto(&system.api.url("/admin")).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap().path(), "/admin/login");
    type_into(browser, "input[name=email]", &admin.email).await;
    type_into(browser, "input[name=password]", PASSWORD).await;
    click(browser, "form.login button[type=submit]").await;
    wait_for_heading(browser, "Overview").await;

    browser.goto(&system.api.url("/admin/jobs")).await.unwrap();
    let row = browser
        .find(Locator::XPath(&format!("//tr[td/a[text()='{job}']]")))
        .await
        .expect("the failed job's row");
    let text = row.text().await.unwrap();
    assert!(text.contains("failed"), "{text}");
    assert!(text.contains("llm_server_error"), "its error: {text}");

    // From now on the model answers, slowly enough for the page to see the job before it ends.
    system.standin.clear_script();
    system
        .standin
        .script(vec![Step::once(Fault::Latency { ms: 1_500 })]);
    row.find(Locator::Css("form button"))
        .await
        .expect("the row's requeue button")
        .click()
        .await
        .unwrap();

    wait_for_heading(browser, &format!("Job {job}")).await;
    let flash = text_of(browser, ".flash").await;
    assert!(flash.contains("Job requeued"), "{flash}");
    // `retrying`: the requeue gave a job that used its attempts one more.
    let status = text_of(browser, "dl.facts .status").await;
    assert!(
        ["queued", "retrying", "running"].contains(&status.as_str()),
        "shown waiting or running, not {status}"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        browser.refresh().await.unwrap();
        let status = text_of(browser, "dl.facts .status").await;
        if status == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "still {status} after 30 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let attempts = browser
        .find_all(Locator::Css("table tbody tr"))
        .await
        .unwrap();
    assert_eq!(
        attempts.len(),
        3,
        "two failed attempts, then the one that succeeded"
    );
}

async fn type_into(browser: &Client, css: &str, text: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .send_keys(text)
        .await
        .unwrap();
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

async fn text_of(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// Waits until the page's heading reads `heading`: the form's submission has landed.
async fn wait_for_heading(browser: &Client, heading: &str) {
    let found = browser
        .wait()
        .at_most(PAGE_WAIT)
        .for_element(Locator::XPath(&format!("//h1[text()='{heading}']")))
        .await;
    if let Err(e) = found {
        let url = browser.current_url().await;
        panic!("no heading {heading:?} on {url:?}: {e}");
    }
}
