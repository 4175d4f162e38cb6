//! The admin dashboard over HTTP, used as a browser without JavaScript uses it: only admins log
//! in; without a session every page and action goes to the login page, and anyone else gets 403;
//! every action needs the session's CSRF token and changes nothing without it; requeue and
//! cancel through the forms do what the admin operations do; the pages show the data.

use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use testkit::{Account, PASSWORD, TestApi, spawn_api};
use uuid::Uuid;

const SESSION_COOKIE: &str = "menus_admin_session";
const LOGIN_COOKIE: &str = "menus_admin_login";

/// A response as a browser sees it before following a redirect.
#[derive(Debug)]
struct Page {
    status: StatusCode,
    location: Option<String>,
    content_type: String,
    set_cookies: Vec<String>,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    /// The CSRF token the page's forms carry.
    fn csrf(&self) -> String {
        self.attribute_after(r#"name="csrf" value=""#)
            .unwrap_or_else(|| panic!("no CSRF field in {}", self.body))
    }

    /// The `action` of the page's form whose action starts with `prefix`, unescaped.
    fn form_action(&self, prefix: &str) -> Option<String> {
        self.attribute_after(&format!(r#"action="{prefix}"#))
            .map(|rest| format!("{prefix}{rest}").replace("&amp;", "&"))
    }

    /// The attribute value that follows `start` (which ends inside the value).
    fn attribute_after(&self, start: &str) -> Option<String> {
        let at = self.body.find(start)? + start.len();
        let end = self.body[at..].find('"')?;
        Some(self.body[at..at + end].to_string())
    }

    /// The `Set-Cookie` line for cookie `name`.
    fn set_cookie(&self, name: &str) -> Option<&str> {
        self.set_cookies
            .iter()
            .map(String::as_str)
            .find(|line| line.starts_with(&format!("{name}=")))
    }

    fn is_html(&self) -> bool {
        self.content_type.starts_with("text/html")
    }

    fn assert_redirects_to(&self, path: &str) {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.body);
        assert_eq!(self.location.as_deref(), Some(path));
    }

    fn assert_refused(&self, status: StatusCode, what: &str) {
        assert_eq!(self.status, status, "{what}: {}", self.body);
        assert!(
            self.is_html(),
            "{what}: an HTML page, not {}",
            self.content_type
        );
    }
}

/// A browser on the dashboard: it follows no redirect (tests look at each) and sends back the
/// cookies it was given.
struct Browser<'a> {
    app: &'a TestApi,
    http: reqwest::Client,
    cookies: Vec<(String, String)>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApi) -> Browser<'a> {
        Browser {
            app,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Vec::new(),
        }
    }

    /// A browser whose session cookie holds `token`, any bearer token.
    fn with_session(app: &'a TestApi, token: &str) -> Browser<'a> {
        let mut browser = Browser::new(app);
        browser.cookies.push((SESSION_COOKIE.into(), token.into()));
        browser
    }

    /// A browser logged in as a new admin, and the admin.
    async fn admin(app: &'a TestApi) -> (Browser<'a>, Account) {
        let admin = app.admin().await;
        let mut browser = Browser::new(app);
        browser
            .log_in(&admin.email, PASSWORD)
            .await
            .assert_redirects_to("/admin");
        (browser, admin)
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send(Method::GET, path, None).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(fields).unwrap();
        self.send(Method::POST, path, Some(body)).await
    }

    /// Opens the login page and sends its form.
    async fn log_in(&mut self, email: &str, password: &str) -> Page {
        let form = self.get("/admin/login").await;
        let csrf = form.csrf();
        self.post(
            "/admin/login",
            &[("csrf", &csrf), ("email", email), ("password", password)],
        )
        .await
    }

    fn session(&self) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(name, _)| name == SESSION_COOKIE)
            .map(|(_, value)| value.as_str())
    }

    async fn send(&mut self, method: Method, path: &str, form: Option<String>) -> Page {
        let mut request = self.http.request(method, self.app.url(path));
        if !self.cookies.is_empty() {
            let cookies: Vec<String> = self
                .cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            request = request.header(COOKIE, cookies.join("; "));
        }
        if let Some(form) = form {
            request = request
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form);
        }
        let response = request.send().await.unwrap();
        let headers = response.headers().clone();
        let text = |name: reqwest::header::HeaderName| {
            headers.get(name).map(|v| v.to_str().unwrap().to_string())
        };
        let set_cookies: Vec<String> = headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        for line in &set_cookies {
            let (pair, attributes) = line.split_once(';').unwrap_or((line, ""));
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != name);
            if !attributes.contains("Max-Age=0") {
                self.cookies.push((name.to_string(), value.to_string()));
            }
        }
        Page {
            status: response.status(),
            location: text(LOCATION),
            content_type: text(CONTENT_TYPE).unwrap_or_default(),
            set_cookies,
            headers,
            body: response.text().await.unwrap(),
        }
    }
}

