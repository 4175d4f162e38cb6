//! The authorisation matrix: every route the server serves, for each role (anonymous, user,
//! coach, admin) and each relationship of the caller to the resource the request names (their
//! own, someone else's, their current client's, their former client's, their coach's), with
//! the status that cell must answer. The table below is the policy, one line per cell.
//!
//! What it says, in short: a job or menu is seen (and a job cancelled) by its owner and by the
//! owner's *current* coach only; everyone else gets 404, a coach whose client left or was
//! removed included, for the jobs the coach submitted for them too (they stay the client's).
//! `client_id` is refused to anyone but a coach (403) and to a coach for anyone but a current
//! client (404). `/v1/admin/…` is 403 to all but admins, whatever their relationship to the
//! job; the dashboard (`/admin/…`) sends anyone without a session to the login page (303) and
//! answers 403 to a session that is not an admin's.
//!
//! The test runs every cell, then reports every mismatch at once. It also fails when a route is
//! served that the table does not list, or a route lacks a cell for one of the roles: the JSON
//! routes are read from the OpenAPI document (which lists exactly the routes served, see
//! `tests/openapi.rs`), the dashboard's from `src/admin/pages/mod.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{Account, PASSWORD, TestApi, spawn_api};
use uuid::Uuid;

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    /// No token (no session cookie on the dashboard).
    Anonymous,
    /// A `user` account; in this world also the current client of the coach below.
    User,
    /// A `coach` account, with one current client and one former client.
    Coach,
    /// An `admin` account.
    Admin,
}

/// Whose resource the request names, seen from the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rel {
    /// None: the route is about the caller, or about nobody in particular.
    Na,
    /// The caller's own.
    Own,
    /// Someone else's, with no link to the caller.
    Other,
    /// The caller's current client's (they accepted the coach's invitation). Their jobs and
    /// menus were submitted by the coach.
    Client,
    /// The caller's former client's: linked once, then the coach removed them. Their jobs and
    /// menus were submitted by the coach while they were linked.
    Former,
    /// The caller's coach's (the caller accepted their invitation).
    MyCoach,
}

/// How a route is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The JSON API: a bearer token, a JSON body.
    Api,
    /// A dashboard page or action: the token in the session cookie, a form body, and for an
    /// admin the session's CSRF token. No redirect is followed.
    Page,
    /// `POST /admin/login`: the form from `GET /admin/login` (its CSRF cookie and token) sent
    /// with the caller's email and password (anonymous: a wrong password).
    DashboardLogin,
}

use Kind::{Api, DashboardLogin, Page};
use Rel::{Client, Former, MyCoach, Na, Other, Own};
use Role::{Admin, Anonymous, Coach, User};

/// One route and its cells: `(role, relationship, expected status)`.
///
/// Templates in `path` and `body`: `{job}` a fresh queued job and `{menu}` a fresh menu of
/// whoever the relationship names; `{user}` their account id; `{link}` the same, but for
/// `Client` a client linked afresh (the cell may end the link); `{coach}` the same, but for
/// `MyCoach` a coach the caller is linked to afresh (the cell may leave them);
/// `{invitation}` a fresh invitation addressed to them (`Own`: to the caller); `{batch}` a
/// weekly batch run; `{email}` an address nobody has; `{my_email}` the caller's (anonymous: an
/// existing account's); `{nobody}` a UUID that names nothing.
struct Route {
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    kind: Kind,
    /// The call ends the caller's session (a logout, a password change): each cell is called
    /// by a new account of its role, so the others' tokens keep working.
    fresh: bool,
    cells: &'static [(Role, Rel, u16)],
}

const fn api(
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    cells: &'static [(Role, Rel, u16)],
) -> Route {
    Route {
        method,
        path,
        body,
        kind: Api,
        fresh: false,
        cells,
    }
}

/// A JSON route whose call ends the caller's session: each cell with a new account.
const fn api_ending_session(
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    cells: &'static [(Role, Rel, u16)],
) -> Route {
    Route {
        fresh: true,
        ..api(method, path, body, cells)
    }
}

const fn page(
    method: &'static str,
    path: &'static str,
    cells: &'static [(Role, Rel, u16)],
) -> Route {
    Route {
        method,
        path,
        body: None,
        kind: Page,
        fresh: false,
        cells,
    }
}

