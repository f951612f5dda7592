use redis_cached::invalidates;

struct Employee {
    id: u64,
    department: String,
}

// `<return.dept>`: the `Ok` value, an `Employee`, has no field `dept`.
#[invalidates("employee:<return.id>", "department:<return.dept>:employees")]
async fn create_employee(department: String) -> Result<Employee, String> {
    Ok(Employee { id: 1, department })
}

fn main() {
    let _ = create_employee(String::new());
}
