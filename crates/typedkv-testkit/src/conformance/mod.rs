//! The backend conformance suite: one `pub async fn` per behaviour, generic over the backend.
//!
//! Each function takes a fresh backend (nothing else may write to it during the test) and
//! panics when the behaviour does not hold. [`conformance_tests!`](crate::conformance_tests)
//! turns the list of what a backend must do into one `#[test]` per behaviour: that list is
//! a backend's whole contract. The typed layer's own behaviours (codecs, the envelope,
//! validation, builder mistakes) do not depend on the backend; they are functions here too,
//! and [`typed_layer_tests!`](crate::typed_layer_tests) runs them (typedkv runs them once, on
//! the in-memory backend).

mod at_rest;
mod batch;
mod concern;
mod conditions;
mod crud;
mod encoding;
pub mod indexes;
mod keys;
mod load;
mod migrations;
pub mod partitions;
mod scan;
pub(crate) mod transactions;
mod ttl;
mod update;
pub mod values;
mod versions;

pub use self::at_rest::*;
pub use self::batch::*;
pub use self::concern::*;
pub use self::conditions::*;
pub use self::crud::*;
pub use self::encoding::*;
pub use self::indexes::{
    a_unique_value_taken_back_is_indexed_again, indexed_entities_expire, indexes_find_by_field,
    indexes_follow_every_write_path, migrated_values_are_indexed_on_write_back,
    panicking_extractors_are_errors, range_pages_are_ordered_and_complete,
    rebuild_and_repair_indexes, unique_indexes_refuse_taken_values,
    writes_around_the_indexes_are_repaired,
};
pub use self::keys::*;
pub use self::load::*;
pub use self::migrations::*;
pub use self::partitions::{
    partitioned_indexes_answer_like_one_slot, partitioned_indexes_rebuild_and_repair,
    partitioned_keys_scan_count_and_clear, stores_move_between_layouts,
};
pub use self::scan::*;
pub use self::transactions::*;
pub use self::ttl::*;
pub use self::update::*;
pub use self::versions::*;

use serde::Serialize;
use serde::de::DeserializeOwned;
use typedkv::{Backend, TypedStore};

/// A store of `T` under `namespace` on `backend`, default settings.
pub fn store<T, B>(backend: &B, namespace: &str) -> TypedStore<T, B>
where
    T: Serialize + DeserializeOwned + Send + Sync,
    B: Backend,
{
    TypedStore::builder(backend.clone(), namespace)
        .build()
        .unwrap()
}

/// Expands the conformance suite into one test per behaviour, in a module `$name`.
///
/// - `test = [...]`: the test attribute, e.g. `[tokio::test(start_paused = true)]` for a
///   backend on tokio's clock, `[tokio::test(flavor = "multi_thread")]` for a real server
///   (never a paused clock with real I/O: timeouts would fire at once).
/// - `fixture = expr`: a future giving a [`Fixture`](crate::Fixture), evaluated once per test.
///
/// For a backend that is expensive to start (a cluster), [`run_all`] runs the whole suite
/// in one test on one server instead.
#[macro_export]
macro_rules! conformance_tests {
    ($name:ident, test = [$($attr:tt)*], fixture = $fixture:expr $(,)?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_list!(__conformance_tests_of_list { [$($attr)*] $fixture });
        }
    };
}

/// The backend contract's cases, in one list: calls `$crate::$callback!` with `$args`, then
/// the cases that take the fixture's backend, then those that take the fixture itself (they
/// need a second client).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_list {
    ($callback:ident { $($args:tt)* }) => {
        $crate::$callback! {
            { $($args)* }
            backend = [
            round_trip_nested_struct,
            missing_key_is_none,
            overwrite_replaces_value,
            delete_and_exists,
            empty_values,
            large_value,
            clones_share_data,
            ttl_reports_absent_never_and_remaining,
            default_ttl_expires_values,
            explicit_ttl_and_no_expiry,
            keep_ttl,
            ttls_beyond_max_ttl_are_refused,
            only_if_absent,
            only_if_present,
            compare_and_swap_honours_every_guard,
            get_many_keeps_order_with_gaps,
            set_many_writes_all,
            namespaces_are_isolated,
            awkward_ids_round_trip,
            update_counts_every_increment,
            update_keep_delete_and_create,
            update_keeps_ttl,
            scan_yields_every_key_once,
            scan_stays_in_its_namespace,
            scan_reports_undecodable_values_and_goes_on,
            ids_the_store_refuses_follow_one_rule,
            delete_many_and_clear,
            set_if_version_refuses_stale_versions,
            get_or_insert_with_loads_once,
            get_or_insert_with_shares_loads_per_store,
            get_or_insert_with_shares_errors_without_caching,
            get_or_insert_with_survives_a_panicking_loader,
            get_or_insert_with_lets_the_loader_choose_the_ttl,
            hash_tagged_keys_work_like_plain_ones,
            old_schemas_are_migrated_on_read,
            get_with_ttl_pairs_value_and_expiry,
            indexes_find_by_field,
            indexes_follow_every_write_path,
            unique_indexes_refuse_taken_values,
            indexed_entities_expire,
            range_pages_are_ordered_and_complete,
            rebuild_and_repair_indexes,
            writes_around_the_indexes_are_repaired,
            a_unique_value_taken_back_is_indexed_again,
            panicking_extractors_are_errors,
            migrated_values_are_indexed_on_write_back,
            partitioned_indexes_answer_like_one_slot,
            partitioned_keys_scan_count_and_clear,
            partitioned_indexes_rebuild_and_repair,
            stores_move_between_layouts,
            encrypted_values_round_trip_and_rotate,
            adopting_encryption_on_existing_data,
            encrypted_indexes_hold_no_values_in_clear,
            encrypted_old_schemas_are_migrated,
            transactions_commit_all_or_nothing,
            transactions_seal_values_and_commit_indexed_stores_beside_others,
            transactions_take_dyn_stores,
            transactions_keep_indexes_and_unique_values,
            backend_commit_honours_every_guard,
            a_panicking_transaction_writes_nothing,
            transactions_keep_an_invariant_under_contention,
            writes_wait_for_every_replica,
            ]
            fixture = [
                update_from_two_clients,
                versions_travel_and_keep_ttl,
                transactions_retry_when_what_they_read_changes,
            ]
        }
    };
}

