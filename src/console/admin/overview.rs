//! `/admin`: the operator's overview (monitoring is being built on it).

use askama::Template;
use askama_web::WebTemplate;

use super::AdminUser;
use crate::console::Layout;
use crate::routes::Routes;

/// Adds this page's routes.
pub fn routes(routes: Routes) -> Routes {
    routes.page_get("/admin", page)
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/overview.html")]
pub struct OverviewPage {
    layout: Layout,
}

/// `GET /admin`.
pub async fn page(admin: AdminUser) -> OverviewPage {
    OverviewPage { layout: admin.user.layout }
}

/// This page's texts in Chinese.
pub const ZH: &[(&str, &str)] = &[("The state of the site at a glance.", "站点运行状况一览。")];