/// Public: the same answer for everyone.
#[rustfmt::skip]
const PUBLIC_200: &[(Role, Rel, u16)] = &[(Anonymous, Na, 200), (User, Na, 200), (Coach, Na, 200), (Admin, Na, 200)];

/// The policy.
#[rustfmt::skip]
const MATRIX: &[Route] = &[
    // ---- Public ----
    api("GET", "/healthz", None, PUBLIC_200),
    api("GET", "/readyz", None, PUBLIC_200),
    api("GET", "/metrics", None, PUBLIC_200),
    api("GET", "/openapi.json", None, PUBLIC_200),
    api("POST", "/v1/auth/register", Some(r#"{"email":"{email}","password":"correct horse battery"}"#), &[
        (Anonymous, Na, 201), (User, Na, 201), (Coach, Na, 201), (Admin, Na, 201),
    ]),
    api("POST", "/v1/auth/login", Some(r#"{"email":"{my_email}","password":"correct horse battery"}"#), &[
        (Anonymous, Na, 200), (User, Na, 200), (Coach, Na, 200), (Admin, Na, 200),
    ]),
    // The refresh token is the credential; a bearer token beside it changes nothing.
    api("POST", "/v1/auth/refresh", Some(r#"{"refresh_token":"{refresh_token}"}"#), &[
        (Anonymous, Na, 200), (User, Na, 200), (Coach, Na, 200), (Admin, Na, 200),
    ]),
    api_ending_session("POST", "/v1/auth/logout", None, &[
        (Anonymous, Na, 401), (User, Na, 204), (Coach, Na, 204), (Admin, Na, 204),
    ]),

    // ---- The caller's own account ----
    api("GET", "/v1/me", None, &[(Anonymous, Na, 401), (User, Na, 200), (Coach, Na, 200), (Admin, Na, 200)]),
    api("GET", "/v1/me/usage", None, &[(Anonymous, Na, 401), (User, Na, 200), (Coach, Na, 200), (Admin, Na, 200)]),
    api_ending_session("PUT", "/v1/me/password", Some(r#"{"current_password":"correct horse battery","new_password":"a new horse battery staple"}"#), &[
        (Anonymous, Na, 401), (User, Na, 200), (Coach, Na, 200), (Admin, Na, 200),
    ]),
    api("GET", "/v1/preferences", None, &[(Anonymous, Na, 401), (User, Na, 200), (Coach, Na, 200), (Admin, Na, 200)]),
    api("PUT", "/v1/preferences", Some(r#"{"servings":2}"#), &[
        (Anonymous, Na, 401), (User, Na, 200), (Coach, Na, 200), (Admin, Na, 200),
    ]),

    // ---- Menus ----
    api("POST", "/v1/menus", Some(r#"{"days":1}"#), &[
        (Anonymous, Na, 401), (User, Na, 202), (Coach, Na, 202), (Admin, Na, 202),
    ]),
    // Acting for someone: coaches only, for a current client only.
    api("POST", "/v1/menus", Some(r#"{"days":1,"client_id":"{user}"}"#), &[
        (Anonymous, Client, 401),
        (User, Own, 403), (User, Other, 403), (User, MyCoach, 403),
        (Coach, Own, 404), (Coach, Other, 404), (Coach, Client, 202), (Coach, Former, 404),
        (Admin, Own, 403), (Admin, Other, 403),
    ]),
    api("GET", "/v1/menus", None, &[(Anonymous, Na, 401), (User, Na, 200), (Coach, Na, 200), (Admin, Na, 200)]),
    api("GET", "/v1/menus?client_id={user}", None, &[
        (Anonymous, Client, 401),
        (User, Own, 403), (User, Other, 403), (User, MyCoach, 403),
        (Coach, Own, 404), (Coach, Other, 404), (Coach, Client, 200), (Coach, Former, 404),
        (Admin, Own, 403), (Admin, Other, 403),
    ]),
    api("GET", "/v1/menus/{menu}", None, &[
        (Anonymous, Client, 401),
        (User, Own, 200), (User, Other, 404), (User, MyCoach, 404),
        (Coach, Own, 200), (Coach, Other, 404), (Coach, Client, 200), (Coach, Former, 404),
        (Admin, Own, 200), (Admin, Other, 404),
    ]),
    api("GET", "/v1/menus/{menu}/grocery-list", None, &[
        (Anonymous, Client, 401),
        (User, Own, 200), (User, Other, 404), (User, MyCoach, 404),
        (Coach, Own, 200), (Coach, Other, 404), (Coach, Client, 200), (Coach, Former, 404),
        (Admin, Own, 200), (Admin, Other, 404),
    ]),

    // ---- Jobs ----
    api("GET", "/v1/jobs", None, &[(Anonymous, Na, 401), (User, Na, 200), (Coach, Na, 200), (Admin, Na, 200)]),
    api("GET", "/v1/jobs/{job}", None, &[
        (Anonymous, Client, 401),
        (User, Own, 200), (User, Other, 404), (User, MyCoach, 404),
        (Coach, Own, 200), (Coach, Other, 404), (Coach, Client, 200), (Coach, Former, 404),
        (Admin, Own, 200), (Admin, Other, 404),
    ]),
    api("GET", "/v1/jobs/{job}/events", None, &[
        (Anonymous, Client, 401),
        (User, Own, 200), (User, Other, 404), (User, MyCoach, 404),
        (Coach, Own, 200), (Coach, Other, 404), (Coach, Client, 200), (Coach, Former, 404),
        (Admin, Own, 200), (Admin, Other, 404),
    ]),
    api("DELETE", "/v1/jobs/{job}", None, &[
        (Anonymous, Client, 401),
        (User, Own, 200), (User, Other, 404), (User, MyCoach, 404),
        (Coach, Own, 200), (Coach, Other, 404), (Coach, Client, 200), (Coach, Former, 404),
        (Admin, Own, 200), (Admin, Other, 404),
    ]),

    // ---- Coaching: the coach's side ----
    api("POST", "/v1/coach/invitations", Some(r#"{"email":"{email}"}"#), &[
        (Anonymous, Na, 401), (User, Na, 403), (Coach, Na, 201), (Admin, Na, 403),
    ]),
    api("GET", "/v1/coach/clients", None, &[(Anonymous, Na, 401), (User, Na, 403), (Coach, Na, 200), (Admin, Na, 403)]),
    api("DELETE", "/v1/coach/clients/{link}", None, &[
        (Anonymous, Client, 401),
        (User, Own, 403), (User, Other, 403), (User, MyCoach, 403),
        (Coach, Own, 404), (Coach, Other, 404), (Coach, Client, 204), (Coach, Former, 404),
        (Admin, Own, 403), (Admin, Other, 403),
    ]),

    // ---- Coaching: the client's side ----
    api("GET", "/v1/invitations", None, &[(Anonymous, Na, 401), (User, Na, 200), (Coach, Na, 200), (Admin, Na, 200)]),
    api("POST", "/v1/invitations/{invitation}/accept", None, &[
        (Anonymous, Own, 401),
        (User, Own, 200), (User, Other, 404),
        // Invitations go by email: a coach or an admin may be someone's client too.
        (Coach, Own, 200), (Coach, Other, 404),
        (Admin, Own, 200), (Admin, Other, 404),
    ]),
    api("GET", "/v1/me/coaches", None, &[(Anonymous, Na, 401), (User, Na, 200), (Coach, Na, 200), (Admin, Na, 200)]),
    api("DELETE", "/v1/me/coaches/{coach}", None, &[
        (Anonymous, MyCoach, 401),
        (User, Own, 404), (User, Other, 404), (User, MyCoach, 204),
        // A coach cannot "leave" their client: the link goes from coach to client.
        (Coach, Own, 404), (Coach, Client, 404), (Coach, Former, 404), (Coach, MyCoach, 204),
        (Admin, Other, 404), (Admin, MyCoach, 204),
    ]),

    // ---- Admin JSON: admins only, whatever the caller's relationship to the job ----
    api("GET", "/v1/admin/jobs", None, &[(Anonymous, Na, 401), (User, Na, 403), (Coach, Na, 403), (Admin, Na, 200)]),
    api("GET", "/v1/admin/jobs/{job}", None, &[
        (Anonymous, Other, 401),
        (User, Own, 403), (User, Other, 403),
        (Coach, Own, 403), (Coach, Client, 403), (Coach, Former, 403),
        (Admin, Own, 200), (Admin, Other, 200),
    ]),
    api("POST", "/v1/admin/jobs/{job}/requeue", None, &[
        (Anonymous, Other, 401),
        (User, Own, 403), (User, Other, 403),
        (Coach, Own, 403), (Coach, Client, 403), (Coach, Former, 403),
        (Admin, Own, 200), (Admin, Other, 200),
    ]),
    api("POST", "/v1/admin/jobs/{job}/cancel", None, &[
        (Anonymous, Other, 401),
        (User, Own, 403), (User, Other, 403),
        (Coach, Own, 403), (Coach, Client, 403), (Coach, Former, 403),
        (Admin, Own, 200), (Admin, Other, 200),
    ]),
    api("POST", "/v1/admin/jobs/requeue", Some(r#"{"filter":{"user_id":"{nobody}"}}"#), &[
        (Anonymous, Na, 401), (User, Na, 403), (Coach, Na, 403), (Admin, Na, 200),
    ]),
    api("POST", "/v1/admin/jobs/cancel", Some(r#"{"filter":{"user_id":"{nobody}"}}"#), &[
        (Anonymous, Na, 401), (User, Na, 403), (Coach, Na, 403), (Admin, Na, 200),
    ]),
    api("GET", "/v1/admin/users/{user}", None, &[
        (Anonymous, Other, 401),
        (User, Own, 403), (User, Other, 403), (User, MyCoach, 403),
        (Coach, Own, 403), (Coach, Client, 403), (Coach, Former, 403),
        (Admin, Own, 200), (Admin, Other, 200),
    ]),
    // `disabled: false` changes nothing of an account that is enabled.
    api("PATCH", "/v1/admin/users/{user}", Some(r#"{"disabled":false}"#), &[
        (Anonymous, Other, 401),
        (User, Own, 403), (User, Other, 403), (User, MyCoach, 403),
        (Coach, Own, 403), (Coach, Client, 403), (Coach, Former, 403),
        (Admin, Own, 200), (Admin, Other, 200),
    ]),
    api("GET", "/v1/admin/actions", None, &[(Anonymous, Na, 401), (User, Na, 403), (Coach, Na, 403), (Admin, Na, 200)]),
    api("GET", "/v1/admin/stats", None, &[(Anonymous, Na, 401), (User, Na, 403), (Coach, Na, 403), (Admin, Na, 200)]),
    api("POST", "/v1/admin/batches", Some(r#"{"dry_run":true}"#), &[
        (Anonymous, Na, 401), (User, Na, 403), (Coach, Na, 403), (Admin, Na, 200),
    ]),
    api("GET", "/v1/admin/batches", None, &[(Anonymous, Na, 401), (User, Na, 403), (Coach, Na, 403), (Admin, Na, 200)]),
    api("GET", "/v1/admin/batches/{batch}", None, &[(Anonymous, Na, 401), (User, Na, 403), (Coach, Na, 403), (Admin, Na, 200)]),
    api("POST", "/v1/admin/batches/{batch}/requeue-failed", None, &[
        (Anonymous, Na, 401), (User, Na, 403), (Coach, Na, 403), (Admin, Na, 200),
    ]),

    // ---- Dashboard: no session → the login page (303); a session not an admin's → 403 ----
    page("GET", "/admin/login", &[(Anonymous, Na, 200), (User, Na, 200), (Coach, Na, 200), (Admin, Na, 200)]),
    Route {
        method: "POST",
        path: "/admin/login",
        body: None,
        kind: DashboardLogin,
        fresh: false,
        // Anonymous: a wrong password gets the form again.
        cells: &[(Anonymous, Na, 401), (User, Na, 403), (Coach, Na, 403), (Admin, Na, 303)],
    },
    Route {
        fresh: true,
        ..page("POST", "/admin/logout", &[(Anonymous, Na, 303), (User, Na, 403), (Coach, Na, 403), (Admin, Na, 303)])
    },
    page("GET", "/admin", &[(Anonymous, Na, 303), (User, Na, 403), (Coach, Na, 403), (Admin, Na, 200)]),
    page("GET", "/admin/jobs", &[(Anonymous, Na, 303), (User, Na, 403), (Coach, Na, 403), (Admin, Na, 200)]),
    page("POST", "/admin/jobs/requeue?user_id={nobody}", &[
        (Anonymous, Na, 303), (User, Na, 403), (Coach, Na, 403), (Admin, Na, 303),
    ]),
    page("GET", "/admin/jobs/{job}", &[
        (Anonymous, Other, 303),
        (User, Own, 403), (User, Other, 403),
        (Coach, Own, 403), (Coach, Client, 403), (Coach, Former, 403),
        (Admin, Own, 200), (Admin, Other, 200),
    ]),
    page("POST", "/admin/jobs/{job}/requeue", &[
        (Anonymous, Other, 303),
        (User, Own, 403), (User, Other, 403),
        (Coach, Own, 403), (Coach, Client, 403), (Coach, Former, 403),
        (Admin, Own, 303), (Admin, Other, 303),
    ]),
    page("POST", "/admin/jobs/{job}/cancel", &[
        (Anonymous, Other, 303),
        (User, Own, 403), (User, Other, 403),
        (Coach, Own, 403), (Coach, Client, 403), (Coach, Former, 403),
        (Admin, Own, 303), (Admin, Other, 303),
    ]),
    page("GET", "/admin/batches", &[(Anonymous, Na, 303), (User, Na, 403), (Coach, Na, 403), (Admin, Na, 200)]),
    page("GET", "/admin/batches/{batch}", &[(Anonymous, Na, 303), (User, Na, 403), (Coach, Na, 403), (Admin, Na, 200)]),
    page("POST", "/admin/batches/{batch}/requeue-failed", &[
        (Anonymous, Na, 303), (User, Na, 403), (Coach, Na, 403), (Admin, Na, 303),
    ]),
    page("GET", "/admin/audit", &[(Anonymous, Na, 303), (User, Na, 403), (Coach, Na, 403), (Admin, Na, 200)]),
];