/// The typed layer's own cases: the same on every backend, so run once (on memory).
#[doc(hidden)]
#[macro_export]
macro_rules! __typed_layer_list {
    ($callback:ident { $($args:tt)* }) => {
        $crate::$callback! {
            { $($args)* }
            backend = [
                usable_as_dyn_store,
                zero_ttl_is_refused,
                invalid_ids_and_namespaces_are_refused,
                unreadable_bytes_are_decode_errors,
                hostile_length_prefix_is_refused,
                schema_versions_are_checked,
                json_codec_stores_plain_json,
                decode_limit_is_enforced,
                update_refuses_undecodable_values,
                migration_mistakes_are_refused,
                a_changed_type_is_detected_without_a_schema_bump,
                encryption_keys_are_never_printed,
                moved_encrypted_values_fail_to_decrypt,
                corrupted_sealed_values_are_decode_errors,
                compressed_values_shrink_and_bombs_are_refused,
                json_values_are_sealed_too,
            ]
            fixture = []
        }
    };
}

/// Expands the typed layer's own cases (codecs, envelope, layout fingerprints, validation,
/// builder mistakes) into one test each, in a module `$name`, like
/// [`conformance_tests!`](crate::conformance_tests). They do not depend on the backend, so
/// one backend suffices.
#[macro_export]
macro_rules! typed_layer_tests {
    ($name:ident, test = [$($attr:tt)*], fixture = $fixture:expr $(,)?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::__typed_layer_list!(__conformance_tests_of_list { [$($attr)*] $fixture });
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests_of_list {
    ({ [$($attr:tt)*] $fixture:expr } backend = [$($by_backend:ident,)*] fixture = [$($by_fixture:ident,)*]) => {
        $crate::__conformance_cases!([$($attr)*] $fixture, fixture => fixture.backend(); $($by_backend,)*);
        $crate::__conformance_cases!([$($attr)*] $fixture, fixture => &fixture; $($by_fixture,)*);
    };
}

/// One test per case: builds the fixture and passes `$pass` (the fixture's backend, or the
/// fixture itself for cases that need a second client). Recursion keeps the attribute tokens
/// out of the case repetition.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ([$($attr:tt)*] $fixture:expr, $name:ident => $pass:expr; ) => {};
    ([$($attr:tt)*] $fixture:expr, $name:ident => $pass:expr; $case:ident, $($rest:ident,)*) => {
        #[$($attr)*]
        async fn $case() {
            let $name = $fixture.await;
            $crate::conformance::$case($pass).await;
        }
        $crate::__conformance_cases!([$($attr)*] $fixture, $name => $pass; $($rest,)*);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_runner {
    ({} backend = [$($by_backend:ident,)*] fixture = [$($by_fixture:ident,)*]) => {
        /// Runs every case of the suite in turn, each on a fixture from `fixture` (which must
        /// hand out an empty backend each time), and returns the names of the cases that
        /// failed; their panic messages went to stderr. For backends too slow to start once
        /// per test, such as a cluster: one server, one test, the whole suite.
        pub async fn run_all<B, F, Fut>(mut fixture: F) -> Vec<&'static str>
        where
            B: Backend,
            F: FnMut() -> Fut,
            Fut: std::future::Future<Output = $crate::Fixture<B>>,
        {
            let mut failed = Vec::new();
            $(
                let case = async { $by_backend(fixture().await.backend()).await };
                run_case(stringify!($by_backend), case, &mut failed).await;
            )*
            $(
                let case = async { $by_fixture(&fixture().await).await };
                run_case(stringify!($by_fixture), case, &mut failed).await;
            )*
            failed
        }
    };
}

crate::__conformance_list!(__conformance_runner {});

/// Runs one case of [`run_all`], reporting it as libtest would.
async fn run_case(
    name: &'static str,
    case: impl std::future::Future<Output = ()>,
    failed: &mut Vec<&'static str>,
) {
    use futures::FutureExt;
    let started = std::time::Instant::now();
    let outcome = std::panic::AssertUnwindSafe(case).catch_unwind().await;
    let verdict = if outcome.is_ok() { "ok" } else { "FAILED" };
    eprintln!("case {name} ... {verdict} ({:.2?})", started.elapsed());
    if outcome.is_err() {
        failed.push(name);
    }
}
