//! The route table: every route the app serves is registered here, through [`Routes`], which
//! records `(method, path)` beside building the axum router. The test suite compares that list
//! with the routes its tests actually called, so an untested route fails the build.

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodRouter, delete, get, patch, post, put};

use crate::state::AppState;
use crate::{api, console, gateway, ops};

/// One served route, e.g. `GET /healthz`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
}

/// A router under construction plus the list of what it serves.
pub struct Routes {
    router: Router<AppState>,
    /// The console's pages, which get the session layer (kept off the gateway's hot path).
    console: Router<AppState>,
    table: Vec<Route>,
}

impl Routes {
    fn new() -> Self {
        Self { router: Router::new(), console: Router::new(), table: Vec::new() }
    }

    fn add(mut self, method: &'static str, path: &'static str, route: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, route);
        self.table.push(Route { method, path });
        self
    }

    pub fn get<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add("GET", path, get(handler))
    }

    pub fn post<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add("POST", path, post(handler))
    }

    pub fn put<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add("PUT", path, put(handler))
    }

    pub fn patch<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add("PATCH", path, patch(handler))
    }

    pub fn delete<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add("DELETE", path, delete(handler))
    }

    /// A console page (served with sessions).
    pub fn page_get<H: Handler<T, AppState>, T: 'static>(mut self, path: &'static str, handler: H) -> Self {
        self.console = self.console.route(path, get(handler));
        self.table.push(Route { method: "GET", path });
        self
    }

    /// A console form or htmx action (served with sessions).
    pub fn page_post<H: Handler<T, AppState>, T: 'static>(mut self, path: &'static str, handler: H) -> Self {
        self.console = self.console.route(path, post(handler));
        self.table.push(Route { method: "POST", path });
        self
    }

    /// Every `(method, path)` this router serves.
    pub fn table(&self) -> &[Route] {
        &self.table
    }

    /// The router, with `console` wrapping the console's pages (the session layer).
    pub fn into_router(self, console: impl FnOnce(Router<AppState>) -> Router<AppState>) -> Router<AppState> {
        self.router.merge(console(self.console))
    }
}

/// All routes of the application.
pub fn all() -> Routes {
    let routes = Routes::new()
        .get("/healthz", ops::healthz)
        .get("/readyz", ops::readyz)
        .get("/metrics", crate::metrics::metrics)
        .get("/static/{file}", console::assets::serve);
    console::routes(api::routes(gateway::routes(routes)))
}
