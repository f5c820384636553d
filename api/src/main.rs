//! `activity-api`: serves a target's history over HTTP.

fn main() {
    println!("{}", api::describe());
}
