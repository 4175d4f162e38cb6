//! Logging in to the dashboard and out. The password is checked as the API's login checks it
//! ([`auth::authenticate`]); only admins get a session. The login form has a CSRF token too,
//! bound to a random cookie the form's page sets, so another site cannot log a browser in to an
//! account of its choosing.

use std::time::Duration;

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use shared::db::users::Role;
use uuid::Uuid;

use super::csrf::{self, Checked};
use super::error::{LOGIN_PAGE, PageError};
use super::layout;
use super::session::{self, ADMINS_ONLY, SESSION_COOKIE};
use crate::auth;
use crate::error::ApiError;
use crate::rate_limit::ClientAddr;
use crate::sessions;
use crate::state::AppState;

/// The cookie the login form's CSRF token is bound to.
const LOGIN_COOKIE: &str = "menus_admin_login";
/// How long a login form stays usable.
const LOGIN_FORM_LIFETIME: Duration = Duration::from_secs(3600);

/// `GET /admin/login`: the form.
pub async fn form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    // The cookie of an earlier visit is kept, so a form open in another tab still works.
    let binding = session::cookie(&headers, LOGIN_COOKIE)
        .filter(|value| Uuid::try_parse(value).is_ok())
        .map_or_else(|| Uuid::new_v4().simple().to_string(), str::to_string);
    let cookie = session::set_cookie(
        LOGIN_COOKIE,
        &binding,
        LOGIN_FORM_LIFETIME,
        state.admin_cookie_secure,
    );
    let page = login_page(&csrf::token(&state.tokens, &binding), "", None);
    ([(header::SET_COOKIE, cookie)], page).into_response()
}

/// What the login form sends; a field left out is empty.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    csrf: Option<String>,
    email: String,
    password: String,
}

/// `POST /admin/login`: an admin gets the session cookie and the overview; a wrong email or
/// password gets the form again (401); anyone else a 403.
pub async fn submit(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form.map(|Form(form)| form).unwrap_or_default();
    let expected =
        session::cookie(&headers, LOGIN_COOKIE).map(|binding| csrf::token(&state.tokens, binding));
    if !expected.is_some_and(|expected| csrf::matches(&expected, form.csrf.as_deref())) {
        return Err(csrf::refused().into());
    }
    let user = match auth::authenticate(&state, addr, &form.email, form.password).await {
        Ok(user) => user,
        Err(error @ ApiError::InvalidCredentials) => {
            let again = login_page(
                form.csrf.as_deref().unwrap_or_default(),
                &form.email,
                Some(&error.to_string()),
            );
            return Ok((StatusCode::UNAUTHORIZED, again).into_response());
        }
        Err(other) => return Err(other.into()),
    };
    if user.role != Role::Admin {
        return Err(ApiError::Forbidden(ADMINS_ONLY).into());
    }
    // The cookie's token lasts as long as its session, which every request checks, so a
    // logout or a role change ends it at once.
    let lifetime = state.session_lifetime;
    let issued = sessions::open(&state, &user, lifetime, lifetime).await?;
    let secure = state.admin_cookie_secure;
    let cookies = AppendHeaders([
        (
            header::SET_COOKIE,
            session::set_cookie(SESSION_COOKIE, &issued.access_token, lifetime, secure),
        ),
        (
            header::SET_COOKIE,
            session::set_cookie(LOGIN_COOKIE, "", Duration::ZERO, secure),
        ),
    ]);
    Ok((cookies, Redirect::to("/admin")).into_response())
}

/// `POST /admin/logout`: ends the session (its token stops working everywhere at once) and
/// forgets the cookie.
pub async fn logout(
    State(state): State<AppState>,
    Checked(admin): Checked,
) -> Result<Response, PageError> {
    sessions::end(&state, admin.id, admin.session).await?;
    let cookie = session::set_cookie(
        SESSION_COOKIE,
        "",
        Duration::ZERO,
        state.admin_cookie_secure,
    );
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(LOGIN_PAGE)).into_response())
}

fn login_page(csrf_token: &str, email: &str, refusal: Option<&str>) -> Markup {
    layout::page(
        "Log in",
        None,
        None,
        html! {
            form.login method="post" action=(LOGIN_PAGE) {
                @if let Some(refusal) = refusal {
                    p.refused role="alert" { (refusal) }
                }
                (csrf::field(csrf_token))
                label { "Email" input type="email" name="email" value=(email) autocomplete="username" required autofocus; }
                label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                button.primary type="submit" { "Log in" }
            }
        },
    )
}
