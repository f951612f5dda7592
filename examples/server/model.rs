//! The data the service stores, caches and sends: plain serde types.
//!
//! Everything cached must be `Serialize + Deserialize`: entries are stored as JSON, which is
//! also what `redis-cli GET employee:42` shows.

use super::extract::{BodyFields, FieldError, FromBody};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One employee, as stored, cached under `employee:<id>` and returned by the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Employee {
    /// Assigned by the database; never reused after a delete.
    #[schema(example = 42)]
    pub id: i64,
    /// Full name.
    #[schema(example = "Ada Lovelace")]
    pub name: String,
    /// Work email address.
    #[schema(example = "ada.lovelace@example.com")]
    pub email: String,
    /// Department name (free text; the seed data has five).
    #[schema(example = "Engineering")]
    pub department: String,
    /// Job title.
    #[schema(example = "Staff Engineer")]
    pub title: String,
}

/// The body of `POST /employees` and `PUT /employees/{id}`: every field is required.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EmployeeInput {
    /// Full name, not blank.
    #[schema(
        example = "Ada Lovelace",
        min_length = 1,
        max_length = 200,
        pattern = r"\S"
    )]
    pub name: String,
    /// Work email address.
    #[schema(
        example = "ada.lovelace@example.com",
        format = Email,
        min_length = 1,
        max_length = 200
    )]
    pub email: String,
    /// Department name; moving an employee invalidates both departments' lists.
    #[schema(
        example = "Engineering",
        min_length = 1,
        max_length = 200,
        pattern = r"\S"
    )]
    pub department: String,
    /// Job title, not blank.
    #[schema(
        example = "Staff Engineer",
        min_length = 1,
        max_length = 200,
        pattern = r"\S"
    )]
    pub title: String,
}

/// The longest name, email, department or title accepted.
///
/// [`EmployeeInput`]'s schema attributes repeat it, and state the other checks below (not
/// blank: `pattern = r"\S"`; the email: `format = Email`), because utoipa takes literals
/// only; `tests/server.rs` checks the schema against what the server accepts.
const MAX_LEN: usize = 200;

impl FromBody for EmployeeInput {
    fn from_body(body: &mut BodyFields) -> Option<Self> {
        let name = text(body, "name");
        let email = text(body, "email");
        if let Some(email) = &email
            && !is_email(email)
        {
            body.reject(FieldError::body(
                "email",
                "value_error",
                "value is not a valid email address",
                email,
            ));
        }
        let department = text(body, "department");
        let title = text(body, "title");
        Some(EmployeeInput {
            name: name?,
            email: email?,
            department: department?,
            title: title?,
        })
    }
}

/// A required string field, not blank and at most [`MAX_LEN`] characters; `None` (with the
/// problem recorded) otherwise.
fn text(body: &mut BodyFields, field: &str) -> Option<String> {
    let value: String = body.required(field)?;
    if value.trim().is_empty() {
        body.reject(FieldError::body(
            field,
            "string_too_short",
            "String should have at least 1 character",
            &value,
        ));
        return None;
    }
    if value.chars().count() > MAX_LEN {
        body.reject(FieldError::body(
            field,
            "string_too_long",
            &format!("String should have at most {MAX_LEN} characters"),
            &value,
        ));
        return None;
    }
    Some(value)
}

/// A loose check, enough to catch typos: `local@domain.tld`, without spaces.
fn is_email(email: &str) -> bool {
    email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !email.contains(char::is_whitespace)
    })
}

/// Whether an employee is in the office.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    /// In the office.
    In,
    /// Not in the office.
    Out,
}

impl Presence {
    /// `"in"` or `"out"`, as stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::In => "in",
            Presence::Out => "out",
        }
    }
}

/// An employee's in/out status, cached under `employee:<id>:status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// The employee's id.
    #[schema(example = 42)]
    pub employee_id: i64,
    /// In or out.
    pub status: Presence,
    /// When the status last changed (RFC 3339, UTC).
    #[schema(example = "2025-01-06T09:00:00.000Z")]
    pub since: String,
}

/// The body of `PUT /employees/{id}/status`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StatusUpdate {
    /// The new status.
    pub status: Presence,
}

impl FromBody for StatusUpdate {
    fn from_body(body: &mut BodyFields) -> Option<Self> {
        Some(StatusUpdate {
            status: body.required("status")?,
        })
    }
}
