//! The engines the metadata and registry suites run on. [`on_both_engines!`] runs each listed
//! test twice: on an in-memory SQLite, and on a fresh database of a real PostgreSQL server that
//! the test process starts (`raidtorrent_testkit::Postgres`; skipped when PostgreSQL is not
//! installed, unless `RAIDTORRENT_REQUIRE_TOOLS=1`).

use std::path::Path;

use super::Registry;

/// Which engine a test runs on.
#[derive(Clone, Copy, Debug)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A registry on a new, empty database of `engine`, or `None` when that engine is missing.
pub async fn fresh(engine: Engine) -> Option<Registry> {
    let registry = match engine {
        Engine::Sqlite => Registry::open_in_memory().await,
        Engine::Postgres => {
            let url = raidtorrent_testkit::Postgres::fresh_database()?;
            Registry::open(Path::new(&url)).await
        }
    };
    Some(registry.expect("opening a fresh database"))
}

/// For each `name`, a module `name` with tests `sqlite` and `postgres` that call the async
/// function `name(Registry)` with a fresh registry of that engine.
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use $crate::registry::test_engines::{fresh, Engine};

            #[tokio::test]
            async fn sqlite() {
                super::$name(fresh(Engine::Sqlite).await.unwrap()).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(registry) = fresh(Engine::Postgres).await {
                    super::$name(registry).await;
                }
            }
        }
    )*};
}
pub(crate) use on_both_engines;
