use redis_cached::invalidates;

struct Employee {
    id: u64,
    teams: Vec<u64>,
}

// `<return.teams>`: a field the key cannot render (a `Vec`), reported at the template.
#[invalidates("employee:<return.id>:teams:<return.teams>")]
async fn create_employee() -> Option<Employee> {
    Some(Employee { id: 1, teams: vec![] })
}

fn main() {
    let _ = create_employee();
}