const NIL: &str = "00000000-0000-0000-0000-000000000000";

/// Every page, and every action with a form body.
fn pages() -> Vec<String> {
    vec![
        "/admin".into(),
        "/admin/jobs".into(),
        "/admin/jobs?status=&error_code=llm_timeout".into(),
        format!("/admin/jobs/{NIL}"),
        "/admin/batches".into(),
        format!("/admin/batches/{NIL}"),
        "/admin/audit".into(),
    ]
}

fn actions() -> Vec<String> {
    vec![
        format!("/admin/jobs/{NIL}/requeue"),
        format!("/admin/jobs/{NIL}/cancel"),
        "/admin/jobs/requeue?status=failed".into(),
        format!("/admin/batches/{NIL}/requeue-failed"),
        "/admin/logout".into(),
    ]
}

/// No job changed, none was queued and no admin action was recorded.
async fn assert_nothing_changed(app: &TestApi, failed: Uuid, queued: Uuid) {
    assert_eq!(app.status_of(failed).await.0, "failed");
    assert_eq!(app.status_of(queued).await.0, "queued");
    assert!(app.ready_ids().await.is_empty(), "nothing was queued");
    assert!(app.audit().await.is_empty(), "nothing was recorded");
}

#[tokio::test]
async fn the_login_page_is_a_form_whose_csrf_token_is_bound_to_a_login_cookie() {
    let app = spawn_api(|_| {}).await;
    let mut browser = Browser::new(&app);
    let page = browser.get("/admin/login").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.is_html());
    for field in [r#"name="email""#, r#"name="password""#, r#"name="csrf""#] {
        assert!(page.body.contains(field), "{field} in {}", page.body);
    }
    assert_eq!(page.csrf().len(), 64);
    assert!(!page.body.contains("<script"), "no JavaScript");
    let cookie = page.set_cookie(LOGIN_COOKIE).expect("a login cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    // Another visit from the same browser keeps the cookie, so forms in other tabs still work.
    let again = browser.get("/admin/login").await;
    assert_eq!(again.csrf(), page.csrf());
    let elsewhere = Browser::new(&app).get("/admin/login").await;
    assert_ne!(elsewhere.csrf(), page.csrf(), "each browser its own");
}

