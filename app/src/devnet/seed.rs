//! Sample data for a fresh devnet, created through the public API like any client would:
//! students on the student instances, tutors on the tutor instance, and one `connect`
//! action from a student to a tutor with a status update.

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::plan::{Member, NETWORK};

/// The users of the sample data (development identities, `x-dev-user-id`).
pub const STUDENT_USER: &str = "asha";
pub const TUTOR_USER: &str = "meera";

const STUDENTS: [(&str, &str, &str, &str); 4] = [
    ("Asha", "10", "Pune", "math"),
    ("Ravi", "11", "Chennai", "physics"),
    ("Lena", "9", "Kochi", "biology"),
    ("Tomas", "12", "Goa", "math"),
];
const TUTORS: [(&str, &[&str], u32, &str); 2] = [
    ("Meera", &["math", "physics"], 8, "online"),
    ("Arjun", &["biology"], 4, "hybrid"),
];

/// What the seeding made, for the printed walkthrough.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub action_id: String,
    pub student_item_id: String,
    pub tutor_item_id: String,
    pub student_instance: String,
    pub tutor_instance: String,
}

pub async fn seed(client: &reqwest::Client, members: &[Member]) -> anyhow::Result<Seeded> {
    let tutors_at = members
        .iter()
        .find(|m| m.domain == "tutor")
        .context("a devnet needs a tutor instance")?;
    let student_members: Vec<&Member> = members.iter().filter(|m| m.domain == "student").collect();
    let mut first_student = None;
    for (index, (name, grade, city, subject)) in STUDENTS.iter().enumerate() {
        let member = student_members[index % student_members.len()];
        let user = if index == 0 {
            STUDENT_USER
        } else {
            "student-demo"
        };
        let state =
            json!({"name": name, "grade": grade, "city": city, "preferred_subject": subject});
        let id = create_item(client, member, user, "student", state).await?;
        first_student.get_or_insert((member, id));
    }
    let mut first_tutor = None;
    for (index, (name, subjects, years, mode)) in TUTORS.iter().enumerate() {
        let user = if index == 0 { TUTOR_USER } else { "tutor-demo" };
        let state = json!({"name": name, "subjects": subjects, "experience_years": years,
            "teaching_mode": mode});
        let id = create_item(client, tutors_at, user, "tutor", state).await?;
        first_tutor.get_or_insert(id);
    }
    let (student_at, student_id) = first_student.context("no student was created")?;
    let tutor_id = first_tutor.context("no tutor was created")?;

    let performed = call(
        client
            .post(format!("{}/api/v1/action/perform", student_at.url()))
            .header("x-dev-user-id", STUDENT_USER)
            .header("idempotency-key", "devnet-seed-connect")
            .json(&json!({
                "action_name": "connect",
                "source_item": {"item_network": NETWORK, "item_domain": "student",
                    "item_type": "profile_1.0", "item_id": student_id},
                "target_item": {"item_network": NETWORK, "item_domain": "tutor",
                    "item_type": "profile_1.0", "item_id": tutor_id,
                    "item_instance_url": tutors_at.url()},
                "requirements_snapshot": {"subject": "math", "goal": "board exam"}
            })),
        "perform connect",
    )
    .await?;
    let action_id = performed["action_id"]
        .as_str()
        .context("the perform answer has no action_id")?
        .to_string();
    call(
        client
            .post(format!("{}/api/v1/action/update-status", tutors_at.url()))
            .header("x-dev-user-id", TUTOR_USER)
            .json(&json!({"action_id": action_id, "action_status": "accepted",
                "remarks": "Happy to help with math"})),
        "update the action's status",
    )
    .await?;
    Ok(Seeded {
        action_id,
        student_item_id: student_id,
        tutor_item_id: tutor_id,
        student_instance: student_at.url(),
        tutor_instance: tutors_at.url(),
    })
}

async fn create_item(
    client: &reqwest::Client,
    member: &Member,
    user: &str,
    domain: &str,
    state: Value,
) -> anyhow::Result<String> {
    let created = call(
        client
            .post(format!("{}/api/v1/item/create", member.url()))
            .header("x-dev-user-id", user)
            .json(&json!({"item_network": NETWORK, "item_domain": domain,
                "item_type": "profile_1.0", "item_state": state})),
        "create a sample item",
    )
    .await?;
    created["item_id"]
        .as_str()
        .map(str::to_string)
        .context("the create answer has no item_id")
}

async fn call(request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
    let response = request
        .send()
        .await
        .with_context(|| format!("{what}: no answer"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{what}: {status} {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("{what}: the answer is not JSON"))
}
