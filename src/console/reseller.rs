//! `/console/reseller`: (being built).

use crate::routes::Routes;

/// Adds this page's routes.
pub fn routes(routes: Routes) -> Routes {
    routes
}

/// This page's texts in Chinese.
pub const ZH: &[(&str, &str)] = &[];