const SESSION_COOKIE: &str = "menus_admin_session";
const LOGIN_COOKIE: &str = "menus_admin_login";

/// The people and things the cells are about.
struct World {
    app: TestApi,
    /// Follows no redirect: the dashboard's are part of the answer.
    http: reqwest::Client,
    user: Account,
    coach: Account,
    admin: Account,
    /// Someone with no link to anyone.
    stranger: Account,
    /// Was the coach's client; the coach removed them.
    former: Account,
    batch: Uuid,
    /// The CSRF token of the admin's dashboard session.
    admin_csrf: String,
}

impl World {
    async fn new() -> World {
        let app = spawn_api(|_| {}).await;
        let user = app.user().await;
        let coach = app.coach().await;
        let admin = app.admin().await;
        let stranger = app.user().await;
        let former = app.user().await;
        app.link(&coach, &user).await;
        app.link(&coach, &former).await;
        let removed = app
            .delete(&format!("/v1/coach/clients/{}", former.id), &coach.token)
            .await;
        assert_eq!(removed.status(), StatusCode::NO_CONTENT);

        let started = app.post("/v1/admin/batches", &admin.token, json!({})).await;
        assert_eq!(started.status(), StatusCode::ACCEPTED);
        let location = started.headers()[LOCATION].to_str().unwrap();
        let batch = location.rsplit('/').next().unwrap().parse().unwrap();

        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let admin_csrf = csrf_of(&app, &http, &admin).await;
        World {
            app,
            http,
            user,
            coach,
            admin,
            stranger,
            former,
            batch,
            admin_csrf,
        }
    }

