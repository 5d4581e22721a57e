//! The route table: every route the app serves is registered here, through [`Routes`], which
//! records `(method, path)` beside building the axum router. The test suite compares that list
//! with the routes its tests actually called, so an untested route fails the build.

use std::marker::PhantomData;

use axum::Router;
use axum::extract::{FromRequestParts, Path};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, delete, get, patch, post, put};

use crate::state::AppState;

/// One served route, e.g. `GET /healthz`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
}

/// A router under construction plus the list of what it serves. `S` is its handlers' state: the
/// shared [`AppState`], or a layer's own (the gateway's) until [`with_state`](Self::with_state)
/// fixes it.
pub struct Routes<S = AppState> {
    router: Router<S>,
    /// The console's pages, which get the session layer (kept off the gateway's hot path).
    console: Router<S>,
    table: Vec<Route>,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn new() -> Self {
        Self { router: Router::new(), console: Router::new(), table: Vec::new() }
    }

    fn add(mut self, method: &'static str, path: &'static str, route: MethodRouter<S>) -> Self {
        self.router = self.router.route(path, route);
        self.table.push(Route { method, path });
        self
    }

    pub fn get<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add("GET", path, get(handler))
    }

    pub fn post<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add("POST", path, post(handler))
    }

    pub fn put<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add("PUT", path, put(handler))
    }

    pub fn patch<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add("PATCH", path, patch(handler))
    }

    pub fn delete<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add("DELETE", path, delete(handler))
    }

    /// A console page (served with sessions).
    pub fn page_get<H: Handler<T, S>, T: 'static>(mut self, path: &'static str, handler: H) -> Self {
        self.console = self.console.route(path, get(handler));
        self.table.push(Route { method: "GET", path });
        self
    }

    /// A console form or htmx action (served with sessions).
    pub fn page_post<H: Handler<T, S>, T: 'static>(mut self, path: &'static str, handler: H) -> Self {
        self.console = self.console.route(path, post(handler));
        self.table.push(Route { method: "POST", path });
        self
    }

    /// Every `(method, path)` this router serves.
    pub fn table(&self) -> &[Route] {
        &self.table
    }

    /// These routes served with `state`: they no longer need one from the router they join.
    pub fn with_state<S2>(self, state: S) -> Routes<S2> {
        Routes {
            router: self.router.with_state(state.clone()),
            console: self.console.with_state(state),
            table: self.table,
        }
    }

    /// These routes and `other`'s.
    pub fn merge(mut self, other: Routes<S>) -> Self {
        self.router = self.router.merge(other.router);
        self.console = self.console.merge(other.console);
        self.table.extend(other.table);
        self
    }

    /// The router, with `console` wrapping the console's pages (the session layer).
    pub fn into_router(self, console: impl FnOnce(Router<S>) -> Router<S>) -> Router<S> {
        self.router.merge(console(self.console))
    }
}

/// How a face answers a request for something that is not there: the API's JSON 404, the
/// console's friendly page.
pub trait NotFound: IntoResponse {
    fn not_found() -> Self;
}

/// The numeric id in a route's path (`/…/{id}`): the one way the console and the API read ids.
/// One that is not a number answers as a missing row would, in the face's own shape (`E`).
pub struct Id<E>(pub i64, pub PhantomData<fn() -> E>);

impl<S: Send + Sync, E: NotFound> FromRequestParts<S> for Id<E> {
    type Rejection = E;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, E> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state).await.map_err(|_| E::not_found())?;
        raw.parse().map(|id| Id(id, PhantomData)).map_err(|_| E::not_found())
    }
}

/// A numeric id and a name after it in a route's path (`/…/{id}/…/{name}`), as [`Id`] reads them.
pub struct IdAndName<E>(pub i64, pub String, pub PhantomData<fn() -> E>);

impl<S: Send + Sync, E: NotFound> FromRequestParts<S> for IdAndName<E> {
    type Rejection = E;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, E> {
        let Path((raw, name)) =
            Path::<(String, String)>::from_request_parts(parts, state).await.map_err(|_| E::not_found())?;
        raw.parse().map(|id| IdAndName(id, name, PhantomData)).map_err(|_| E::not_found())
    }
}
