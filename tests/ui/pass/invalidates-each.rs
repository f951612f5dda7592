//! `each = ids` over a slice, a `Vec` (which the body then owns), with other templates,
//! tags, a field of each element, `<return>` in another template, and a hash tag.
use redis_cached::invalidates;

struct Employee {
    id: u64,
}

#[invalidates("employee:<ids>", "payroll:<month>", each = ids)]
async fn give_raises(ids: &[u64], month: &str) {
    let _ = (ids, month);
}

#[invalidates("employee:<ids>", each = ids, tags = ["team:<ids>"])]
async fn remove(ids: Vec<u64>) -> usize {
    ids.len()
}

#[invalidates("employee:<staff.id>", "audit:<return>", each = staff)]
async fn rename(staff: &[Employee]) -> Result<u64, String> {
    Ok(staff.len() as u64)
}

#[invalidates("#{tenant:<tenant>}:employee:<ids>", each = ids)]
async fn tenant_raises(tenant: &str, ids: &[u64]) {
    let _ = (tenant, ids);
}

fn main() {
    let _ = (
        give_raises(&[1], "march"),
        remove(vec![1]),
        rename(&[Employee { id: 1 }]),
        tenant_raises("acme", &[1]),
    );
}