    /// The CSRF token of `admin`'s dashboard session.
    async fn csrf_of(&self, admin: &Account) -> String {
        csrf_of(&self.app, &self.http, admin).await
    }

    fn actor(&self, role: Role) -> Option<&Account> {
        match role {
            Anonymous => None,
            User => Some(&self.user),
            Coach => Some(&self.coach),
            Admin => Some(&self.admin),
        }
    }

    /// A new account of `role`, for a cell that ends the caller's session.
    async fn new_actor(&self, role: Role) -> Option<Account> {
        match role {
            Anonymous => None,
            User => Some(self.app.user().await),
            Coach => Some(self.app.coach().await),
            Admin => Some(self.app.admin().await),
        }
    }

    /// Whose resource a cell names.
    fn owner<'a>(&'a self, actor: Option<&'a Account>, rel: Rel) -> Option<&'a Account> {
        match rel {
            Na => None,
            Own => Some(actor.unwrap_or(&self.stranger)),
            Other => Some(&self.stranger),
            Client => Some(&self.user),
            Former => Some(&self.former),
            MyCoach => Some(&self.coach),
        }
    }

    /// Jobs and menus of the coach's clients, current and former, are the coach's doing.
    fn requested_by(&self, owner: &Account) -> Uuid {
        if owner.id == self.user.id || owner.id == self.former.id {
            self.coach.id
        } else {
            owner.id
        }
    }