#[tokio::test]
async fn an_admin_logs_in_to_a_strict_http_only_session_that_no_page_shows_and_logs_out() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    let mut browser = Browser::new(&app);

    let login = browser.log_in(&admin.email, PASSWORD).await;
    login.assert_redirects_to("/admin");
    let cookie = login.set_cookie(SESSION_COOKIE).expect("a session cookie");
    // The cookie lasts as long as the session (`REFRESH_TTL_SECS`, a day in these tests).
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/admin",
        "Max-Age=86400",
    ] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain http://localhost works by default"
    );
    let token = browser.session().expect("the session").to_string();

    let overview = browser.get("/admin").await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    assert!(overview.is_html());
    assert!(overview.body.contains("Overview"));
    assert!(
        !overview.body.contains(&token),
        "the session token is never shown"
    );
    assert_eq!(overview.headers["cache-control"], "no-store");
    let policy = overview.headers["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");

    let csrf = overview.csrf();
    browser
        .post("/admin/logout", &[("csrf", &csrf)])
        .await
        .assert_redirects_to("/admin/login");
    assert_eq!(browser.session(), None, "the cookie is gone");
    browser
        .get("/admin")
        .await
        .assert_redirects_to("/admin/login");
    // The session itself ended: a copy of the cookie taken before the logout is worthless.
    Browser::with_session(&app, &token)
        .get("/admin")
        .await
        .assert_redirects_to("/admin/login");
}

