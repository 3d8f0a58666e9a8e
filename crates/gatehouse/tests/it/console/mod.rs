//! The web console (`/console` on the admin listener), driven as a browser would: cookies
//! kept, redirects not followed, forms posted with the token the page carries.

mod connection_page;
mod health;
mod more_pages;
mod oauth_registrations;
mod pages;
mod people;
mod skeleton;
mod stdio_register;

use crate::admin_api::AdminApi;
use gatehouse_model::records::AdminRole;
use regex::Regex;
use reqwest::{StatusCode, header::HeaderMap};
use std::collections::BTreeMap;

/// A browser's view of the console: its cookie jar and the last page's CSRF token.
pub struct Browser {
    pub api: AdminApi,
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The CSRF token the page's first form carries.
    pub fn csrf(&self) -> String {
        Regex::new(r#"name="csrf" value="([^"]+)""#)
            .unwrap()
            .captures(&self.body)
            .unwrap_or_else(|| panic!("no CSRF field on the page:\n{}", self.body))[1]
            .to_owned()
    }

    pub fn assert_contains(&self, text: &str) {
        assert!(
            self.body.contains(text),
            "the page ({}) does not contain {text:?}:\n{}",
            self.status,
            self.body
        );
    }
}

impl Browser {
    pub async fn start() -> Browser {
        Browser::with(AdminApi::start().await)
    }

    pub fn with(api: AdminApi) -> Browser {
        Browser {
            api,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    /// Replaces the cookie jar (another browser, or one holding an old cookie).
    pub fn set_cookies(&mut self, pairs: &[(&str, &str)]) {
        self.cookies = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    fn keep_cookies(&mut self, headers: &HeaderMap) {
        for value in headers.get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&mut self, request: reqwest::RequestBuilder) -> Page {
        let request = if self.cookies.is_empty() {
            request
        } else {
            request.header("cookie", self.cookie_header())
        };
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        self.keep_cookies(&headers);
        let body = response.text().await.unwrap();
        Page {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.api.base));
        self.finish(request).await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let request = self
            .http
            .post(format!("{}{path}", self.api.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.finish(request).await
    }

    /// Signs in with `token` through the sign-in form, as a person would.
    pub async fn sign_in_with(&mut self, token: &str) -> Page {
        let form = self.get("/console/sign-in").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.csrf();
        self.post("/console/sign-in", &[("csrf", &csrf), ("token", token)])
            .await
    }

    /// Signs in with a fresh admin token of `role`; answers the session's CSRF token.
    pub async fn sign_in(&mut self, role: AdminRole) -> String {
        let token = self.api.token(role).await;
        let answer = self.sign_in_with(&token).await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        assert_eq!(answer.location(), "/console");
        let overview = self.get("/console").await;
        assert_eq!(overview.status, 200, "{}", overview.body);
        overview.csrf()
    }
}