    /// `template` with every placeholder made real for this cell (see [`Route`]).
    async fn resolve(
        &self,
        template: &str,
        actor: Option<&Account>,
        role: Role,
        rel: Rel,
    ) -> String {
        let mut text = template.to_string();
        let owner = self.owner(actor, rel);
        let whose = || owner.unwrap_or_else(|| panic!("{template}: a cell without a resource"));
        if text.contains("{job}") {
            let job = self.app.queued_job(whose().id).await;
            self.set_requested_by(Some(job), None, whose()).await;
            text = text.replace("{job}", &job.to_string());
        }
        if text.contains("{menu}") {
            let menu = self.app.finished_menu(whose().id).await;
            self.set_requested_by(None, Some(menu), whose()).await;
            text = text.replace("{menu}", &menu.to_string());
        }
        if text.contains("{user}") {
            text = text.replace("{user}", &whose().id.to_string());
        }
        if text.contains("{link}") {
            let id = match (role, rel) {
                (Coach, Client) => {
                    let fresh = self.app.user().await;
                    self.app.link(&self.coach, &fresh).await;
                    fresh.id
                }
                _ => whose().id,
            };
            text = text.replace("{link}", &id.to_string());
        }
        if text.contains("{coach}") {
            let id = match (actor, rel) {
                (Some(actor), MyCoach) => {
                    let fresh = self.app.coach().await;
                    self.app.link(&fresh, actor).await;
                    fresh.id
                }
                _ => whose().id,
            };
            text = text.replace("{coach}", &id.to_string());
        }
        if text.contains("{invitation}") {
            let inviter = self.app.coach().await;
            let link: Value = self
                .app
                .invite(&inviter, &whose().email)
                .await
                .json()
                .await
                .unwrap();
            text = text.replace("{invitation}", link["id"].as_str().unwrap());
        }
        if text.contains("{refresh_token}") {
            let me = actor.unwrap_or(&self.stranger);
            let session: Value = self
                .app
                .login(&me.email, PASSWORD)
                .await
                .json()
                .await
                .unwrap();
            let token = session["refresh_token"].as_str().expect("a refresh token");
            text = text.replace("{refresh_token}", token);
        }
        let my_email = &actor.unwrap_or(&self.stranger).email;
        text.replace("{batch}", &self.batch.to_string())
            .replace(
                "{email}",
                &format!("{}@example.com", Uuid::new_v4().simple()),
            )
            .replace("{my_email}", my_email)
            .replace("{nobody}", &Uuid::now_v7().to_string())
    }

