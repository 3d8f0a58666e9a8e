//! The few HTML pages of the browser flow: sign-in, consent, and errors that must not be
//! redirected. Hand-written with escaping (no template engine for three small pages); every
//! page refuses framing and caching and loads nothing from elsewhere.

use axum::{
    body::Body,
    response::{IntoResponse, Response},
};
use http::{HeaderValue, StatusCode, header};

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;\
padding:0 1rem;color:#1d2430}h1{font-size:1.3rem}code{background:#eef1f5;padding:0 .25rem}\
label{display:block;margin:.8rem 0 .2rem}input[type=text],input[type=password]{width:100%;\
padding:.45rem;box-sizing:border-box}button{margin:1rem .5rem 0 0;padding:.5rem 1rem}\
.error{color:#a01818}ul{padding-left:1.2rem}.muted{color:#5b6573;font-size:.9rem}.warning{border-left:4px solid #b26b00;padding:.4rem .8rem;background:#fff6e5}";

/// A page with the headers every browser-flow page carries.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    page_posting_to(status, title, body, "")
}

/// As [`page`]; `redirect_source` is added to `form-action`, because browsers apply it to
/// the redirect that follows a form post too (consent ends by redirecting to the client).
pub fn page_posting_to(
    status: StatusCode,
    title: &str,
    body: &str,
    redirect_source: &str,
) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{} · Gatehouse</title>\
         <style>{STYLE}</style></head><body>{body}</body></html>",
        escape(title)
    );
    let mut response = Response::new(Body::from(html));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Forms post only to this origin; nothing may frame the page (clickjacking of consent).
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {redirect_source}; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    if let Ok(csp) = HeaderValue::try_from(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// An error the user sees here, because redirecting it would send it somewhere untrusted
/// (unknown client, unregistered redirect URI).
pub fn error(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Authorization error",
        &format!(
            "<h1>This sign-in request cannot continue</h1><p class=\"error\">{}</p>\
             <p class=\"muted\">Return to the application and try again.</p>",
            escape(message)
        ),
    )
}

pub struct LoginPage<'a> {
    pub request: &'a str,
    pub csrf: &'a str,
    pub client: &'a str,
    pub error: Option<&'a str>,
    pub local_users: bool,
    /// `(name, display name)` of each upstream provider.
    pub providers: &'a [(String, String)],
}

pub fn login(p: &LoginPage<'_>) -> Response {
    let mut body = format!("<h1>Sign in to continue to {}</h1>", escape(p.client));
    if let Some(error) = p.error {
        body.push_str(&format!("<p class=\"error\">{}</p>", escape(error)));
    }
    for (name, display) in p.providers {
        body.push_str(&format!(
            "<p><a href=\"/oauth/login/{}?req={}\">Sign in with {}</a></p>",
            escape(name),
            escape(p.request),
            escape(display)
        ));
    }
    if p.local_users {
        body.push_str(&format!(
            "<form method=\"post\" action=\"/oauth/login\">\
             <input type=\"hidden\" name=\"req\" value=\"{}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <label for=\"username\">Username</label>\
             <input id=\"username\" name=\"username\" type=\"text\" autocomplete=\"username\" required>\
             <label for=\"password\">Password</label>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
             <button type=\"submit\">Sign in</button></form>",
            escape(p.request),
            escape(p.csrf)
        ));
    }
    let status = if p.error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    page(status, "Sign in", &body)
}

pub struct ConsentPage<'a> {
    /// Origin (or `scheme:`) of the redirect URI, for `form-action`.
    pub redirect_source: &'a str,
    pub request: &'a str,
    pub csrf: &'a str,
    pub client_name: &'a str,
    pub client_id: &'a str,
    pub redirect_host: &'a str,
    pub user: &'a str,
    pub resource: &'a str,
    pub scopes: &'a [String],
    /// The client registered itself (metadata document or registration) and sends the answer
    /// to a loopback address: any program on the user's machine could have claimed its id.
    pub loopback_warning: bool,
}

pub fn consent(p: &ConsentPage<'_>) -> Response {
    let scopes: String = p
        .scopes
        .iter()
        .map(|s| format!("<li><code>{}</code></li>", escape(s)))
        .collect();
    let body = format!(
        "<h1>Allow {name} to use {resource} as {user}?</h1>\
         <p><b>{name}</b> (client <code>{id}</code>) asks for:</p><ul>{scopes}</ul>\
         <p>After you answer, you go back to <b>{host}</b>.</p>{warning}\
         <form method=\"post\" action=\"/oauth/authorize\">\
         <input type=\"hidden\" name=\"req\" value=\"{req}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Allow</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>\
         <p class=\"muted\">Signed in as {user}.</p>",
        name = escape(p.client_name),
        id = escape(p.client_id),
        resource = escape(p.resource),
        user = escape(p.user),
        host = escape(p.redirect_host),
        req = escape(p.request),
        csrf = escape(p.csrf),
        warning = if p.loopback_warning {
            "<p class=\"warning\" role=\"alert\"><b>Warning:</b> this application sends your \
             answer to a program on your own computer. Gatehouse cannot tell which program \
             that is: any program can claim this application's name. Allow only if you \
             started this sign-in yourself, just now.</p>"
        } else {
            ""
        },
    );
    page_posting_to(StatusCode::OK, "Authorize", &body, p.redirect_source)
}

/// `303 See Other` to `location` (after a form post, the browser follows with GET).
pub fn see_other(location: &str) -> Response {
    match HeaderValue::try_from(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => error(StatusCode::BAD_REQUEST, "invalid redirect location"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