#[tokio::test]
async fn a_demoted_admin_is_refused_by_the_dashboard_on_the_next_page() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    let other_admin = app.admin().await;
    let mut browser = Browser::new(&app);
    browser
        .log_in(&admin.email, PASSWORD)
        .await
        .assert_redirects_to("/admin");
    assert_eq!(browser.get("/admin").await.status, StatusCode::OK);
    let demote = app
        .request(
            reqwest::Method::PATCH,
            &format!("/v1/admin/users/{}", admin.id),
            Some(&other_admin.token),
        )
        .json(&serde_json::json!({"role": "user"}))
        .send()
        .await
        .unwrap();
    assert_eq!(demote.status(), StatusCode::OK);
    assert_eq!(browser.get("/admin").await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_wrong_password_or_unknown_email_gets_the_form_again_and_a_non_admin_a_403() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    let user = app.user().await;
    let coach = app.coach().await;

    for (email, password) in [
        (admin.email.as_str(), "not the password"),
        ("nobody@example.com", PASSWORD),
        // PostgreSQL cannot take the NUL character in a query: no account has it.
        ("no\u{0}body@example.com", PASSWORD),
    ] {
        let mut browser = Browser::new(&app);
        let page = browser.log_in(email, password).await;
        page.assert_refused(StatusCode::UNAUTHORIZED, email);
        assert!(
            page.body.contains("email or password is incorrect"),
            "{}",
            page.body
        );
        assert!(page.body.contains(r#"name="password""#), "the form again");
        assert_eq!(browser.session(), None);
    }
    for who in [&user, &coach] {
        let mut browser = Browser::new(&app);
        let page = browser.log_in(&who.email, PASSWORD).await;
        page.assert_refused(StatusCode::FORBIDDEN, &who.email);
        assert!(page.body.contains("for admins only"), "{}", page.body);
        assert_eq!(browser.session(), None, "no session for a non-admin");
    }
}

#[tokio::test]
async fn without_a_valid_session_every_page_and_action_goes_to_the_login_page() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    let forged = api::auth::Tokens::new(
        &secrecy::SecretString::from("another-secret-0123456789abcdef-0123"),
        std::time::Duration::from_secs(3600),
    )
    .issue(
        admin.id,
        shared::db::users::Role::Admin,
        uuid::Uuid::now_v7(),
        std::time::Duration::from_secs(3600),
    )
    .unwrap();
    for session in [None, Some("not-a-token"), Some(forged.as_str())] {
        let mut browser = match session {
            Some(token) => Browser::with_session(&app, token),
            None => Browser::new(&app),
        };
        for path in pages() {
            browser.get(&path).await.assert_redirects_to("/admin/login");
        }
        for path in actions() {
            browser
                .post(&path, &[("csrf", "0")])
                .await
                .assert_redirects_to("/admin/login");
        }
    }
}

#[tokio::test]
async fn a_logged_in_non_admin_gets_403_on_every_page_and_action_and_changes_nothing() {
    let app = spawn_api(|_| {}).await;
    let user = app.user().await;
    let coach = app.coach().await;
    let failed = app.failed_job(user.id, "llm_timeout").await;
    let queued = app.queued_job(user.id).await;
    for who in [&user, &coach] {
        // Only admins can log in here, but a token from the API fits in the cookie.
        let mut browser = Browser::with_session(&app, &who.token);
        for path in pages() {
            browser
                .get(&path)
                .await
                .assert_refused(StatusCode::FORBIDDEN, &path);
        }
        for path in [
            format!("/admin/jobs/{failed}/requeue"),
            format!("/admin/jobs/{queued}/cancel"),
            "/admin/jobs/requeue?status=failed".into(),
            format!("/admin/batches/{NIL}/requeue-failed"),
            "/admin/logout".into(),
        ] {
            browser
                .post(&path, &[("csrf", "0")])
                .await
                .assert_refused(StatusCode::FORBIDDEN, &path);
        }
    }
    assert_nothing_changed(&app, failed, queued).await;
}

#[tokio::test]
async fn every_action_refuses_a_missing_or_wrong_csrf_token_and_changes_nothing() {
    let app = spawn_api(|_| {}).await;
    let (mut browser, _) = Browser::admin(&app).await;
    let (mut other_admin, _) = Browser::admin(&app).await;
    let owner = app.user().await;
    let failed = app.failed_job(owner.id, "llm_timeout").await;
    let queued = app.queued_job(owner.id).await;
    let another_session = other_admin.get("/admin").await.csrf();
    let ours = browser.get("/admin").await.csrf();
    assert_ne!(ours, another_session, "tokens are bound to their session");

    let actions = [
        format!("/admin/jobs/{failed}/requeue"),
        format!("/admin/jobs/{queued}/cancel"),
        "/admin/jobs/requeue?status=failed".into(),
        format!("/admin/batches/{NIL}/requeue-failed"),
        "/admin/logout".into(),
    ];
    for path in &actions {
        for form in [
            vec![],
            vec![("csrf", String::new())],
            vec![("csrf", "0".repeat(64))],
            vec![("csrf", another_session.clone())],
        ] {
            let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            browser
                .post(path, &fields)
                .await
                .assert_refused(StatusCode::FORBIDDEN, &format!("{path} with {form:?}"));
        }
    }
    assert_nothing_changed(&app, failed, queued).await;
    assert_eq!(
        browser.get("/admin").await.status,
        StatusCode::OK,
        "still logged in"
    );

    // The login form's token is bound to the browser's login cookie in the same way.
    let mut stranger = Browser::new(&app);
    let their_form = stranger.get("/admin/login").await.csrf();
    let mut victim = Browser::new(&app);
    victim.get("/admin/login").await;
    let admin = app.admin().await;
    for csrf in ["", their_form.as_str()] {
        victim
            .post(
                "/admin/login",
                &[
                    ("csrf", csrf),
                    ("email", &admin.email),
                    ("password", PASSWORD),
                ],
            )
            .await
            .assert_refused(StatusCode::FORBIDDEN, "login");
        assert_eq!(victim.session(), None);
    }
}

#[tokio::test]
async fn a_failed_job_requeued_through_its_form_is_queued_and_the_action_recorded() {
    let app = spawn_api(|_| {}).await;
    let (mut browser, admin) = Browser::admin(&app).await;
    let owner = app.user().await;
    let job = app.failed_job(owner.id, "llm_server_error").await;

    let list = browser.get("/admin/jobs").await;
    let action = list
        .form_action(&format!("/admin/jobs/{job}/requeue"))
        .expect("a requeue button on the job's row");
    let done = browser.post(&action, &[("csrf", &list.csrf())]).await;
    done.assert_redirects_to(&format!("/admin/jobs/{job}?flash=requeued"));

    assert_eq!(
        app.status_of(job).await,
        ("retrying".into(), 1, 3),
        "waiting for its second attempt"
    );
    assert_eq!(app.ready_ids().await, vec![job.to_string()]);
    assert_eq!(
        app.audit().await,
        vec![("requeue".to_string(), Some(job), 1)]
    );

    let page = browser.get(done.location.as_deref().unwrap()).await;
    assert!(page.body.contains("Job requeued"), "{}", page.body);
    assert!(
        page.body.contains(r#"<span class="status retrying">"#),
        "{}",
        page.body
    );
    let audit = browser.get("/admin/audit").await;
    assert!(audit.body.contains(&admin.email), "{}", audit.body);
    assert!(audit.body.contains(&format!("/admin/jobs/{job}")));
}

#[tokio::test]
async fn requeue_all_requeues_every_job_the_pages_filter_matches() {
    let app = spawn_api(|_| {}).await;
    let (mut browser, _) = Browser::admin(&app).await;
    let owner = app.user().await;
    let timeouts = [
        app.failed_job(owner.id, "llm_timeout").await,
        app.failed_job(owner.id, "llm_timeout").await,
    ];
    let refusal = app.failed_job(owner.id, "llm_refusal").await;

    let list = browser
        .get("/admin/jobs?status=failed&error_code=llm_timeout")
        .await;
    for job in &timeouts {
        assert!(list.body.contains(&job.to_string()));
    }
    assert!(
        !list.body.contains(&refusal.to_string()),
        "another error is not shown"
    );
    let action = list
        .form_action("/admin/jobs/requeue?")
        .expect("a requeue-all form");
    assert_eq!(
        action,
        "/admin/jobs/requeue?status=failed&error_code=llm_timeout"
    );
    let done = browser.post(&action, &[("csrf", &list.csrf())]).await;
    done.assert_redirects_to(
        "/admin/jobs?status=failed&error_code=llm_timeout&flash=requeued_matching&count=2",
    );

    for job in &timeouts {
        assert_eq!(app.status_of(*job).await.0, "retrying");
    }
    assert_eq!(app.status_of(refusal).await.0, "failed", "left alone");
    assert_eq!(app.ready_ids().await.len(), 2);
    assert_eq!(
        app.audit().await,
        vec![("requeue_matching".to_string(), None, 2)]
    );
    let after = browser.get(done.location.as_deref().unwrap()).await;
    assert!(after.body.contains("2 jobs requeued"), "{}", after.body);
    assert!(
        after.body.contains("No job matches"),
        "none failed with that code now"
    );

    // A filter that matches every job is refused: the page never offers one.
    let any = browser.get("/admin/jobs?status=").await;
    assert_eq!(any.form_action("/admin/jobs/requeue?"), None);
    browser
        .post("/admin/jobs/requeue?status=", &[("csrf", &any.csrf())])
        .await
        .assert_refused(StatusCode::UNPROCESSABLE_ENTITY, "empty filter");
    assert_eq!(app.status_of(refusal).await.0, "failed");
}

#[tokio::test]
async fn a_job_is_cancelled_through_its_form_and_a_refused_action_says_why() {
    let app = spawn_api(|_| {}).await;
    let (mut browser, _) = Browser::admin(&app).await;
    let owner = app.user().await;
    let job = app.queued_job(owner.id).await;

    let page = browser.get(&format!("/admin/jobs/{job}")).await;
    assert!(
        page.form_action(&format!("/admin/jobs/{job}/requeue"))
            .is_some(),
        "a queued job can be pushed again, in case Redis lost it"
    );
    let cancel = page
        .form_action(&format!("/admin/jobs/{job}/cancel"))
        .expect("a cancel button");
    let csrf = page.csrf();
    browser
        .post(&cancel, &[("csrf", &csrf)])
        .await
        .assert_redirects_to(&format!("/admin/jobs/{job}?flash=cancelled"));
    assert_eq!(app.status_of(job).await.0, "cancelled");

    let again = browser.post(&cancel, &[("csrf", &csrf)]).await;
    again.assert_redirects_to(&format!("/admin/jobs/{job}?flash=job_finished"));
    let shown = browser.get(again.location.as_deref().unwrap()).await;
    assert!(shown.body.contains("already finished"), "{}", shown.body);

    let running = app.queued_job(owner.id).await;
    app.claim(running).await;
    let page = browser.get(&format!("/admin/jobs/{running}")).await;
    assert_eq!(
        page.form_action(&format!("/admin/jobs/{running}/requeue")),
        None,
        "a running job has no requeue button"
    );
    browser
        .post(
            &format!("/admin/jobs/{running}/requeue"),
            &[("csrf", &csrf)],
        )
        .await
        .assert_redirects_to(&format!("/admin/jobs/{running}?flash=not_requeueable"));
    assert_eq!(app.status_of(running).await.0, "running");
    assert_eq!(
        app.audit().await,
        vec![("cancel".to_string(), Some(job), 1)]
    );
}

#[tokio::test]
async fn the_failed_jobs_page_lists_failed_jobs_with_their_errors_in_pages() {
    let app = spawn_api(|_| {}).await;
    let (mut browser, _) = Browser::admin(&app).await;
    let owner = app.user().await;
    let mut failed = Vec::new();
    for _ in 0..3 {
        failed.push(app.failed_job(owner.id, "llm_server_error").await);
    }
    let queued = app.queued_job(owner.id).await;

    let all = browser.get("/admin/jobs").await;
    assert_eq!(all.status, StatusCode::OK);
    for job in &failed {
        assert!(all.body.contains(&job.to_string()), "{job} listed");
    }
    assert!(
        all.body.contains("<code>llm_server_error</code>"),
        "{}",
        all.body
    );
    assert!(all.body.contains("it broke"), "the error's message");
    assert!(
        !all.body.contains(&queued.to_string()),
        "failed jobs only by default"
    );

    // Newest first, two a page, a link to the next.
    let first = browser.get("/admin/jobs?limit=2").await;
    assert!(
        first.body.contains(&failed[2].to_string()) && first.body.contains(&failed[1].to_string())
    );
    assert!(!first.body.contains(&failed[0].to_string()));
    let next = first
        .attribute_after(r#"<a href="/admin/jobs?status=failed&amp;limit=2&amp;cursor="#)
        .expect("a next link");
    let second = browser
        .get(&format!("/admin/jobs?status=failed&limit=2&cursor={next}"))
        .await;
    assert!(
        second.body.contains(&failed[0].to_string()),
        "{}",
        second.body
    );
    assert!(!second.body.contains("cursor="), "the last page");

    let any = browser.get("/admin/jobs?status=").await;
    assert!(
        any.body.contains(&queued.to_string()),
        "any status on request"
    );

    // The filter form as a browser submits it: every field, the unused ones empty ("any").
    let form = browser
        .get("/admin/jobs?status=failed&error_code=&user_id=&batch_id=&created_after=&created_before=")
        .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    for job in &failed {
        assert!(form.body.contains(&job.to_string()), "{job} listed");
    }
    let bad = browser.get("/admin/jobs?user_id=nobody").await;
    assert_eq!(
        bad.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a bad id is still refused"
    );
}

#[tokio::test]
async fn the_job_page_lists_every_attempt_with_its_worker_outcome_and_error() {
    let app = spawn_api(|_| {}).await;
    let (mut browser, _) = Browser::admin(&app).await;
    let owner = app.user().await;
    let job = app.failed_job(owner.id, "llm_server_error").await;

    let page = browser.get(&format!("/admin/jobs/{job}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(r#"<span class="status failed">"#));
    assert!(
        page.body.contains("<code>test-worker</code>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<td>failed</td>"),
        "the attempt's outcome"
    );
    assert!(page.body.contains("<code>llm_server_error</code>"));
    assert!(page.body.contains("it broke"));
    assert!(
        page.body.contains("<dt>cost</dt><dd>$0.001800</dd>"),
        "the job's cost (the fixture's 1,800 micro-dollars): {}",
        page.body
    );
    assert!(
        page.body
            .contains(r#"<td class="num">900</td><td class="num">$0.001800</td>"#),
        "the attempt's cost, after its completion tokens"
    );
    assert!(
        page.form_action(&format!("/admin/jobs/{job}/requeue"))
            .is_some(),
        "a failed job can be requeued from its page"
    );
}

#[tokio::test]
async fn the_overview_shows_jobs_by_status_and_the_queue() {
    let app = spawn_api(|_| {}).await;
    let (mut browser, _) = Browser::admin(&app).await;
    let owner = app.user().await;
    app.failed_job(owner.id, "llm_timeout").await;
    app.queued_job(owner.id).await;
    app.queued_job(owner.id).await;
    app.queue.push(&[Uuid::new_v4()]).await.unwrap();

    let page = browser.get("/admin").await;
    assert_eq!(page.status, StatusCode::OK);
    let count = |status: &str, n: u32| {
        format!(
            r#"<a href="/admin/jobs?status={status}"><span class="status {status}">{status}</span></a></td><td class="num">{n}</td>"#
        )
    };
    assert!(page.body.contains(&count("failed", 1)), "{}", page.body);
    assert!(page.body.contains(&count("queued", 2)));
    assert!(page.body.contains(&count("succeeded", 0)));
    assert!(
        page.body.contains("100.0 %"),
        "every job finished lately failed"
    );
    assert!(
        page.body
            .contains(r#"<td class="num">$0.001800</td><td class="num">$0.000000</td>"#),
        "what the jobs finished lately cost, and nothing saved: {}",
        page.body
    );
    assert!(page.body.contains("ready in the queue"));
    assert!(page.body.contains("Every circuit is closed"));
}

#[tokio::test]
async fn a_provider_lane_batch_page_lists_its_provider_batches_with_their_cost() {
    let app = spawn_api(|_| {}).await;
    let (mut browser, admin) = Browser::admin(&app).await;
    for who in [app.user().await, app.user().await] {
        app.opt_in(&who, "monday").await;
    }
    let period = (chrono::Utc::now() + chrono::Duration::days(2)).date_naive();
    let started: serde_json::Value = app
        .post(
            "/v1/admin/batches",
            &admin.token,
            serde_json::json!({"period_start": period}),
        )
        .await
        .json()
        .await
        .unwrap();
    let batch: Uuid = started["id"].as_str().unwrap().parse().unwrap();
    app.enqueue_batch(batch).await;
    let gathered = app.collected_through_the_batch_api(batch, 300_000).await;

    let page = browser.get(&format!("/admin/batches/{batch}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("<h2>Provider batches</h2>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(&format!(
            "<code>{gathered}</code><br><code>batch_abc</code>"
        )),
        "ours and the provider's id: {}",
        page.body
    );
    assert!(
        page.body
            .contains(r#"<td class="num">$0.300000</td><td class="num">$0.300000</td></tr>"#),
        "what it cost and saved: {}",
        page.body
    );
}

#[tokio::test]
async fn a_missing_job_or_a_bad_query_is_an_html_page_not_json() {
    let app = spawn_api(|_| {}).await;
    let (mut browser, _) = Browser::admin(&app).await;
    for (path, status) in [
        (
            format!("/admin/jobs/{}", Uuid::new_v4()),
            StatusCode::NOT_FOUND,
        ),
        ("/admin/jobs/not-a-uuid".into(), StatusCode::NOT_FOUND),
        (
            "/admin/jobs?status=exploded".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/admin/audit?cursor=x".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let page = browser.get(&path).await;
        page.assert_refused(status, &path);
        assert!(page.body.contains("Back to the dashboard"), "{}", page.body);
    }
}

#[tokio::test]
async fn the_batch_pages_show_each_run_and_requeue_its_failed_jobs_through_a_form() {
    let app = spawn_api(|_| {}).await;
    let (mut browser, admin) = Browser::admin(&app).await;
    let people = [app.user().await, app.user().await];
    for who in &people {
        app.opt_in(who, "monday").await;
    }
    app.opted_in_with_broken_preferences().await;
    let period = (chrono::Utc::now() + chrono::Duration::days(2)).date_naive();
    let started: serde_json::Value = app
        .post(
            "/v1/admin/batches",
            &admin.token,
            serde_json::json!({"period_start": period}),
        )
        .await
        .json()
        .await
        .unwrap();
    let batch: Uuid = started["id"].as_str().unwrap().parse().unwrap();
    app.enqueue_batch(batch).await;
    let jobs = app.batch_jobs(batch).await;
    app.fail_in_sql(&jobs[..1]).await;
    sqlx::query(
        "UPDATE generation_jobs SET cost_micros = 250000, batch_saved_micros = 125000
         WHERE batch_id = $1",
    )
    .bind(batch)
    .execute(&app.db.pool)
    .await
    .unwrap();

    let list = browser.get("/admin/batches").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert!(
        list.body
            .contains(r#"<a href="/admin/batches">Batches</a>"#),
        "in the navigation"
    );
    assert!(
        list.body
            .contains(&format!(r#"<a href="/admin/batches/{batch}">{period}</a>"#)),
        "{}",
        list.body
    );
    assert!(
        list.body.contains(&format!("manual by {}", admin.email)),
        "who started it"
    );
    assert!(
        list.body
            .contains(r#"<span class="status succeeded">enqueued</span>"#)
    );
    assert!(
        list.body.contains(&format!(
            r#"<a href="/admin/jobs?status=failed&amp;batch_id={batch}">1 <span class="status failed">"#
        )),
        "its failed job, linked"
    );

    assert!(
        list.body.contains(r#"<td class="num">$0.500000</td>"#),
        "the run's cost: {}",
        list.body
    );

    let path = format!("/admin/batches/{batch}");
    let page = browser.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("<dt>cost</dt><dd>$0.500000</dd>")
            && page
                .body
                .contains("<dt>saved by the Batch API</dt><dd>$0.250000</dd>"),
        "the run's cost and saving: {}",
        page.body
    );
    assert!(
        page.body
            .contains("<code>invalid_preferences</code></td><td class=\"num\">1</td>"),
        "why someone was skipped: {}",
        page.body
    );
    assert!(page.body.contains(&format!(
        r#"href="/admin/jobs?status=&amp;batch_id={batch}""#
    )));
    let action = page
        .form_action(&format!("/admin/batches/{batch}/requeue-failed"))
        .expect("a requeue-failed button");
    browser
        .post(&action, &[("csrf", "0")])
        .await
        .assert_refused(StatusCode::FORBIDDEN, "no CSRF token");
    assert_eq!(app.status_of(jobs[0]).await.0, "failed", "nothing changed");

    let done = browser.post(&action, &[("csrf", &page.csrf())]).await;
    done.assert_redirects_to(&format!("{path}?flash=requeued_matching&count=1"));
    assert_eq!(app.status_of(jobs[0]).await.0, "retrying");
    assert_eq!(app.status_of(jobs[1]).await.0, "queued", "left alone");
    let after = browser.get(done.location.as_deref().unwrap()).await;
    assert!(after.body.contains("1 job requeued."), "{}", after.body);
    assert_eq!(
        after.form_action(&format!("/admin/batches/{batch}/requeue-failed")),
        None,
        "no failed job left to requeue"
    );
    let filtered = browser
        .get(&format!("/admin/jobs?status=&batch_id={batch}"))
        .await;
    for job in &jobs {
        assert!(
            filtered.body.contains(&job.to_string()),
            "{job} of the batch"
        );
    }

    let missing = browser
        .get(&format!("/admin/batches/{}", Uuid::new_v4()))
        .await;
    missing.assert_refused(StatusCode::NOT_FOUND, "no such batch");
}
