//! Every route the app serves must be exercised by at least one test. The suite records the
//! routes it calls (see `helpers::record_route`); this check, run by `scripts/test.sh` after the
//! suite, compares them with the router's table and names any route no test touched.

use std::collections::BTreeSet;

use crate::support::helpers::route_coverage_dir;

#[test]
#[ignore = "run by scripts/test.sh after the whole suite has recorded the routes it called"]
fn every_route_is_exercised() {
    let dir = route_coverage_dir();
    let mut seen = BTreeSet::new();
    for entry in std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("no route records in {} ({e}): run the whole suite first", dir.display()))
    {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        seen.extend(text.lines().map(str::to_string));
    }
    let routes = burncloud::app::route_table();
    let untested: Vec<String> =
        routes.iter().map(|r| format!("{} {}", r.method, r.path)).filter(|r| !seen.contains(r)).collect();
    assert!(untested.is_empty(), "routes no test exercised:\n  {}", untested.join("\n  "));
    println!("route coverage: all {} routes exercised", routes.len());
}
