//! The demo data set of `tollgate demo`.

use time::{Date, Month, OffsetDateTime, Time};
use uuid::Uuid;

use super::{create_user, NewUser, Passwords, UserError};
use crate::store::{Job, Store};

/// The demo people: username, first and last name, gender, phone, city.
const PEOPLE: [(&str, &str, &str, &str, &str, &str); 3] = [
    (
        "user1",
        "Ada",
        "Lovelace",
        "female",
        "+44 20 7946 0101",
        "London",
    ),
    (
        "user2",
        "Alan",
        "Turing",
        "male",
        "+44 161 496 0202",
        "Manchester",
    ),
    (
        "user3",
        "Grace",
        "Hopper",
        "female",
        "+1 212 555 0303",
        "New York",
    ),
];

/// The demo administrator.
const ADMIN: &str = "user1";

/// Each demo person's jobs: company, title, department, skills.
const JOBS: [(&str, &str, &str, &str); 3] = [
    (
        "Initech",
        "Software Engineer",
        "Platform",
        "Rust, SQL, Linux",
    ),
    (
        "Globex",
        "Senior Engineer",
        "Identity",
        "OAuth, JWT, Angular",
    ),
    (
        "Umbrella Systems",
        "Staff Engineer",
        "Security",
        "Cryptography, Go, Kubernetes",
    ),
];

/// Adds the demo users (`user1`…`user3`, password `password`; `user1` is an administrator) and their jobs where missing.
/// Returns how many users were added.
pub async fn seed_demo(store: &dyn Store, passwords: &Passwords) -> Result<usize, UserError> {
    let mut added = 0;
    for (n, (username, first, last, gender, phone, city)) in PEOPLE.into_iter().enumerate() {
        if store.find_user_by_username(username).await?.is_some() {
            continue;
        }
        let new = NewUser {
            username: username.into(),
            email: format!("{username}@example.com"),
            first_name: first.into(),
            last_name: last.into(),
            gender: gender.into(),
            phone: phone.into(),
            city: city.into(),
            // Someone must be able to try the admin page.
            roles: if username == ADMIN {
                vec!["admin".into()]
            } else {
                Vec::new()
            },
        };
        let user = match create_user(store, passwords, new, "password".into()).await {
            // Another instance seeded it first.
            Err(UserError::UsernameTaken(_)) => continue,
            other => other?,
        };
        for (j, job) in JOBS.into_iter().enumerate() {
            store.insert_job(&demo_job(user.id, n, j, job)).await?;
        }
        added += 1;
    }
    Ok(added)
}

/// Job `j` of person `n`: three years each, starting years apart.
fn demo_job(
    user_id: Uuid,
    n: usize,
    j: usize,
    (company, title, department, skills): (&str, &str, &str, &str),
) -> Job {
    let start_year = 2012 + (n * 3 + j * 4) as i32;
    Job {
        id: Uuid::new_v4(),
        user_id,
        company_name: company.into(),
        title: title.into(),
        first_date: january_first(start_year),
        last_date: january_first(start_year + 3),
        skills: skills.into(),
        department: department.into(),
        ein: format!(
            "{:02}-{:07}",
            10 + n * 11 + j,
            1_234_567 + n * 1000 + j * 17
        ),
    }
}

fn january_first(year: i32) -> OffsetDateTime {
    Date::from_calendar_date(year, Month::January, 1)
        .unwrap_or(Date::MIN)
        .with_time(Time::MIDNIGHT)
        .assume_utc()
}