    /// Marks a fresh job (`menu: None`) or menu and its job as submitted by whoever
    /// [`World::requested_by`] says.
    async fn set_requested_by(&self, job: Option<Uuid>, menu: Option<Uuid>, owner: &Account) {
        sqlx::query(
            "WITH menu AS (UPDATE menus SET requested_by = $3 WHERE id = $2 RETURNING job_id)
             UPDATE generation_jobs SET requested_by = $3
             WHERE id = $1 OR id IN (SELECT job_id FROM menu)",
        )
        .bind(job)
        .bind(menu)
        .bind(self.requested_by(owner))
        .execute(&self.app.db.pool)
        .await
        .unwrap();
    }

    /// Runs one cell: its status, and where it redirects to.
    async fn call(&self, route: &Route, role: Role, rel: Rel) -> (StatusCode, Option<String>) {
        let new_actor = match route.fresh {
            true => self.new_actor(role).await,
            false => None,
        };
        let actor = new_actor.as_ref().or(self.actor(role));
        let path = self.resolve(route.path, actor, role, rel).await;
        let method = Method::from_bytes(route.method.as_bytes()).unwrap();
        let token = actor.map(|a| a.token.as_str());
        let mut request = self.http.request(method, self.app.url(&path));
        match route.kind {
            Api => {
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                if let Some(body) = route.body {
                    let body = self.resolve(body, actor, role, rel).await;
                    request = request.header(CONTENT_TYPE, "application/json").body(body);
                }
            }
            Page => {
                if let Some(token) = token {
                    request = request.header(COOKIE, format!("{SESSION_COOKIE}={token}"));
                }
                if route.method == "POST" {
                    let csrf = match (role, &new_actor) {
                        (Admin, Some(admin)) => self.csrf_of(admin).await,
                        (Admin, None) => self.admin_csrf.clone(),
                        _ => String::new(),
                    };
                    request = request
                        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .body(serde_urlencoded::to_string([("csrf", csrf)]).unwrap());
                }
            }
            DashboardLogin => request = self.login_form(request, actor).await,
        }
        let response = request.send().await.unwrap();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_string());
        // The body is not read: an event stream would not end.
        (response.status(), location)
    }

    /// The dashboard's login form, filled in as `role` would: their email and password, and
    /// the CSRF cookie and token `GET /admin/login` hands out.
    async fn login_form(
        &self,
        request: reqwest::RequestBuilder,
        actor: Option<&Account>,
    ) -> reqwest::RequestBuilder {
        let form = self
            .http
            .get(self.app.url("/admin/login"))
            .send()
            .await
            .unwrap();
        let cookie = form
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .find(|v| v.starts_with(&format!("{LOGIN_COOKIE}=")))
            .expect("the login form sets its CSRF cookie")
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let csrf = csrf_in(&form.text().await.unwrap());
        let (email, password) = match actor {
            Some(actor) => (actor.email.as_str(), PASSWORD),
            None => (self.stranger.email.as_str(), "not the password"),
        };
        let fields = [
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", password),
        ];
        request
            .header(COOKIE, cookie)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(fields).unwrap())
    }
}

