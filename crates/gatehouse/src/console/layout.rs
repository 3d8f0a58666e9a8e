//! The frame every page shares: landmarks (header, nav, main), the role-aware navigation,
//! the stylesheet and script from this origin, and small pieces forms and tables reuse.

use axum::{
    body::Body,
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use maud::{DOCTYPE, Markup, html};

use super::session::Viewer;
use gatehouse_model::records::AdminRole;

/// The navigation: (path, label, the least role that sees it).
const NAV: &[(&str, &str, AdminRole)] = &[
    ("/console", "Overview", AdminRole::Auditor),
    ("/console/servers", "Servers", AdminRole::Auditor),
    ("/console/clients", "Clients", AdminRole::Auditor),
    ("/console/connections", "Connections", AdminRole::Auditor),
    ("/console/policies", "Policies", AdminRole::Auditor),
    ("/console/audit", "Audit", AdminRole::Auditor),
    ("/console/users", "Users and groups", AdminRole::Auditor),
    ("/console/signing-keys", "Signing keys", AdminRole::Auditor),
    ("/console/settings", "Settings", AdminRole::Auditor),
];

fn document(title: &str, nav: Option<(&Viewer, &str)>, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Gatehouse console" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body.framed[nav.is_some()] {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "Gatehouse" }
                    @if let Some((viewer, _)) = nav {
                        span.who {
                            "Signed in as " strong { (viewer.name) } " (" (viewer.role) ")"
                        }
                        form.inline method="post" action="/console/sign-out" {
                            (csrf(viewer))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                @if let Some((viewer, active)) = nav {
                    nav aria-label="Console" {
                        ul {
                            @for (path, label, role) in NAV {
                                @if viewer.may(*role) {
                                    li {
                                        @if *path == active {
                                            a href=(path) aria-current="page" { (label) }
                                        } @else {
                                            a href=(path) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (main)
                }
            }
        }
    }
}

fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut response = Response::new(Body::from(markup.into_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// A page of the console for a signed-in operator; `active` is its navigation entry.
pub fn page(viewer: &Viewer, active: &str, title: &str, main: Markup) -> Response {
    page_with_status(StatusCode::OK, viewer, active, title, main)
}

pub fn page_with_status(
    status: StatusCode,
    viewer: &Viewer,
    active: &str,
    title: &str,
    main: Markup,
) -> Response {
    html_response(status, document(title, Some((viewer, active)), main))
}

/// A page without navigation (sign-in, and refusals before a session exists).
pub fn bare(status: StatusCode, title: &str, main: Markup) -> Response {
    html_response(status, document(title, None, main))
}

pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    bare(
        status,
        title,
        html! { p.error role="alert" { (text) } p { a href="/console" { "Back to the console" } } },
    )
}

/// An HTML fragment (the audit view's polled rows).
pub fn fragment(markup: Markup) -> Response {
    html_response(StatusCode::OK, markup)
}

pub fn see_other(location: &str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = HeaderValue::try_from(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The hidden field every form of the session carries.
pub fn csrf(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

/// A refusal or failure shown above a page's content.
pub fn alert(text: &str) -> Markup {
    html! { p.error role="alert" { (text) } }
}

pub fn notice(text: &str) -> Markup {
    html! { p.notice role="status" { (text) } }
}

/// Milliseconds since the Unix epoch as UTC, to the second.
pub fn time(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => ms.to_string(),
    }
}

/// A path segment with everything but unreserved characters percent-encoded.
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
