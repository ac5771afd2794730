//! `sqlx::migrate!` embeds `migrations/` at compile time, and cargo does not know that:
//! without this, an incremental build after adding a migration ships without it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