/// The CSRF token of `admin`'s dashboard session (the token in the session cookie), as the
/// overview's forms carry it.
async fn csrf_of(app: &TestApi, http: &reqwest::Client, admin: &Account) -> String {
    let overview = http
        .get(app.url("/admin"))
        .header(COOKIE, format!("{SESSION_COOKIE}={}", admin.token))
        .send()
        .await
        .unwrap();
    assert_eq!(overview.status(), StatusCode::OK);
    csrf_in(&overview.text().await.unwrap())
}

/// The CSRF token a dashboard page's forms carry.
fn csrf_in(page: &str) -> String {
    let start = r#"name="csrf" value=""#;
    let at = page.find(start).expect("a CSRF field") + start.len();
    let end = page[at..].find('"').unwrap();
    page[at..at + end].to_string()
}

/// `/v1/jobs/{id}?wait=1` → `/v1/jobs/{}`: the route a path is served by.
fn route_key(method: &str, path: &str) -> (String, String) {
    let path = path.split('?').next().unwrap();
    let shape: Vec<&str> = path
        .split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect();
    (method.to_uppercase(), shape.join("/"))
}

/// The routes the server answers on: the OpenAPI document's (which `tests/openapi.rs` holds
/// to be exactly the JSON routes served), and the dashboard's, read from where it registers
/// them.
async fn served_routes(app: &TestApi) -> BTreeSet<(String, String)> {
    let document: Value = app
        .get_anonymous("/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    let mut routes = BTreeSet::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            routes.insert(route_key(method, path));
        }
    }
    let source = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/admin/pages/mod.rs"),
    )
    .unwrap();
    for registration in source.split(".route(").skip(1) {
        let registration = registration.split(".layer(").next().unwrap();
        let path = registration.split('"').nth(1).unwrap();
        for method in ["get", "post", "put", "delete", "patch"] {
            if registration.contains(&format!("{method}(")) {
                routes.insert(route_key(method, path));
            }
        }
    }
    routes
}

#[tokio::test]
async fn every_route_answers_every_role_and_relationship_as_the_matrix_says() {
    let world = World::new().await;

    // The table covers every route served, each for every role.
    let served = served_routes(&world.app).await;
    let mut listed: BTreeMap<(String, String), BTreeSet<Role>> = BTreeMap::new();
    for route in MATRIX {
        listed
            .entry(route_key(route.method, route.path))
            .or_default()
            .extend(route.cells.iter().map(|(role, _, _)| *role));
    }
    let unlisted: Vec<_> = served.iter().filter(|r| !listed.contains_key(*r)).collect();
    assert!(
        unlisted.is_empty(),
        "served but not in the matrix: {unlisted:?}"
    );
    let unserved: Vec<_> = listed.keys().filter(|r| !served.contains(*r)).collect();
    assert!(
        unserved.is_empty(),
        "in the matrix but not served: {unserved:?}"
    );
    for (route, roles) in &listed {
        assert_eq!(roles.len(), 4, "{route:?}: a cell for each role");
    }

    let mut cells = 0;
    let mut mismatches = Vec::new();
    for route in MATRIX {
        for &(role, rel, expected) in route.cells {
            cells += 1;
            let (status, location) = world.call(route, role, rel).await;
            let at = format!(
                "{} {}{} as {role:?} on {rel:?}",
                route.method,
                route.path,
                route.body.map(|b| format!(" {b}")).unwrap_or_default()
            );
            if status.as_u16() != expected {
                mismatches.push(format!("{at}: expected {expected}, got {status}"));
                continue;
            }
            // A dashboard redirect for someone without a session goes to the login page; an
            // admin's stays on the dashboard.
            if status == StatusCode::SEE_OTHER {
                let to = location.unwrap_or_default();
                let fits = match role {
                    Anonymous => to == "/admin/login",
                    _ => to.starts_with("/admin"),
                };
                if !fits {
                    mismatches.push(format!("{at}: redirected to {to:?}"));
                }
            }
        }
    }
    eprintln!(
        "authorisation matrix: {cells} cells over {} routes",
        listed.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} of {cells} cells answered otherwise:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// The matrix's former client was removed by the coach; a client who leaves ends the link the
/// same way: the coach loses sight of the jobs and menus they submitted, the client keeps them.
#[tokio::test]
async fn after_the_client_leaves_the_coach_sees_none_of_their_things_and_the_client_keeps_them() {
    let app = spawn_api(|_| {}).await;
    let coach = app.coach().await;
    let client = app.user().await;
    app.link(&coach, &client).await;
    let submitted: Value = app
        .submit(&coach, json!({"client_id": client.id, "days": 1}))
        .await
        .json()
        .await
        .unwrap();
    let job = submitted["job_id"].as_str().unwrap().to_string();
    let menu = app.finished_menu(client.id).await;
    let paths = [
        format!("/v1/jobs/{job}"),
        format!("/v1/jobs/{job}/events"),
        format!("/v1/menus/{menu}"),
        format!("/v1/menus/{menu}/grocery-list"),
        format!("/v1/menus?client_id={}", client.id),
    ];
    for path in &paths {
        let status = app.get(path, &coach.token).await.status();
        assert_eq!(status, StatusCode::OK, "{path} before leaving");
    }

    let left = app
        .delete(&format!("/v1/me/coaches/{}", coach.id), &client.token)
        .await;
    assert_eq!(left.status(), StatusCode::NO_CONTENT);

    for path in &paths {
        let response = tokio::time::timeout(Duration::from_secs(5), app.get(path, &coach.token))
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::NOT_FOUND,
            "{path} after leaving"
        );
        let body: Value = response.json().await.unwrap();
        let code = if path.contains("client_id") {
            "client_not_found"
        } else {
            "not_found"
        };
        assert_eq!(body["error"]["code"], code, "{path}");
    }
    let cancel = app.cancel(job, &coach).await;
    assert_eq!(cancel.status(), StatusCode::NOT_FOUND);
    let resubmit = app
        .submit(&coach, json!({"client_id": client.id, "days": 1}))
        .await;
    assert_eq!(resubmit.status(), StatusCode::NOT_FOUND);

    // The client's, as before: the job the coach submitted, still queued, and the menu.
    let mine: Value = app.get_json(&paths[0], &client.token).await;
    assert_eq!(mine["status"], "queued");
    assert_eq!(mine["requested_by"], coach.id.to_string());
    let menus: Value = app.get_json("/v1/menus", &client.token).await;
    assert_eq!(menus["items"][0]["id"], menu.to_string());
    assert_eq!(app.job_rows().await, 2);
}
